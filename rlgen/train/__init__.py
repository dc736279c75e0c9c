"""The training machinery every agent shares: typed configs, run directories, logging, checkpoints, resume.

It knows no algorithm: :mod:`rlgen.runs` builds agents from recipes and hands them to :func:`fit`.

>>> from rlgen.train import TrainConfig, fit
>>> result = fit(agent, sampler, TrainConfig(steps=1000), RunDir.create("runs/x", {}))
"""

from rlgen.train.agent import Agent, BatchSampler, Learner, resolve_device
from rlgen.train.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from rlgen.train.config import TrainConfig
from rlgen.train.parallel import Replicas
from rlgen.train.run_dir import MetricsLogger, RunDir
from rlgen.train.trainer import Evaluator, FitResult, Interrupted, fit, seed_everything

__all__ = [
    "Agent",
    "BatchSampler",
    "CheckpointError",
    "Evaluator",
    "FitResult",
    "Interrupted",
    "Learner",
    "MetricsLogger",
    "Replicas",
    "RunDir",
    "TrainConfig",
    "fit",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "resolve_device",
    "save_checkpoint",
    "seed_everything",
]
