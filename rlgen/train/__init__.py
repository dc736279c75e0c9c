"""The training machinery every agent shares: typed configs, run directories, logging, checkpoints, resume.

d3rlpy-style: a recipe (``agents/<name>.yaml``) fills typed configs, :func:`start_run` builds the agent and
:func:`fit` trains it; ``rlgen train`` is a thin shell around them.

>>> from rlgen.train import start_run, resume_run
>>> start_run("bc-dlml", "hopper-medium", overrides=["train.steps=10000"])
"""

from rlgen.train.agent import Agent, BatchSampler, resolve_device
from rlgen.train.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from rlgen.train.config import ConfigError, TrainConfig, apply_overrides, build, to_dict
from rlgen.train.launch import (
    Recipe,
    RunConfig,
    agents_root,
    list_recipes,
    load_agent,
    load_recipe,
    resolve_target,
    resume_run,
    start_run,
)
from rlgen.train.run_dir import MetricsLogger, RunDir
from rlgen.train.trainer import Evaluator, FitResult, fit, seed_everything

__all__ = [
    "Agent",
    "BatchSampler",
    "CheckpointError",
    "ConfigError",
    "Evaluator",
    "FitResult",
    "MetricsLogger",
    "Recipe",
    "RunConfig",
    "RunDir",
    "TrainConfig",
    "agents_root",
    "apply_overrides",
    "build",
    "fit",
    "latest_checkpoint",
    "list_checkpoints",
    "list_recipes",
    "load_agent",
    "load_checkpoint",
    "load_recipe",
    "resolve_device",
    "resolve_target",
    "resume_run",
    "save_checkpoint",
    "seed_everything",
    "start_run",
    "to_dict",
]
