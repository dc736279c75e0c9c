"""Task files: one folder per environment under ``envs/`` holding ``task.yaml`` and its behaviour policies.

This is the lowest layer of rlgen: it knows gymnasium ids, horizons, declared spaces, reference scores and which
policy file produces which dataset level, and nothing about datasets, algorithms or environments' code (reading a
recipe imports no gymnasium; :mod:`rlgen.rollout.envs` builds the environments).

A ``task.yaml`` has a hand-written part (environment, reference scores, dataset levels, the PPO settings that
train the behaviour policies) followed by a block that ``scripts/train_behavior.py`` regenerates after
training (``behavior:`` with the shipped policy files and their measured returns)::

    name: hopper                      # = the folder name
    env_id: Hopper-v5
    max_episode_steps: 1000
    discrete: false                   # spaces, declared so reading a recipe never builds a MuJoCo model;
    obs_dim: 11                       # rlgen.rollout.make_env checks them against the real env
    act_dim: 3                        # (a discrete task gives num_actions instead of these three)
    action_low: -1.0                  # the action box: one number for every dimension, or a list of act_dim
    action_high: 1.0
    reference: {source: d4rl, min_score: -20.272305, max_score: 3234.3}   # or {source: measured}
    levels: [random, medium, expert, medium-replay, medium-expert]
    datasets: {steps_per_second: 5500}   # optional: the measured generation speed (`rlgen data make` estimates
                                      # its time from it)
    termination: failure              # optional: what a true termination (not a time limit) means: failure
                                      # (the default: falling, crashing, or none at all) or goal (some
                                      # episodes end by succeeding; GAIL then adds absorbing states)
    training: {...}                   # PPO settings, read only by scripts/train_behavior.py
    behavior: {random, expert, medium, replay}   # generated: policy files and measured returns
    second_expert: {algo, seed, expert}   # generated (scripts/train_behavior.py --second-expert): the expert of
                                      # a PPO run with another seed, for the second-expert / two-experts levels

With ``reference: {source: measured}`` the reference scores are the measured random return and the measured
(deterministic) expert return recorded in the generated ``behavior`` block.

A dataset name fixes its size: ``<task>-<level>`` is the level's size (D4RL's: 1M steps, 2M for
``medium-expert``), and ``<task>-<level>-<size>`` a smaller or larger set of that level, e.g.
``hopper-medium-200k`` (size ``<digits>[k|m]``). See docs/datasets.md.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from rlgen.catalog import ENVS_DIR_VAR as ENVS_DIR_VAR  # re-exported: the folders are found by rlgen.catalog
from rlgen.catalog import TASK_FILE, list_tasks, tasks_root
from rlgen.config import build
from rlgen.heads.config import did_you_mean

KNOWN_LEVELS = (
    "random",
    "medium",
    "expert",
    "medium-replay",
    "medium-expert",
    "second-expert",
    "two-experts",
    "switching-experts",
)
#: the size of ``<task>-<level>`` in steps: D4RL's (medium-expert is 1M medium + 1M expert), 1M for other levels
LEVEL_STEPS = {"medium-expert": 2_000_000}
#: the levels that need the ``second_expert`` block
SECOND_EXPERT_LEVELS = ("second-expert", "two-experts", "switching-experts")
DEFAULT_LEVEL_STEPS = 1_000_000
_SIZE = re.compile(r"^([1-9][0-9]*)([km]?)$")
_SIZE_UNITS = {"": 1, "k": 1_000, "m": 1_000_000}
#: what a true termination means: the episode failed (or never terminates), or some episodes end at a goal
Termination = Literal["failure", "goal"]


class TaskFileError(ValueError):
    """A task file is missing, unreadable or has an invalid field."""


def normalized_score(
    returns: float | Sequence[float] | np.ndarray, ref_min_score: float, ref_max_score: float
) -> np.ndarray:
    """D4RL's ``100 * (R - ref_min) / (ref_max - ref_min)``: 0 is the random policy, 100 the reference expert.

    ``minari.get_normalized_score`` computes the same quantity on a 0-1 scale.
    """
    if not ref_max_score > ref_min_score:
        raise ValueError(f"ref_max_score {ref_max_score} must exceed ref_min_score {ref_min_score}")
    r = np.asarray(returns, dtype=np.float64)
    return 100.0 * (r - ref_min_score) / (ref_max_score - ref_min_score)


@dataclass(frozen=True)
class ReturnStats:
    """Mean/std of undiscounted episode returns over ``episodes`` episodes seeded ``seed, seed+1, ...``."""

    mean: float
    std: float
    episodes: int
    seed: int

    def __post_init__(self) -> None:
        _require_finite(self, "mean", "std")
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")


@dataclass(frozen=True)
class PolicyRecord:
    """One shipped behaviour-policy file and its measured returns."""

    path: Path
    train_steps: int
    deterministic: ReturnStats
    stochastic: ReturnStats


@dataclass(frozen=True)
class TaskSpec:
    """Everything rlgen knows about one task, read from ``envs/<name>/task.yaml``."""

    name: str
    env_id: str
    max_episode_steps: int
    ref_min_score: float
    ref_max_score: float
    reference_source: str  # "d4rl" (published constants) or "measured" (random / expert returns below)
    levels: tuple[str, ...]
    task_dir: Path
    obs_dim: int
    act_dim: int  # number of action dimensions; 1 for a discrete action
    discrete: bool
    num_actions: int | None  # discrete tasks only
    action_low: tuple[float, ...] | None  # continuous tasks only: the action box, one bound per dimension
    action_high: tuple[float, ...] | None
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    termination: Termination = "failure"  # what a true termination means (module docstring)
    # Generated by scripts/train_behavior.py; empty until policies are trained.
    random_return: ReturnStats | None = None
    expert: PolicyRecord | None = None
    medium: PolicyRecord | None = None
    # Snapshots from the start of training up to and including ``medium``, in training order (medium-replay).
    replay: tuple[PolicyRecord, ...] = ()
    # The expert of a second PPO run (another seed): the other behaviour of the two-experts level.
    second_expert: PolicyRecord | None = None
    # Measured speed of `rlgen data make` (None if not measured): its time estimate.
    generation_steps_per_second: float | None = None

    def level_steps(self, level: str) -> int:
        """The size in steps of dataset ``<task>-<level>``: 2M for ``medium-expert``, else 1M (D4RL's)."""
        self._check_level(level)
        return LEVEL_STEPS.get(level, DEFAULT_LEVEL_STEPS)

    def action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` of a continuous task's action box, float32 arrays of shape ``(act_dim,)``."""
        if self.action_low is None or self.action_high is None:
            raise TaskFileError(f"{self.task_dir / TASK_FILE}: task {self.name!r} has a discrete action space")
        return np.array(self.action_low, dtype=np.float32), np.array(self.action_high, dtype=np.float32)

    def normalized_score(self, returns: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """D4RL normalised score ``100 * (R - ref_min) / (ref_max - ref_min)`` (0 = random, 100 = expert)."""
        if not (math.isfinite(self.ref_min_score) and math.isfinite(self.ref_max_score)):
            raise TaskFileError(
                f"{self.task_dir / TASK_FILE}: reference scores are measured from the behaviour policies, "
                f"which are not trained yet (python scripts/train_behavior.py {self.name})"
            )
        return normalized_score(returns, self.ref_min_score, self.ref_max_score)

    def policies_for_level(self, level: str) -> tuple[PolicyRecord, ...]:
        """The policies a dataset level is rolled out from (empty for ``random``), in the order to use them."""
        self._check_level(level)
        if level == "random":
            return ()
        if level == "medium-replay":
            records: tuple[PolicyRecord | None, ...] = self.replay
        elif level == "medium-expert":
            records = (self.medium, self.expert)
        elif level in ("two-experts", "switching-experts"):
            records = (self.expert, self.second_expert)
        else:
            records = ({"medium": self.medium, "second-expert": self.second_expert}.get(level, self.expert),)
        if not records or any(r is None for r in records):
            second = " --second-expert --seed N" if self.expert is not None and level in SECOND_EXPERT_LEVELS else ""
            raise TaskFileError(
                f"{self.task_dir / TASK_FILE}: no trained behaviour policy for level {level!r}; "
                f"run `python scripts/train_behavior.py {self.name}{second}` first"
            )
        return tuple(r for r in records if r is not None)

    def _check_level(self, level: str) -> None:
        if level not in self.levels:
            raise ValueError(f"task {self.name!r} has no level {level!r}; valid levels: {', '.join(self.levels)}")


def load_task(name: str, allow_untrained: bool = False) -> TaskSpec:
    """Read and validate ``envs/<name>/task.yaml``; an unknown name raises ``KeyError`` listing valid ones.

    ``allow_untrained``: see :func:`load_task_file`.
    """
    if not name or name in (".", "..") or any(sep in name for sep in ("/", "\\", os.sep)):
        # A name read from a dataset's metadata is joined into a path: it must stay inside the recipes folder.
        raise ValueError(
            f"task name {name!r} is not a plain name (no path separators or '..'); valid tasks: "
            f"{', '.join(list_tasks()) or '(none)'}"
        )
    path = tasks_root() / name / TASK_FILE
    if not path.is_file():
        raise KeyError(f"unknown task {name!r}; valid tasks: {', '.join(list_tasks()) or '(none)'}")
    return load_task_file(path, allow_untrained)


def parse_dataset_name(name: str) -> tuple[TaskSpec, str]:
    """Split ``"<task>-<level>[-<size>]"`` (e.g. ``"hopper-medium-replay"``, ``"hopper-medium-200k"``) into the task
    spec and the level."""
    spec, level, _ = parse_sized_dataset_name(name)
    return spec, level


def dataset_steps(name: str) -> int:
    """The size in steps that dataset name ``<task>-<level>[-<size>]`` fixes (see the module docstring)."""
    return parse_sized_dataset_name(name)[2]


def sized_dataset_name(task: TaskSpec, level: str, steps: int) -> str:
    """The name of ``steps`` steps of ``level``: ``<task>-<level>`` at the level's size, else with the size
    (``hopper-medium-200k``)."""
    if steps == task.level_steps(level):
        return f"{task.name}-{level}"
    return f"{task.name}-{level}-{format_steps(steps)}"


def format_steps(steps: int) -> str:
    """``200000`` -> ``"200k"``, ``1000000`` -> ``"1m"``, ``2500`` -> ``"2500"``: a size as dataset names write it."""
    if steps < 1:
        raise ValueError(f"a dataset size must be >= 1 step, got {steps}")
    for suffix in ("m", "k"):
        if steps % _SIZE_UNITS[suffix] == 0:
            return f"{steps // _SIZE_UNITS[suffix]}{suffix}"
    return str(steps)


def parse_sized_dataset_name(name: str) -> tuple[TaskSpec, str, int]:
    """``(task spec, level, steps)`` of ``"<task>-<level>[-<size>]"``; ``ValueError`` naming the valid levels."""
    tasks = list_tasks()
    # Task names may not contain a level, but levels contain '-', so match the task as the longest prefix.
    for task in sorted(tasks, key=len, reverse=True):
        if name.startswith(task + "-"):
            spec = load_task(task)
            rest = name[len(task) + 1 :]
            if rest in spec.levels:
                return spec, rest, spec.level_steps(rest)
            level, _, size = rest.rpartition("-")
            match = _SIZE.match(size)
            if level in spec.levels and match:
                steps = int(match.group(1)) * _SIZE_UNITS[match.group(2)]
                if steps == spec.level_steps(level):
                    raise ValueError(f"dataset {name!r} is {task}-{level} ({steps:,} steps): name it so")
                return spec, level, steps
            raise ValueError(
                f"dataset {name!r}: task {task!r} has no level {rest!r}{did_you_mean(rest, spec.levels)}; valid: "
                f"<task>-<level>[-<size>] with a level of {', '.join(spec.levels)} and a size such as 200k "
                "(default: the level's size)"
            )
    valid = ", ".join(f"{t}-{{{','.join(KNOWN_LEVELS)}}}" for t in tasks)
    raise ValueError(f"dataset name {name!r} is not <task>-<level>[-<size>]; valid: {valid or '(no tasks found)'}")


# --------------------------------------------------------------------------------------------- parsing
# The file's schema, built by rlgen.config.build: every field is type-checked and named in errors.


def _require_finite(config: Any, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")


@dataclass(frozen=True)
class _PolicyEntry:
    """One ``behavior`` policy as the file spells it (``file`` relative to the task folder)."""

    file: str
    train_steps: int
    deterministic: ReturnStats
    stochastic: ReturnStats

    def __post_init__(self) -> None:
        if self.train_steps < 0:
            raise ValueError(f"train_steps must be >= 0, got {self.train_steps}")


@dataclass(frozen=True)
class _Behavior:
    """The ``behavior`` block that ``scripts/train_behavior.py`` generates."""

    random: ReturnStats
    expert: _PolicyEntry
    medium: _PolicyEntry
    replay: tuple[_PolicyEntry, ...]
    algo: str = ""
    seed: int = 0
    snapshot_every: int = 0
    dense_snapshots: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.replay:
            raise ValueError("replay must list at least the medium policy")


@dataclass(frozen=True)
class _SecondExpert:
    """The ``second_expert`` block that ``scripts/train_behavior.py --second-expert`` generates."""

    expert: _PolicyEntry
    algo: str = ""
    seed: int = 0


@dataclass(frozen=True)
class _Reference:
    source: Literal["d4rl", "measured"]
    min_score: float | None = None
    max_score: float | None = None

    def __post_init__(self) -> None:
        _require_finite(self, "min_score", "max_score")
        if self.source == "d4rl" and (self.min_score is None or self.max_score is None):
            raise ValueError("source d4rl needs min_score and max_score")


@dataclass(frozen=True)
class _Datasets:
    """The optional ``datasets`` block: the measured generation speed."""

    steps_per_second: float | None = None

    def __post_init__(self) -> None:
        _require_finite(self, "steps_per_second")
        if self.steps_per_second is not None and self.steps_per_second <= 0:
            raise ValueError(f"steps_per_second must be > 0, got {self.steps_per_second}")


@dataclass(frozen=True)
class _TaskFile:
    name: str
    env_id: str
    max_episode_steps: int
    discrete: bool
    obs_dim: int
    reference: _Reference
    levels: tuple[str, ...]
    act_dim: int | None = None  # continuous tasks
    action_low: float | tuple[float, ...] | None = None
    action_high: float | tuple[float, ...] | None = None
    num_actions: int | None = None  # discrete tasks
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    termination: Termination = "failure"
    datasets: _Datasets = field(default_factory=_Datasets)
    training: dict[str, Any] = field(default_factory=dict)
    behavior: _Behavior | None = None
    second_expert: _SecondExpert | None = None

    def __post_init__(self) -> None:
        for name in ("name", "env_id"):
            if not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string")
        for name, minimum in (("max_episode_steps", 1), ("obs_dim", 1)):
            if getattr(self, name) < minimum:
                raise ValueError(f"{name} must be >= {minimum}, got {getattr(self, name)}")
        unknown = [level for level in self.levels if level not in KNOWN_LEVELS]
        if unknown or not self.levels or len(set(self.levels)) != len(self.levels):
            raise ValueError(f"levels must be distinct names out of {', '.join(KNOWN_LEVELS)}, got {list(self.levels)}")
        needed = ("num_actions",) if self.discrete else ("act_dim", "action_low", "action_high")
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            kind = "a discrete" if self.discrete else "a continuous"
            raise ValueError(f"{kind} task needs {' and '.join(missing)}")
        if self.discrete and self.num_actions < 2:  # type: ignore[operator]
            raise ValueError(f"num_actions must be >= 2, got {self.num_actions}")
        if not self.discrete and self.act_dim < 1:  # type: ignore[operator]
            raise ValueError(f"act_dim must be >= 1, got {self.act_dim}")

    def bounds(self, name: str) -> tuple[float, ...]:
        """``action_low`` or ``action_high`` as one finite number per action dimension."""
        value, size = getattr(self, name), self.act_dim
        values = value if isinstance(value, tuple) else (value,) * size
        if len(values) != size or not all(math.isfinite(v) for v in values):
            raise ValueError(f"{name} must be a finite number or a list of {size} finite numbers, got {value!r}")
        return tuple(float(v) for v in values)


def load_task_file(path: Path, allow_untrained: bool = False) -> TaskSpec:
    """Parse and validate one ``task.yaml``; every error is a :class:`TaskFileError` naming the file and field.

    ``allow_untrained`` accepts a ``reference: {source: measured}`` task file whose behaviour policies are not
    trained yet (reference scores NaN; ``normalized_score`` then raises).
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
        file = build(_TaskFile, raw)
        if file.name != path.parent.name:
            raise ValueError(f"name is {file.name!r} but the task folder is {path.parent.name!r}")
        action_low = action_high = None
        if not file.discrete:
            action_low, action_high = file.bounds("action_low"), file.bounds("action_high")
            if not all(lo < hi for lo, hi in zip(action_low, action_high, strict=True)):
                raise ValueError(f"action_low {list(action_low)}, action_high {list(action_high)}: every low bound "
                                 "must be below its high bound")  # fmt: skip
        behavior = file.behavior
        random_return = expert = medium = None
        replay: tuple[PolicyRecord, ...] = ()
        if behavior is not None:
            random_return = behavior.random
            expert = _policy_record(path, behavior.expert, "behavior.expert")
            medium = _policy_record(path, behavior.medium, "behavior.medium")
            replay = tuple(_policy_record(path, p, f"behavior.replay[{i}]") for i, p in enumerate(behavior.replay))
            if replay[-1].path != medium.path:
                raise ValueError(f"behavior.replay must end with the medium policy {medium.path.name}")
        second_expert = None
        if file.second_expert is not None:
            if behavior is None:
                raise ValueError("second_expert needs the behavior block (the first expert) before it")
            if file.second_expert.seed == behavior.seed:
                raise ValueError(f"second_expert.seed {file.second_expert.seed} is behavior.seed: the second "
                                 "expert comes from a PPO run with another seed")  # fmt: skip
            second_expert = _policy_record(path, file.second_expert.expert, "second_expert.expert")
        ref_min, ref_max = _reference_scores(file, random_return, expert, allow_untrained)
    except (OSError, yaml.YAMLError) as e:
        raise TaskFileError(f"{path}: cannot read task file: {e}") from e
    except ValueError as e:  # ConfigError from the schema, or a check across fields above
        raise TaskFileError(f"{path}: {e}") from e
    return TaskSpec(
        name=file.name,
        env_id=file.env_id,
        max_episode_steps=file.max_episode_steps,
        ref_min_score=ref_min,
        ref_max_score=ref_max,
        reference_source=file.reference.source,
        levels=file.levels,
        task_dir=path.parent,
        obs_dim=file.obs_dim,
        act_dim=1 if file.discrete else file.act_dim,  # type: ignore[arg-type]
        discrete=file.discrete,
        num_actions=file.num_actions if file.discrete else None,
        action_low=action_low,
        action_high=action_high,
        env_kwargs=file.env_kwargs,
        training=file.training,
        termination=file.termination,
        random_return=random_return,
        expert=expert,
        medium=medium,
        replay=replay,
        second_expert=second_expert,
        generation_steps_per_second=file.datasets.steps_per_second,
    )


def _reference_scores(
    file: _TaskFile, random_return: ReturnStats | None, expert: PolicyRecord | None, allow_untrained: bool
) -> tuple[float, float]:
    """``(ref_min, ref_max)``: D4RL's constants, or the measured random and expert returns."""
    if file.reference.source == "d4rl":
        ref_min, ref_max = float(file.reference.min_score), float(file.reference.max_score)  # type: ignore[arg-type]
    elif random_return is not None and expert is not None:
        ref_min, ref_max = random_return.mean, expert.deterministic.mean
    elif allow_untrained:  # only the trainer reads a task file before its reference returns exist
        return math.nan, math.nan
    else:
        raise ValueError(f"reference.source: measured needs the generated 'behavior' block (run "
                         f"scripts/train_behavior.py {file.name})")  # fmt: skip
    if not ref_max > ref_min:
        raise ValueError(f"reference max score {ref_max} must exceed min score {ref_min}")
    return ref_min, ref_max


def _policy_record(path: Path, entry: _PolicyEntry, where: str) -> PolicyRecord:
    file = path.parent / entry.file
    if not file.is_file():
        raise ValueError(f"{where}.file names {file}, which does not exist")
    return PolicyRecord(file, entry.train_steps, entry.deterministic, entry.stochastic)
