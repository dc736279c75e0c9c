"""Environments from task files: one env, a vector of them, and the resets every env loop shares.

>>> from rlgen.rollout import make_env, make_vector_env
>>> env = make_env(load_task("hopper"))                  # the recipe's horizon and env_kwargs
>>> envs = make_vector_env(load_task("hopper"), 8)      # 8 copies, SAME_STEP autoreset

``make_env`` checks the spaces a recipe declares (``obs_dim``, ``act_dim`` / ``num_actions``, the action box)
against the environment gymnasium builds, so code that reads them from the recipe never builds one.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from rlgen.tasks import TASK_FILE, TaskFileError, TaskSpec

#: environments rlgen itself defines, registered with gymnasium on import: id -> entry point
RLGEN_ENVS = {"rlgen/Detour-v0": "rlgen.rollout.detour:DetourEnv"}
for _env_id, _entry_point in RLGEN_ENVS.items():
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point=_entry_point)


class MujocoWarning(UserWarning):
    """A warning MuJoCo's C library raised (e.g. a deprecated attribute in a model's XML)."""


def route_mujoco_warnings() -> None:
    """Send MuJoCo's C-level warnings to Python's ``warnings`` (shown once each by default).

    Left alone, MuJoCo prints every warning and appends it to ``MUJOCO_LOG.TXT`` in the current working
    directory: HalfCheetah's XML triggers one per environment, so a user's folder would fill with log files.
    """
    try:
        import mujoco
    except ImportError:  # tasks without MuJoCo (classic control) need nothing
        return
    mujoco.set_mju_user_warning(lambda message: warnings.warn(message, MujocoWarning, stacklevel=2))


def make_env(task: TaskSpec, **kwargs: Any) -> gym.Env:
    """A single environment with the recipe's horizon; ``kwargs`` override the recipe's ``env_kwargs``.

    Raises ``TaskFileError`` naming the recipe when the env's spaces differ from the ones it declares.
    """
    route_mujoco_warnings()
    env = gym.make(task.env_id, max_episode_steps=task.max_episode_steps, **{**task.env_kwargs, **kwargs})
    obs_space, act_space = env.observation_space, env.action_space
    if task.discrete:
        declared = f"num_actions={task.num_actions}"
        ok = isinstance(act_space, gym.spaces.Discrete) and (act_space.start, act_space.n) == (0, task.num_actions)
    else:
        low, high = task.action_bounds()
        declared = f"act_dim={task.act_dim}, action_low={list(task.action_low or ())}, "
        declared += f"action_high={list(task.action_high or ())}"
        ok = (
            isinstance(act_space, gym.spaces.Box)
            and act_space.shape == (task.act_dim,)
            and np.array_equal(act_space.low.astype(np.float32), low)
            and np.array_equal(act_space.high.astype(np.float32), high)
        )
    if not (ok and isinstance(obs_space, gym.spaces.Box) and obs_space.shape == (task.obs_dim,)):
        env.close()
        raise TaskFileError(
            f"{task.task_dir / TASK_FILE}: {task.env_id} has observation space {obs_space} and action space "
            f"{act_space}, but the recipe declares obs_dim={task.obs_dim}, {declared}"
        )
    return env


def make_vector_env(
    task: TaskSpec, num_envs: int, autoreset_mode: str = "SameStep", asynchronous: bool = False, **kwargs: Any
) -> gym.vector.VectorEnv:
    """``num_envs`` copies of :func:`make_env` in one process (``SyncVectorEnv``), or each in a worker process of
    its own if ``asynchronous`` (``AsyncVectorEnv``: the same observations and rewards, stepped in parallel).

    Autoreset defaults to SAME_STEP: the step that ends an episode already returns the first observation of
    the next one and puts the true last observation in ``info["final_obs"]``, so every step returned is a
    real transition. (Gymnasium's default NEXT_STEP instead spends one extra ``step`` call on the reset and
    ignores its action, which a data collector would have to filter out.) ``"Disabled"`` leaves resets to the
    caller (:func:`reset_envs`), which lets each episode start from its own seed.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    mode = gym.vector.AutoresetMode(autoreset_mode)
    fns = [lambda: make_env(task, **kwargs)] * num_envs
    if asynchronous:
        return gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode)
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)


def reset_envs(envs: gym.vector.VectorEnv, mask: np.ndarray, seeds: Sequence[int | None]) -> np.ndarray:
    """Reset the sub-environments where ``mask`` is true, env ``i`` with ``seeds[i]``; the others are untouched.

    Returns the observations of all envs; only the rows where ``mask`` is true are new.
    """
    options = None if mask.all() else {"reset_mask": mask}
    obs, _ = envs.reset(seed=[s if m else None for s, m in zip(seeds, mask, strict=True)], options=options)
    return obs
