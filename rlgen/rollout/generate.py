"""Regenerate D4RL-style datasets locally from a task file's behaviour policies (``rlgen data make``): rollouts
here, written through :mod:`rlgen.data`'s Minari / D4RL writers.

Levels, as in D4RL:

* ``random``: uniformly random actions;
* ``medium`` / ``expert``: the recipe's medium / expert policy, sampling its stochastic actions;
* ``medium-replay``: the recipe's training snapshots up to medium, in training order, each rolled out for an
  equal share of the steps with seed ``seed + k`` for snapshot ``k`` (emulating the replay buffer of
  training up to medium);
* ``medium-expert``: ``medium`` then ``expert``, half the steps each; each half is exactly the dataset that
  ``make <task>-medium`` / ``<task>-expert`` with half the steps and the same seed produces.

Two more levels, not D4RL's, for imitation from a mixture of behaviours:

* ``second-expert``: the recipe's second expert (the expert of a PPO run with another seed), stochastic actions;
* ``two-experts``: ``expert`` then ``second-expert``, half the steps each, built as ``medium-expert`` is.
* ``switching-experts``: the two experts taking turns at random: at every step, in every environment, the action
  is one of the two's (each sampling its stochastic action), chosen with equal probability. Both then act in the
  same states, so the actions are bimodal *given the state*, where ``two-experts`` gives each expert states of
  its own.

Rollouts batch policy inference over a gymnasium vector env in SAME_STEP autoreset mode: the step that ends
an episode returns the true last observation in ``info["final_obs"]``, so no transition crosses an episode
boundary. Time-limit truncation is recorded as a timeout, termination as a terminal. Episodes are kept in the
order they finish; the last one is cut to the requested size (and marked as a timeout: it did not
terminate), and episodes still running then are discarded. The episodes carry the task file's declared spaces.
The result depends only on the task file, the policy files, the seed, the size and the number of environments.

The dataset name fixes the size (:func:`rlgen.tasks.dataset_steps`): ``hopper-medium`` is D4RL's 1M steps,
``hopper-medium-200k`` 200k steps of the same level, written as Minari id ``rlgen/hopper/medium-200k-v0`` or the
D4RL file ``hopper-medium-200k.hdf5``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import rlgen
from rlgen.data.atomic import check_free_space, check_writable, dataset_bytes
from rlgen.data.d4rl_io import write_d4rl
from rlgen.data.episodes import Episodes
from rlgen.data.minari_io import dataset_dir, write_minari
from rlgen.data.spaces import BoxSpace, Space, task_spaces
from rlgen.data.store import rlgen_d4rl_path, rlgen_minari_id
from rlgen.rollout.behavior import BehaviorPolicy, behavior_actions, switching_actions
from rlgen.rollout.envs import make_env, make_vector_env
from rlgen.tasks import PolicyRecord, TaskSpec, parse_sized_dataset_name, sized_dataset_name

FORMATS = ("minari", "d4rl")
D4RL_SUFFIXES = (".hdf5", ".h5")  # what `locate` reads back as a D4RL file (a ".npz" name reads as rlgen's npz)
FILE_SUFFIXES = (*D4RL_SUFFIXES, ".npz")
#: levels made of two other levels, half the steps each, in this order
MIXTURES = {"medium-expert": ("medium", "expert"), "two-experts": ("expert", "second-expert")}
#: levels whose every action comes from one of two levels' policies, picked at random per step and environment
SWITCHING = {"switching-experts": ("expert", "second-expert")}


@dataclass(frozen=True)
class MakeResult:
    """What :func:`make_dataset` wrote."""

    episodes: Episodes
    path: Path
    dataset_id: str | None  # Minari id, None for a D4RL file


def expected_seconds(task: TaskSpec, steps: int) -> float | None:
    """Expected generation time of ``steps`` steps from the task file's measured speed (``None`` if unmeasured)."""
    rate = task.generation_steps_per_second
    return None if rate is None else steps / rate


def describe_plan(name: str, task: TaskSpec, steps: int, path: Path) -> str:
    """One line saying what :func:`make_dataset` is about to write: size, disk space, expected time and where."""
    seconds = expected_seconds(task, steps)
    took = "" if seconds is None else f", about {format_duration(seconds)}"
    megabytes = dataset_bytes(steps, task.obs_dim, task.act_dim) / 1e6
    return f"{name}: generating {steps:,} steps of {task.env_id} (about {megabytes:,.0f} MB{took}) into {path}"


