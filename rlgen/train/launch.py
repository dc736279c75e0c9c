"""Recipes and runs: from ``agents/<name>.yaml`` and a dataset or task to a trained, checkpointed agent.

A recipe holds the agent's algorithm and two typed blocks, each overridable with ``--set``::

    algo: bc                      # a name in rlgen.algos.ALGOS
    train: {steps: 100000, ...}   # rlgen.train.TrainConfig
    agent: {head: dlml, ...}      # the algorithm's Config dataclass

A run's ``config.yaml`` is the recipe after overrides plus what it was trained on (:class:`RunConfig`), so
``--resume`` and ``rlgen eval`` rebuild everything from the run directory alone.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from rlgen.data import Episodes, check_actions_in_box, load_dataset, locate
from rlgen.rollout import evaluate
from rlgen.tasks import TaskSpec, list_tasks, load_task, parse_dataset_name
from rlgen.train.agent import Agent, BatchSampler, resolve_device
from rlgen.train.checkpoint import CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint
from rlgen.train.config import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    build,
    list_recipe_files,
    read_recipe_file,
    to_dict,
)
from rlgen.train.run_dir import RunDir, write_text_atomic
from rlgen.train.trainer import FitResult, fit, seed_everything

AGENTS_DIR_VAR = "RLGEN_AGENTS_DIR"
#: the dataset level an offline agent trains on when it is given a task name instead of a dataset
DEFAULT_LEVEL = "medium"
_RECIPE_KEYS = ("algo", "train", "agent")


# ------------------------------------------------------------------------------------------------ recipes


@dataclass(frozen=True)
class Recipe:
    """A parsed agent recipe: the algorithm name and its typed train / agent configs."""

    name: str
    algo: str
    train: TrainConfig
    agent: Any  # the algorithm's Config dataclass

    def with_overrides(self, overrides: Sequence[str]) -> Recipe:
        """Apply ``train.<key>=<value>`` / ``agent.<key>=<value>`` overrides (type-checked)."""
        groups: dict[str, list[str]] = {"train": [], "agent": []}
        for item in overrides:
            group, dot, rest = item.partition(".")
            if group not in groups or not dot:
                raise ConfigError(
                    f"override {item!r} must start with 'train.' or 'agent.'; valid keys: "
                    f"{', '.join(_valid_keys(self))}"
                )
            groups[group].append(rest)
        return replace(
            self,
            train=apply_overrides(self.train, groups["train"], "train"),
            agent=apply_overrides(self.agent, groups["agent"], "agent"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"algo": self.algo, "train": to_dict(self.train), "agent": to_dict(self.agent)}


def agents_root() -> Path:
    """``$RLGEN_AGENTS_DIR`` if set, else the ``agents/`` folder next to the ``rlgen`` package."""
    env = os.environ.get(AGENTS_DIR_VAR)
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "agents"
    if not root.is_dir():
        raise FileNotFoundError(f"agent recipes folder not found: {root}; set {AGENTS_DIR_VAR} to the folder of *.yaml")
    return root


def list_recipes() -> list[str]:
    """Names of the agent recipes (``agents/*.yaml`` without the suffix)."""
    return list_recipe_files(agents_root())


def load_recipe(name: str) -> Recipe:
    """Read ``agents/<name>.yaml`` (or a path to a recipe file); an unknown name lists the valid ones."""
    path, raw = read_recipe_file(name, agents_root(), "agent")
    try:
        return recipe_from_dict(path.stem, raw)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error


def recipe_from_dict(name: str, raw: Any) -> Recipe:
    """A :class:`Recipe` from a mapping with the keys ``algo``, ``train`` and ``agent``."""
    from rlgen.algos import get_algo  # rlgen.algos builds on rlgen.train, so it is imported when needed

    if not isinstance(raw, dict):
        raise ConfigError("a recipe must be a mapping with keys algo, train, agent")
    unknown = sorted(set(raw) - set(_RECIPE_KEYS))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(_RECIPE_KEYS)}")
    if not isinstance(raw.get("algo"), str):
        raise ConfigError(f"key 'algo' must name an algorithm, got {raw.get('algo')!r}")
    try:
        algo = get_algo(raw["algo"])
    except KeyError as error:
        raise ConfigError(error.args[0]) from error
    return Recipe(name, raw["algo"], build(TrainConfig, raw.get("train"), "train"),
                  build(algo.Config, raw.get("agent"), "agent"))  # fmt: skip


def _valid_keys(recipe: Recipe) -> list[str]:
    return [f"train.{k}" for k in to_dict(recipe.train)] + [f"agent.{k}" for k in to_dict(recipe.agent)]


# ------------------------------------------------------------------------------------------------ runs


@dataclass(frozen=True)
class RunConfig:
    """What ``config.yaml`` of a run holds: the recipe after overrides and the data it was trained on.

    :param dataset: the dataset as the user named it (``None`` for agents that need none).
    :param dataset_path: where that name resolved at the start, so a resume reads the same files.
    """

    recipe: Recipe
    task: str
    dataset: str | None
    dataset_path: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.recipe.name, "task": self.task, "dataset": self.dataset,
                "dataset_path": self.dataset_path, **self.recipe.to_dict()}  # fmt: skip

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> RunConfig:
        try:
            recipe = recipe_from_dict(str(raw["recipe"]), {k: raw.get(k) for k in _RECIPE_KEYS})
            return cls(recipe, str(raw["task"]), raw.get("dataset"), raw.get("dataset_path"))
        except KeyError as error:
            raise ConfigError(f"{where}: missing key {error.args[0]!r}") from error
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from error


def resolve_target(target: str, offline: bool = True, task: str | None = None) -> tuple[TaskSpec, str | None]:
    """The task and dataset meant by ``target``: a task name (an offline agent then uses its ``medium``
    dataset), a dataset name ``<task>-<level>``, or a dataset path / Minari id (with ``task`` given, or recorded
    in the dataset's metadata)."""
    if task is not None:
        return load_task(task), target
    tasks = list_tasks()
    if target in tasks:
        return load_task(target), (f"{target}-{DEFAULT_LEVEL}" if offline else None)
    try:
        return parse_dataset_name(target)[0], target
    except ValueError as not_a_name:
        try:
            location = locate(target)
        except FileNotFoundError:
            raise ValueError(
                f"{target!r} is neither a task ({', '.join(tasks)}), nor a dataset name <task>-<level>, nor a "
                f"local dataset path or Minari id ({not_a_name})"
            ) from None
    recorded = load_dataset(location.path).metadata.get("task")
    if recorded is None:
        raise ValueError(f"dataset {target!r} does not record its task; pass --task (one of {', '.join(tasks)})")
    return load_task(str(recorded)), target


def load_training_data(task: TaskSpec, dataset: str) -> Episodes:
    """Load ``dataset``, checking that its observation and action shapes fit ``task``'s spaces, that it was
    not recorded for another task (see :func:`check_dataset_task`) and that a continuous task's actions lie in
    its action box (bounded heads would otherwise fail on the first batch that draws one, at a random step)."""
    episodes = load_dataset(
        dataset,
        observation_shape=(task.obs_dim,),
        action_shape=() if task.discrete else (task.act_dim,),
        expected_by=f"task {task.name} ({task.env_id})",
    )
    check_dataset_task(episodes, task, dataset)
    if not task.discrete:
        check_actions_in_box(episodes, *task.action_bounds())
    return episodes


def check_dataset_task(episodes: Episodes, task: TaskSpec, dataset: str) -> None:
    """Refuse ``episodes`` if their metadata records a task or environment other than ``task``'s.

    Tasks of equal shapes (HalfCheetah and Walker2d) would otherwise train on one and be scored in the other
    without a word. Another version of the same environment (Hopper-v4 data for Hopper-v5) is only a warning,
    and a dataset that records neither (e.g. a bare D4RL file) is taken at its word.
    """
    recorded_task, recorded_env = episodes.metadata.get("task"), episodes.metadata.get("env_id")
    mismatch = []
    if recorded_task is not None and str(recorded_task) != task.name:
        mismatch.append(f"task {recorded_task}")
    if recorded_env is not None and _unversioned(str(recorded_env)) != _unversioned(task.env_id):
        mismatch.append(f"env_id {recorded_env}")
    if mismatch:
        raise ValueError(
            f"dataset {dataset} records {' and '.join(mismatch)}, but task {task.name} ({task.env_id}) was "
            f"requested; give a dataset recorded on {task.name}, or ask for the dataset's own task"
        )
    if recorded_env is not None and str(recorded_env) != task.env_id:
        warnings.warn(f"dataset {dataset} was recorded on {recorded_env}; task {task.name} evaluates in "
                      f"{task.env_id}", stacklevel=3)  # fmt: skip


def _unversioned(env_id: str) -> str:
    """``Hopper-v5`` -> ``Hopper``: the environment without its gymnasium version suffix."""
    name, sep, version = env_id.rpartition("-v")
    return name if sep and version.isdigit() else env_id


def default_run_dir(recipe: str, name: str, seed: int, root: str | os.PathLike[str] = "runs") -> Path:
    """``runs/<recipe>/<dataset or task>/seed<seed>-<date>-<time>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / recipe / Path(name).name.replace("/", "_") / f"seed{seed}-{stamp}"


def start_run(
    recipe: str,
    target: str,
    overrides: Sequence[str] = (),
    run_dir: str | os.PathLike[str] | None = None,
    device: str = "auto",
    task: str | None = None,
    progress: bool = True,
) -> tuple[RunDir, FitResult]:
    """Train a new run of agent ``recipe`` on ``target`` (see :func:`resolve_target`); returns its folder."""
    from rlgen.algos import get_algo

    parsed = load_recipe(recipe).with_overrides(overrides)
    algo = get_algo(parsed.algo)
    torch_device = resolve_device(device)
    spec, dataset = resolve_target(target, algo.offline, task)
    path = Path(run_dir) if run_dir else default_run_dir(parsed.name, dataset or spec.name, parsed.train.seed)
    RunDir.check_new(path)  # before the dataset is loaded: a taken folder should not cost a long load first
    data = load_training_data(spec, dataset) if dataset is not None else None
    dataset_path = str(locate(dataset).path.resolve()) if dataset is not None else None
    config = RunConfig(parsed, spec.name, dataset, dataset_path)
    # Building the agent checks it against the task and data; only then is the run folder written, so a
    # command that fails validation leaves nothing behind to block its corrected re-run.
    agent, sampler = _build_agent(config, spec, data, torch_device)
    run = RunDir.create(path, config.to_dict())
    return run, _fit(run, config, spec, agent, sampler, progress)


def resume_run(
    run_dir: str | os.PathLike[str], overrides: Sequence[str] = (), device: str = "auto", progress: bool = True
) -> tuple[RunDir, FitResult]:
    """Continue the run in ``run_dir`` from its newest checkpoint (or from the start if it has none).

    Only ``train.steps`` may be overridden, and only to train further (not below the step already reached);
    anything else would break the promise that a resumed run matches an uninterrupted one. If the newest
    checkpoints do not load (e.g. a file truncated by a full disk), they are set aside as ``*.pt.unreadable``
    with a warning and the run resumes from the newest one that loads. ``config.yaml`` and the checkpoints are
    only touched once everything has been checked.
    """
    run = RunDir.open(run_dir)
    raw = run.read_config()
    _refuse_generative_run(run, raw)
    config = RunConfig.from_dict(raw, str(run.config_path))
    changed = [o for o in overrides if not o.startswith("train.steps=")]
    if changed:
        raise ConfigError(f"a resumed run keeps its config; only train.steps may change, got {', '.join(changed)}")
    if overrides:
        config = replace(config, recipe=config.recipe.with_overrides(overrides))
    torch_device = resolve_device(device)
    step, unreadable = _resume_point(run)
    steps = config.recipe.train.steps
    if step > steps:
        raise ConfigError(f"run {run.path} is already at step {step}; train.steps={steps} would not train further "
                          f"(give train.steps of at least {step})")  # fmt: skip
    spec = load_task(config.task)
    data = load_training_data(spec, config.dataset_path) if config.dataset_path is not None else None
    agent, sampler = _build_agent(config, spec, data, torch_device)
    for path, error in unreadable:
        aside = path.with_name(path.name + ".unreadable")
        path.rename(aside)
        warnings.warn(f"{error}; moved it to {aside.name} and resuming from step {step}", stacklevel=2)
    if overrides:
        write_text_atomic(run.config_path, yaml.safe_dump(config.to_dict(), sort_keys=False))
    return run, _fit(run, config, spec, agent, sampler, progress)


def _resume_point(run: RunDir) -> tuple[int, list[tuple[Path, CheckpointError]]]:
    """The step of the newest checkpoint of ``run`` that loads (0 if it has none), and the newer ones that do
    not, with why. Raises :class:`CheckpointError` if the run has checkpoints but none of them loads."""
    unreadable: list[tuple[Path, CheckpointError]] = []
    for _, path in reversed(list_checkpoints(run.checkpoints)):
        try:
            return int(load_checkpoint(path)["step"]), unreadable
        except CheckpointError as error:
            unreadable.append((path, error))
    if unreadable:
        raise CheckpointError(f"no checkpoint of run {run.path} loads ({unreadable[0][1]}); delete "
                              f"{run.checkpoints} to train the run again from step 0")  # fmt: skip
    return 0, unreadable


def _build_agent(
    config: RunConfig, task: TaskSpec, data: Episodes | None, device: torch.device
) -> tuple[Agent, BatchSampler]:
    """The seeded, freshly initialised agent of ``config`` and what it samples batches from."""
    from rlgen.algos import get_algo

    train = config.recipe.train
    torch.set_num_threads(train.threads)
    seed_everything(train.seed)
    agent = get_algo(config.recipe.algo).create(config.recipe.agent, task, data, device)
    return agent, agent.sampler(data)


def _fit(
    run: RunDir, config: RunConfig, task: TaskSpec, agent: Agent, sampler: BatchSampler, progress: bool
) -> FitResult:
    train = config.recipe.train

    def evaluator(agent: Agent, step: int) -> dict[str, float]:
        result = evaluate(agent.eval_policy(), task, train.eval_episodes, train.eval_seed, train.eval_envs, step=step)
        # force: a resumed run evaluates again the steps its killed run reached after the last checkpoint
        result.write(run.evals / f"step_{step:08d}.json", force=True)
        return {**result.scalars(), **{f"progress/{k}": v for k, v in agent.counters().items()}}

    return fit(agent, sampler, train, run, evaluator, progress=progress)


def load_agent(
    run_dir: str | os.PathLike[str], checkpoint: str | os.PathLike[str] | None = None, device: str = "auto"
) -> tuple[Agent, TaskSpec, RunConfig, int]:
    """The trained agent of a run (newest checkpoint unless ``checkpoint`` is given), its task, config and step."""
    from rlgen.algos import get_algo

    run = RunDir.open(run_dir)
    raw = run.read_config()
    _refuse_generative_run(run, raw)
    config = RunConfig.from_dict(raw, str(run.config_path))
    path = Path(checkpoint) if checkpoint is not None else latest_checkpoint(run.checkpoints)
    if path is None:
        raise FileNotFoundError(f"run {run.path} has no checkpoint yet (looked in {run.checkpoints})")
    torch_device = resolve_device(device)
    try:
        state = load_checkpoint(path)
    except CheckpointError as error:
        older = [str(p) for _, p in list_checkpoints(run.checkpoints) if p != path] if checkpoint is None else []
        hint = f"; evaluate an older one with --checkpoint (kept: {', '.join(older)})" if older else ""
        raise CheckpointError(f"{error}{hint}") from error
    task = load_task(config.task)
    agent = get_algo(config.recipe.algo).create(config.recipe.agent, task, None, torch_device)
    try:
        agent.load_state_dict(state["agent"])
    except (RuntimeError, KeyError, ValueError, TypeError) as error:  # torch's size/key mismatches, foreign layouts
        summary = " ".join(line.strip() for line in str(error).strip().splitlines()[:2])
        raise CheckpointError(f"checkpoint {path} does not match the model of run {run.path} ({config.recipe.name} "
                              f"on {config.task}): {summary}") from error  # fmt: skip
    return agent, task, config, int(state["step"])


def _refuse_generative_run(run: RunDir, raw: dict[str, Any]) -> None:
    """Raise ``ConfigError`` if ``raw`` is the config of a ``rlgen generative`` run (it has a ``kind``, no
    ``algo``): ``rlgen eval`` and ``rlgen train --resume`` have no agent to build from it, and ``RunConfig``
    would only say that ``algo`` is missing."""
    if "kind" not in raw or "algo" in raw:
        return
    raise ConfigError(
        f"{run.path} is a generative run (kind {raw['kind']}), not an agent run: it is scored on held-out data "
        f"while it trains (eval/bits_per_dim in {run.metrics_path}) and writes its samples (samples.png or "
        f"samples.wav) into {run.path}; train it further with `rlgen generative train --resume {run.path} "
        f"--set train.steps=<more>`"
    )
