"""The states an agent visits, episode by episode: what ``detour_sides.py`` and ``which_expert.py`` inspect."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rlgen.rollout import make_env
from rlgen.tasks import TaskSpec

EVAL_SEED = 100_000


@dataclass
class EpisodePath:
    """One episode: its observations from the reset to the last (``(T + 1, obs_dim)``), its return and the last
    step's ``info``."""

    observations: np.ndarray
    total_return: float
    info: dict[str, Any]


def episode_paths(agent: Any, task: TaskSpec, episodes: int, deterministic: bool,
                  seed: int = EVAL_SEED) -> list[EpisodePath]:  # fmt: skip
    """Run ``agent.act`` for ``episodes`` episodes of ``task`` (episode i reset with ``seed + i``), deterministic
    or sampling its actions (seed torch first for repeatable samples)."""
    env = make_env(task)
    paths = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            path, total, info, done = [obs], 0.0, {}, False
            while not done:
                obs, reward, terminated, truncated, info = env.step(
                    agent.act(obs[None], deterministic=deterministic)[0]
                )
                path.append(obs)
                total += float(reward)
                done = terminated or truncated
            paths.append(EpisodePath(np.array(path), total, dict(info)))
    finally:
        env.close()
    return paths
