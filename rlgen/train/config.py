"""The ``train:`` block every recipe shares (:class:`TrainConfig`)."""

from __future__ import annotations

from dataclasses import dataclass

from rlgen.config import ConfigError, require_at_least


@dataclass(frozen=True)
class TrainConfig:
    """Settings of the training loop shared by every agent (the ``train:`` block of a recipe).

    :param seed: seeds torch, numpy and python; the same seed gives the same run on the same machine.
    :param steps: steps in total: gradient steps, or environment steps for agents that step their own
        environments (online agents; SB3's ``total_timesteps``). The intervals below count the same steps.
    :param batch_size: samples per gradient step.
    :param log_every: steps between logged means of the training scalars.
    :param eval_every: steps between evaluations in the environment (0: only after the last step).
    :param eval_episodes: episodes per evaluation.
    :param eval_envs: environments stepped side by side during evaluation.
    :param eval_async: step each evaluation environment in a worker process of its own (gymnasium's
        ``AsyncVectorEnv``; same results as in one process).
    :param eval_seed: episode ``i`` of every evaluation resets with seed ``eval_seed + i``.
    :param checkpoint_every: steps between checkpoints (one is always written after the last step, and one when
        training is stopped by SIGINT or SIGTERM). A value of ``steps`` or more, such as the default on a short
        run, would leave the run without a mid-run checkpoint: it becomes ``max(1, steps // 10)`` (see
        :attr:`checkpoint_interval`), so a kill loses at most a tenth of the run.
    :param keep_checkpoints: how many of the newest checkpoints to keep.
    :param threads: torch CPU threads. 1 by default: the small networks of RL agents gain nothing from more,
        and on a loaded machine extra threads spin and slow every step several-fold.
    """

    seed: int = 0
    steps: int = 100_000
    batch_size: int = 256
    log_every: int = 1_000
    eval_every: int = 10_000
    eval_episodes: int = 10
    eval_envs: int = 10
    eval_async: bool = False
    eval_seed: int = 100_000
    checkpoint_every: int = 10_000
    keep_checkpoints: int = 2
    threads: int = 1

    @property
    def checkpoint_interval(self) -> int:
        """Steps between the checkpoints the trainer writes: ``checkpoint_every``, or ``max(1, steps // 10)`` if
        ``checkpoint_every`` is at least ``steps``."""
        return self.checkpoint_every if self.checkpoint_every < self.steps else max(1, self.steps // 10)

    def __post_init__(self) -> None:
        require_at_least(self, "train", 1, "steps", "batch_size", "log_every", "eval_episodes", "eval_envs",
                         "checkpoint_every", "keep_checkpoints", "threads")  # fmt: skip
        if self.eval_every < 0:
            raise ConfigError(f"train.eval_every must be >= 0 (0: evaluate only at the end), got {self.eval_every}")
