"""Generative adversarial imitation learning: a discriminator, a TRPO generator on rlgen heads, demonstrations
subsampled from rlgen datasets, and the behaviour-cloning protocol used for the baseline and the warm start.

>>> from rlgen.runs import start_run
>>> start_run("gail-trpo", "invertedpendulum-expert", overrides=["agent.trajectories=4"])
"""

from rlgen.algos.gail.agent import GAIL, GAILConfig
from rlgen.algos.gail.clone import CloneResult, CloneSettings, behaviour_clone
from rlgen.algos.gail.demos import Demonstrations, subsample_demonstrations
from rlgen.algos.gail.discriminator import Discriminator, discriminator_loss, discriminator_step, imitation_reward
from rlgen.algos.gail.trpo import StepResult, TRPOSettings, conjugate_gradient, trpo_step

__all__ = [
    "GAIL",
    "CloneResult",
    "CloneSettings",
    "Demonstrations",
    "Discriminator",
    "GAILConfig",
    "StepResult",
    "TRPOSettings",
    "behaviour_clone",
    "conjugate_gradient",
    "discriminator_loss",
    "discriminator_step",
    "imitation_reward",
    "subsample_demonstrations",
    "trpo_step",
]
