"""Evaluate a policy on a task over gymnasium vector envs and score it on the D4RL scale.

Episode ``i`` (``0 <= i < episodes``) always starts from ``env.reset(seed=seed + i)``, whichever of the
side-by-side environments runs it, so results depend on the policy, the task, ``episodes`` and ``seed`` only.
Environments run with autoreset disabled and are reset one by one, which makes exactly ``episodes`` complete
episodes (no episode is cut, none is counted twice).

The results JSON (:meth:`EvalResult.to_dict`, written by :meth:`EvalResult.write`) has these fields::

    task              str          task file name
    env_id            str          gymnasium id
    episodes          int          number of complete episodes
    seed              int          episode i reset with seed + i
    returns           list[float]  undiscounted return of each episode, in episode order
    lengths           list[int]    steps of each episode
    scores            list[float]  normalised score of each episode, 100 * (R - ref_min) / (ref_max - ref_min)
    return_mean       float
    return_se         float        standard error of the mean (sample std / sqrt(episodes); 0 for one episode)
    score_mean        float        D4RL normalised score: 0 = random policy, 100 = reference expert
    score_se          float
    ref_min_score     float        the task's reference scores used for ``scores``
    ref_max_score     float
    step              int | null   training step of the evaluated checkpoint, when known
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rlgen.data.atomic import atomic_path
from rlgen.rollout.envs import make_vector_env, reset_envs
from rlgen.tasks import TaskSpec

#: a batched policy: observations ``(n, obs_dim)`` -> actions ``(n, act_dim)`` (or ``(n,)`` discrete). A policy
#: that also has ``observe(rewards (n,), ended (n,))`` is told each step's rewards and which episodes ended (a
#: planner that conditions on past transitions needs them); see :func:`feedback`.
Policy = Callable[[np.ndarray], np.ndarray]


def feedback(policy: Policy) -> Callable[[np.ndarray, np.ndarray], None]:
    """The policy's ``observe(rewards, ended)``, or a no-op for a policy that acts on observations alone."""
    return getattr(policy, "observe", lambda rewards, ended: None)


@dataclass(frozen=True)
class EvalResult:
    """Returns, lengths and normalised scores of ``episodes`` complete episodes; see the module docstring."""

    task: str
    env_id: str
    episodes: int
    seed: int
    returns: list[float]
    lengths: list[int]
    scores: list[float]
    return_mean: float
    return_se: float
    score_mean: float
    score_se: float
    ref_min_score: float
    ref_max_score: float
    step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def scalars(self) -> dict[str, float]:
        """The summary numbers to log (``eval/...``)."""
        return {
            "eval/score": self.score_mean,
            "eval/score_se": self.score_se,
            "eval/return": self.return_mean,
            "eval/return_se": self.return_se,
            "eval/length": float(np.mean(self.lengths)),
        }

    def write(self, path: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Write the results JSON atomically; an existing ``path`` is refused (``FileExistsError``) unless
        ``force``, checked again at the final rename in case it appeared meanwhile."""
        path = Path(path)
        with atomic_path(path, force=force) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def summary(self) -> str:
        return (
            f"{self.task}: normalised score {self.score_mean:.1f} ± {self.score_se:.1f} "
            f"(return {self.return_mean:.1f} ± {self.return_se:.1f} over {self.episodes} episodes)"
        )


def standard_error(values: np.ndarray) -> float:
    """Sample standard deviation over sqrt(n); 0 for fewer than two values."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def run_episodes(
    policy: Policy,
    task: TaskSpec,
    episodes: int,
    seed: int,
    num_envs: int = 10,
    asynchronous: bool = False,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Undiscounted returns (float64) and lengths (int64) of exactly ``episodes`` complete episodes, in episode
    order; episode ``i`` starts from ``reset(seed=seed + i)`` (module docstring). Arguments as for :func:`evaluate`.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    n = min(num_envs, episodes)
    env = make_vector_env(task, n, autoreset_mode="Disabled", asynchronous=asynchronous)
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    running = np.arange(n)  # the episode each env is running; -1 once it has none left
    next_episode = n
    observe = feedback(policy)
    bar = tqdm(total=episodes, unit="episode", desc=f"evaluating in {task.name}", disable=not progress)
    try:
        obs = reset_envs(env, np.ones(n, dtype=bool), [seed + i for i in range(n)])
        while (running >= 0).any():
            # Idle envs are stepped too (their steps are ignored): a constant batch keeps the policy's numerics
            # the same whatever the number of episodes left.
            next_obs, reward, terminated, truncated, _ = env.step(np.asarray(policy(obs)))
            active = running >= 0
            idx = running[active]
            returns[idx] += reward[active]
            lengths[idx] += 1
            ended = terminated | truncated
            observe(np.asarray(reward), ended)
            bar.update(int((ended & active).sum()))
            if ended.any():
                # An ended env may not be stepped again before a reset: give it the next episode, or, with none
                # left, reset it anyway and mark it idle.
                seeds: list[int | None] = [None] * n
                for i in np.flatnonzero(ended & active):
                    if next_episode < episodes:
                        running[i], seeds[i] = next_episode, seed + next_episode
                        next_episode += 1
                    else:
                        running[i] = -1
                next_obs = np.where(ended[:, None], reset_envs(env, ended, seeds), next_obs)
            obs = next_obs
    finally:
        bar.close()
        env.close()
    return returns, lengths


def evaluate(
    policy: Policy,
    task: TaskSpec,
    episodes: int,
    seed: int,
    num_envs: int = 10,
    step: int | None = None,
    asynchronous: bool = False,
    progress: bool = False,
) -> EvalResult:
    """Run ``policy`` for exactly ``episodes`` complete episodes of ``task`` and score them.

    :param policy: called once per vector step on the observations of all ``num_envs`` environments, then told
        the step's rewards and ended episodes if it has ``observe`` (see :data:`Policy`).
    :param num_envs: environments stepped side by side (capped at ``episodes``).
    :param step: recorded in the result (the training step of the evaluated weights).
    :param asynchronous: step each environment in a worker process of its own (gymnasium's ``AsyncVectorEnv``);
        the results are the same as in one process. It pays when an environment step costs more than passing its
        observation between processes and there are idle cores.
    :param progress: show a progress bar of the episodes done.
    """
    returns, lengths = run_episodes(policy, task, episodes, seed, num_envs, asynchronous, progress)
    scores = task.normalized_score(returns)
    return EvalResult(
        task=task.name,
        env_id=task.env_id,
        episodes=episodes,
        seed=seed,
        returns=returns.tolist(),
        lengths=lengths.tolist(),
        scores=scores.tolist(),
        return_mean=float(returns.mean()),
        return_se=standard_error(returns),
        score_mean=float(scores.mean()),
        score_se=standard_error(scores),
        ref_min_score=task.ref_min_score,
        ref_max_score=task.ref_max_score,
        step=step,
    )
