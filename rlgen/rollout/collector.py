"""The vectorised collector of the online agents: environment interaction that survives a kill.

>>> collector = VectorCollector(load_task("cartpole"), num_envs=4)
>>> step = collector.step(actions_for(collector.current(rng)), rng)   # a Transition, leading env axis 4

Exact resume. :meth:`VectorCollector.state_dict` holds what restores the environments: every episode is reset
with a seed drawn from the caller's (checkpointed) numpy generator, and the actions taken since that reset are
recorded, so on resume each sub-environment is reset with its episode's seed and the recorded actions are
replayed. This restores the environment state exactly for environments that are deterministic given their reset
seed and actions (classic control, MuJoCo).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlgen.rollout.envs import make_vector_env, reset_envs
from rlgen.tasks import TaskSpec

#: how many finished episodes :meth:`VectorCollector.recent_return` averages over
RETURN_WINDOW = 20
_SEED_BOUND = 2**31 - 1


@dataclass
class Transition:
    """One vector step: arrays with a leading env axis ``N``.

    ``next_observations`` holds the true next state (the final observation where an episode ended), while
    :attr:`VectorCollector.observations` already holds the first observation of the next episode there.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    truncations: np.ndarray

    @property
    def dones(self) -> np.ndarray:
        """True where an episode ended at this step (terminated or truncated)."""
        return self.terminals | self.truncations


class VectorCollector:
    """``num_envs`` copies of a task's environment stepped together, every episode reset from a seed of the
    caller's generator, with the bookkeeping that lets a checkpoint restore them exactly (module docstring).

    Gymnasium's own autoreset is disabled so that each reset takes an explicit seed.
    """

    def __init__(self, task: TaskSpec, num_envs: int):
        self.envs: gym.vector.VectorEnv = make_vector_env(task, num_envs, autoreset_mode="Disabled")
        self.num_envs = num_envs
        self.observations: np.ndarray | None = None  # None until the first reset
        self.seeds = np.zeros(num_envs, dtype=np.int64)
        self.actions: list[list[np.ndarray]] = [[] for _ in range(num_envs)]
        self.episode_returns = np.zeros(num_envs, dtype=np.float64)
        self.finished: deque[float] = deque(maxlen=RETURN_WINDOW)
        self.env_steps = 0
        self.episodes = 0

    def _reset(self, mask: np.ndarray, rng: np.random.Generator) -> None:
        seeds = rng.integers(0, _SEED_BOUND, size=self.num_envs)
        self.seeds = np.where(mask, seeds, self.seeds)
        obs = reset_envs(self.envs, mask, [int(s) for s in self.seeds])
        if self.observations is None:
            self.observations = np.asarray(obs, dtype=np.float32)
        self.observations[mask] = obs[mask]
        for i in np.flatnonzero(mask):
            self.actions[i] = []
            self.episode_returns[i] = 0.0

    def current(self, rng: np.random.Generator) -> np.ndarray:
        """The observations the next actions respond to (resetting every env on first use)."""
        if self.observations is None:
            self._reset(np.ones(self.num_envs, dtype=bool), rng)
        assert self.observations is not None
        return self.observations

    def step(self, actions: np.ndarray, rng: np.random.Generator) -> Transition:
        """Step every env with ``actions`` and reset the ones whose episode ended."""
        obs = self.current(rng).copy()
        next_obs, rewards, terminals, truncations, _ = self.envs.step(actions)
        next_obs = np.asarray(next_obs, dtype=np.float32)
        for i in range(self.num_envs):
            self.actions[i].append(np.array(actions[i]))
        self.env_steps += self.num_envs
        self.episode_returns += rewards
        dones = terminals | truncations
        self.observations = next_obs.copy()
        if dones.any():
            self.finished.extend(self.episode_returns[dones].tolist())
            self.episodes += int(dones.sum())
            self._reset(dones, rng)
        return Transition(obs, np.asarray(actions), rewards.astype(np.float32), next_obs, terminals, truncations)

    @property
    def episode_steps(self) -> np.ndarray:
        """Steps taken so far in each env's current episode, ``(num_envs,)`` int64 (0 right after a reset)."""
        return np.array([len(actions) for actions in self.actions], dtype=np.int64)

    def restart(self, rng: np.random.Generator) -> None:
        """Abandon the episodes in progress and reset every env (on-policy agents that need whole episodes)."""
        self._reset(np.ones(self.num_envs, dtype=bool), rng)

    def recent_return(self) -> float:
        """Mean return of the last :data:`RETURN_WINDOW` finished episodes (NaN before the first)."""
        return float(np.mean(self.finished)) if self.finished else float("nan")

    def state_dict(self) -> dict[str, Any]:
        return {
            "started": self.observations is not None,
            "seeds": self.seeds.tolist(),
            "actions": [torch.as_tensor(np.array(a)) if a else None for a in self.actions],
            "episode_returns": self.episode_returns.tolist(),
            "finished": list(self.finished),
            "env_steps": self.env_steps,
            "episodes": self.episodes,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Reset each env with its episode's seed and replay the actions taken since (module docstring)."""
        self.seeds = np.asarray(state["seeds"], dtype=np.int64)
        self.episode_returns = np.asarray(state["episode_returns"], dtype=np.float64)
        self.finished = deque(state["finished"], maxlen=RETURN_WINDOW)
        self.env_steps, self.episodes = int(state["env_steps"]), int(state["episodes"])
        self.actions = [[] if a is None else list(a.numpy()) for a in state["actions"]]
        if not state["started"]:
            self.observations = None
            return
        obs = reset_envs(self.envs, np.ones(self.num_envs, dtype=bool), [int(s) for s in self.seeds])
        self.observations = np.asarray(obs, dtype=np.float32)
        for i, env in enumerate(self.envs.envs):  # type: ignore[attr-defined]  # SyncVectorEnv's sub-envs
            for action in self.actions[i]:
                obs_i, *_ = env.step(action)
                self.observations[i] = obs_i

    def close(self) -> None:
        self.envs.close()
