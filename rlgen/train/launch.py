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
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from rlgen.data import Episodes, load_dataset, locate
from rlgen.rollout import evaluate
from rlgen.tasks import TaskSpec, list_tasks, load_task, parse_dataset_name
from rlgen.train.agent import Agent, resolve_device
from rlgen.train.checkpoint import latest_checkpoint, load_checkpoint
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
    """Load ``dataset``, checking that its observation and action shapes fit ``task``'s spaces."""
    return load_dataset(
        dataset,
        observation_shape=(task.obs_dim,),
        action_shape=() if task.discrete else (task.act_dim,),
        expected_by=f"task {task.name} ({task.env_id})",
    )


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
    spec, dataset = resolve_target(target, algo.offline, task)
    data = load_training_data(spec, dataset) if dataset is not None else None
    dataset_path = str(locate(dataset).path.resolve()) if dataset is not None else None
    config = RunConfig(parsed, spec.name, dataset, dataset_path)
    run = RunDir.create(run_dir or default_run_dir(parsed.name, dataset or spec.name, parsed.train.seed),
                        config.to_dict())  # fmt: skip
    return run, _train(run, config, spec, data, device, progress)


def resume_run(
    run_dir: str | os.PathLike[str], overrides: Sequence[str] = (), device: str = "auto", progress: bool = True
) -> tuple[RunDir, FitResult]:
    """Continue the run in ``run_dir`` from its newest checkpoint (or from the start if it has none).

    Only ``train.steps`` may be overridden (to train further); anything else would break the promise that a
    resumed run matches an uninterrupted one.
    """
    run = RunDir.open(run_dir)
    config = RunConfig.from_dict(run.read_config(), str(run.config_path))
    changed = [o for o in overrides if not o.startswith("train.steps=")]
    if changed:
        raise ConfigError(f"a resumed run keeps its config; only train.steps may change, got {', '.join(changed)}")
    if overrides:
        config = replace(config, recipe=config.recipe.with_overrides(overrides))
        write_text_atomic(run.config_path, yaml.safe_dump(config.to_dict(), sort_keys=False))
    spec = load_task(config.task)
    data = load_training_data(spec, config.dataset_path) if config.dataset_path is not None else None
    return run, _train(run, config, spec, data, device, progress)


def _train(
    run: RunDir, config: RunConfig, task: TaskSpec, data: Episodes | None, device: str, progress: bool
) -> FitResult:
    from rlgen.algos import get_algo

    train = config.recipe.train
    torch.set_num_threads(train.threads)
    seed_everything(train.seed)
    agent = get_algo(config.recipe.algo).create(config.recipe.agent, task, data, resolve_device(device))
    sampler = agent.sampler(data)

    def evaluator(agent: Agent, step: int) -> dict[str, float]:
        result = evaluate(agent.eval_policy(), task, train.eval_episodes, train.eval_seed, train.eval_envs, step=step)
        result.write(run.evals / f"step_{step:08d}.json")
        return {**result.scalars(), **{f"progress/{k}": v for k, v in agent.counters().items()}}

    return fit(agent, sampler, train, run, evaluator, progress=progress)


def load_agent(
    run_dir: str | os.PathLike[str], checkpoint: str | os.PathLike[str] | None = None, device: str = "auto"
) -> tuple[Agent, TaskSpec, RunConfig, int]:
    """The trained agent of a run (newest checkpoint unless ``checkpoint`` is given), its task, config and step."""
    from rlgen.algos import get_algo

    run = RunDir.open(run_dir)
    config = RunConfig.from_dict(run.read_config(), str(run.config_path))
    path = Path(checkpoint) if checkpoint is not None else latest_checkpoint(run.checkpoints)
    if path is None:
        raise FileNotFoundError(f"run {run.path} has no checkpoint yet (looked in {run.checkpoints})")
    task = load_task(config.task)
    agent = get_algo(config.recipe.algo).create(config.recipe.agent, task, None, resolve_device(device))
    state = load_checkpoint(path)
    agent.load_state_dict(state["agent"])
    return agent, task, config, int(state["step"])