def format_duration(seconds: float) -> str:
    """``42 s`` or ``3 min``."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def output_format(fmt: str | None, out: str | os.PathLike[str] | None) -> str:
    """``fmt``, or when None the format ``out`` names: ``d4rl`` for a ``.hdf5``/``.h5`` file, else ``minari``.

    An ``out`` whose suffix contradicts ``fmt`` raises ``ValueError``: the output would not load back (a ``.npz``
    name is read as rlgen's npz, a Minari store root is a folder).
    """
    suffix = Path(out).suffix.lower() if out is not None else ""
    if fmt is None:
        return "d4rl" if suffix in D4RL_SUFFIXES else "minari"
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "d4rl" and out is not None and suffix not in D4RL_SUFFIXES:
        raise ValueError(
            f"--out {out}: format d4rl writes an HDF5 file, which loads back only under a "
            f"{' or '.join(D4RL_SUFFIXES)} name"
        )
    if fmt == "minari" and suffix in FILE_SUFFIXES:
        raise ValueError(
            f"--out {out}: format minari writes dataset folders under a store root folder, not a {suffix} file "
            f"(for a D4RL HDF5 file pass --format d4rl and a {' or '.join(D4RL_SUFFIXES)} name)"
        )
    return fmt


def output_path(task: TaskSpec, level: str, fmt: str, out: str | os.PathLike[str] | None = None) -> Path:
    """Where :func:`make_dataset` writes: a Minari dataset folder under ``out`` (a store root, default
    ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``), or the D4RL file ``out`` (default
    ``~/.d4rl/datasets/<task>-<level>.hdf5``); ``level`` carries the size of a sized name (``medium-200k``);
    ``fmt`` and ``out`` are checked by :func:`output_format`."""
    if output_format(fmt, out) == "minari":
        return dataset_dir(rlgen_minari_id(task.name, level), out)
    return Path(out) if out is not None else rlgen_d4rl_path(task.name, level)


def make_dataset(
    name: str,
    *,
    steps: int | None = None,
    seed: int = 0,
    fmt: str | None = None,
    out: str | os.PathLike[str] | None = None,
    force: bool = False,
    num_envs: int = 8,
    progress: bool = True,
) -> MakeResult:
    """Generate dataset ``<task>-<level>[-<size>]`` and write it (atomically; an existing one needs ``force``).

    :param steps: the size, if not the one the name fixes (``hopper-medium``: 1M, ``hopper-medium-200k``: 200k):
        only into a store or file ``out`` of the caller's (tests, scratch data), so that a name in the default
        stores always means its size.
    :param fmt: ``"minari"`` or ``"d4rl"``; default from ``out``'s suffix (see :func:`output_format`).
    :param out: see :func:`output_path`.
    :param progress: print what is made (size, expected time, where) and show a progress bar.
    """
    task, level, size = parse_sized_dataset_name(name)
    if steps is not None and steps != size and out is None:
        raise ValueError(f"dataset {name} is {size:,} steps; for {steps:,} steps name it "
                         f"{sized_dataset_name(task, level, steps)}, or write to an out= of your own")  # fmt: skip
    steps = size if steps is None else steps
    stored_level = name[len(task.name) + 1 :]  # the level with its size, if the name has one
    fmt = output_format(fmt, out)
    path = output_path(task, stored_level, fmt, out)
    check_writable(path, force)  # fail before spending minutes on rollouts
    check_free_space(path, dataset_bytes(steps, task.obs_dim, task.act_dim))
    if progress:
        print(describe_plan(name, task, steps, path), flush=True)
    episodes = generate(task, level, steps=steps, seed=seed, num_envs=num_envs, progress=progress)
    if fmt == "minari":
        dataset_id = rlgen_minari_id(task.name, stored_level)
        env = make_env(task)  # recorded as the dataset's env_spec, with the recipe's horizon and kwargs
        try:
            write_minari(episodes, dataset_id, root=out, env=env, force=force)
        finally:
            env.close()
        return MakeResult(episodes, path, dataset_id)
    write_d4rl(episodes, path, force=force)
    return MakeResult(episodes, path, None)


def generate(
    task: TaskSpec, level: str, *, steps: int, seed: int = 0, num_envs: int = 8, progress: bool = True
) -> Episodes:
    """The episodes of dataset level ``level`` of ``task`` (nothing is written)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    records = task.policies_for_level(level)  # validates the level; raises if a policy is not trained
    if level in MIXTURES:
        half = steps // 2
        parts = [generate(task, part, steps=n, seed=seed, num_envs=num_envs, progress=progress)
                 for part, n in zip(MIXTURES[level], (half, steps - half), strict=True)]  # fmt: skip
    elif level in SWITCHING:
        policies = [BehaviorPolicy.load(r.path) for r in records]
        parts = [rollout(task, policies, steps, seed, num_envs, progress, level)]
    elif level == "medium-replay":
        if steps < len(records):
            raise ValueError(f"medium-replay needs at least one step per snapshot ({len(records)}), got {steps}")
        shares = np.full(len(records), steps // len(records))
        shares[-1] += steps - shares.sum()
        parts = [
            rollout(task, BehaviorPolicy.load(r.path), int(n), seed + k, num_envs, progress, f"{level} {k + 1}")
            for k, (r, n) in enumerate(zip(records, shares, strict=True))
        ]
    else:
        policy = BehaviorPolicy.load(records[0].path) if records else None
        parts = [rollout(task, policy, steps, seed, num_envs, progress, level)]
    metadata = _metadata(task, level, steps, seed, num_envs, records)
    return Episodes.concatenate(parts, metadata=metadata, source=f"{task.name}-{level} (seed {seed})")


def _metadata(
    task: TaskSpec, level: str, steps: int, seed: int, num_envs: int, records: tuple[PolicyRecord, ...]
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "task": task.name,
        "level": level,
        "env_id": task.env_id,
        "max_episode_steps": task.max_episode_steps,
        "seed": seed,
        "steps": steps,
        "num_envs": num_envs,
        "policy_files": [os.path.relpath(r.path, task.task_dir) for r in records],
        "policy_sha256": [hashlib.sha256(r.path.read_bytes()).hexdigest() for r in records],
        "rlgen_version": rlgen.__version__,
        "algorithm_name": f"rlgen {level} behaviour" if records else "uniform random actions",
        "description": f"{task.name}-{level}: {steps} steps of {task.env_id} generated by `rlgen data make` "
        f"with seed {seed} from the task file's behaviour policies",
    }
    if np.isfinite(task.ref_min_score) and np.isfinite(task.ref_max_score):
        meta.update(ref_min_score=task.ref_min_score, ref_max_score=task.ref_max_score)
        meta["reference_source"] = task.reference_source
    return meta


def rollout(
    task: TaskSpec,
    policy: BehaviorPolicy | list[BehaviorPolicy] | None,
    steps: int,
    seed: int,
    num_envs: int = 8,
    progress: bool = True,
    label: str = "",
) -> Episodes:
    """``steps`` steps of ``policy`` (uniform random actions if None; a list: :func:`switching_actions`) on
    ``num_envs`` copies of the task."""
    rng = np.random.default_rng(seed)
    act = switching_actions(task, policy, rng) if isinstance(policy, list) else behavior_actions(task, policy, rng)
    envs = make_vector_env(task, num_envs, autoreset_mode="SameStep")
    try:
        recorder = _Recorder(num_envs)
        obs, _ = envs.reset(seed=seed)
        with tqdm(total=steps, unit="step", desc=f"{task.name} {label}", disable=not progress) as bar:
            while recorder.finished_steps < steps:
                actions = act(obs)
                next_obs, rewards, terminated, truncated, info = envs.step(actions)
                before = recorder.finished_steps
                recorder.record(obs, actions, rewards, terminated, truncated, info)
                bar.update(min(recorder.finished_steps, steps) - min(before, steps))
                obs = next_obs
    finally:
        envs.close()
    return recorder.episodes(steps, f"{task.name} {label} rollout", *task_spaces(task))


class _Recorder:
    """Per-step arrays of a vector env, cut into finished episodes (in the order they finish)."""

    def __init__(self, num_envs: int) -> None:
        self.columns: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "rew", "term", "trunc")}
        # (time of the last step, env index) -> (time of the first step, final observation), in finishing order
        self.finished: dict[tuple[int, int], tuple[int, np.ndarray]] = {}
        self.start = np.zeros(num_envs, dtype=np.int64)  # time of each env's current first step
        self.finished_steps = 0

    def record(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        info: dict[str, Any],
    ) -> None:
        """One vector step; ``info["final_obs"]`` holds the last observation of the episodes that ended."""
        t = len(self.columns["obs"])
        values = (np.asarray(obs, dtype=np.float32), actions, rewards, terminated, truncated)
        for key, value in zip(self.columns, values, strict=True):
            self.columns[key].append(np.asarray(value))
        for i in np.flatnonzero(terminated | truncated):
            final = np.asarray(info["final_obs"][i], dtype=np.float32)
            self.finished[(t, int(i))] = (int(self.start[i]), final)
            self.finished_steps += t + 1 - int(self.start[i])
            self.start[i] = t + 1

    def episodes(self, steps: int, source: str, observation_space: BoxSpace, action_space: Space) -> Episodes:
        """The first ``steps`` steps of finished episodes; the episode that crosses ``steps`` is cut there."""
        cols = {k: np.stack(v) for k, v in self.columns.items()}  # (time, env, ...)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in (*cols, "final")}
        ends = []
        total = 0
        for (t, i), (start, final) in self.finished.items():
            if total >= steps:
                break
            n = min(t + 1 - start, steps - total)
            span = slice(start, start + n)
            for key, col in cols.items():
                parts[key].append(col[span, i])
            if n < t + 1 - start:  # cut mid-episode: not terminal, ends in a (dataset-size) timeout
                parts["trunc"][-1] = np.arange(n) == n - 1
                final = cols["obs"][start + n, i]
            parts["final"].append(final)
            total += n
            ends.append(total)
        return Episodes(
            observations=np.concatenate(parts["obs"]),
            actions=np.concatenate(parts["act"]),
            rewards=np.concatenate(parts["rew"]).astype(np.float32),
            terminals=np.concatenate(parts["term"]),
            timeouts=np.concatenate(parts["trunc"]),
            episode_ends=np.asarray(ends, dtype=np.int64),
            final_observations=np.stack(parts["final"]),
            source=source,
            observation_space=observation_space,
            action_space=action_space,
        )
