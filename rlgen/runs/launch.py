"""Runs: from a recipe (and, for agents that act, a dataset or task) to a trained, checkpointed agent.

A run's ``config.yaml`` is the recipe after overrides plus what it was trained on (:class:`RunConfig`), so
:func:`resume_run`, :func:`load_agent` and ``rlgen eval`` rebuild everything from the run folder alone, whichever
kind of agent it holds. The two kinds differ in three places only, each one function here:

* agents that act (``rlgen.algos``) learn from a dataset (:class:`~rlgen.data.DatasetRef`) or their own
  environments and are evaluated by episodes in their task (normalised score, ``evals/step_*.json``);
* generative agents (``rlgen.generative``) learn from their own data, are evaluated by held-out bits/dim and
  write their samples (``samples.png`` / ``samples.wav``) when training stops.
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

from rlgen.data import DEFAULT_LEVEL, DatasetRef, Episodes, check_actions_in_box, load_dataset, resolve_dataset
from rlgen.generative import HeldOutResult, LevelAgent, LevelData
from rlgen.rollout import EvalResult, evaluate
from rlgen.runs.recipes import ENVIRONMENT_KEYS, RECIPE_KEYS, Recipe, acts, load_recipe, recipe_from_dict
from rlgen.tasks import TaskSpec, load_task
from rlgen.train.agent import Agent, BatchSampler, Learner, resolve_device
from rlgen.train.checkpoint import CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint
from rlgen.train.config import ConfigError, TrainConfig
from rlgen.train.run_dir import RunDir, write_text_atomic
from rlgen.train.trainer import FitResult, fit, seed_everything

#: what an agent works on: the task an acting agent acts in, or a generative agent's data
Subject = TaskSpec | LevelData


@dataclass(frozen=True)
class RunConfig:
    """What ``config.yaml`` of a run holds: the recipe after overrides and, for agents that act, their data.

    :param task: the task an acting agent acts in (``None`` for generative agents).
    :param dataset: the dataset as resolved from what the user named (``None`` for agents that need none).
    :param dataset_path: where it was at the start, so a resume reads the same files.
    """

    recipe: Recipe
    task: str | None = None
    dataset: str | None = None
    dataset_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {"task": self.task, "dataset": self.dataset, "dataset_path": self.dataset_path}
        return {"recipe": self.recipe.name, **(data if acts(self.recipe.agent_class) else {}), **self.recipe.to_dict()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> RunConfig:
        raw = _upgrade(raw)
        try:
            recipe = recipe_from_dict(str(raw["recipe"]), {k: raw.get(k) for k in RECIPE_KEYS})
            if not acts(recipe.agent_class):
                return cls(recipe)
            return cls(recipe, str(raw["task"]), raw.get("dataset"), raw.get("dataset_path"))
        except KeyError as error:
            raise ConfigError(f"{where}: missing key {error.args[0]!r}") from error
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from error


def _upgrade(raw: dict[str, Any]) -> dict[str, Any]:
    """A generative run's config as written before every recipe spelled ``algo`` / ``agent`` (it had ``kind`` /
    ``model`` and, earlier, environment keys in ``train``) in today's spelling; any other config unchanged."""
    if "kind" not in raw or "algo" in raw:
        return raw
    train = raw.get("train")
    if isinstance(train, dict):
        train = {k: v for k, v in train.items() if k not in ENVIRONMENT_KEYS}
    rest = {k: v for k, v in raw.items() if k not in ("kind", "model", "train")}
    return {**rest, "algo": raw["kind"], "train": train, "agent": raw.get("model")}


# ------------------------------------------------------------------------------------------------ start, resume


def default_run_dir(recipe: str, name: str, seed: int, root: str | os.PathLike[str] = "runs") -> Path:
    """``runs/<recipe>/<dataset or task>/seed<seed>-<date>-<time>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / recipe / Path(name).name.replace("/", "_") / f"seed{seed}-{stamp}"


def start_run(
    recipe: str | Recipe,
    target: str | DatasetRef | None = None,
    overrides: Sequence[str] = (),
    run_dir: str | os.PathLike[str] | None = None,
    device: str = "auto",
    task: str | None = None,
    progress: bool = True,
    data: LevelData | None = None,
) -> tuple[RunDir, FitResult]:
    """Train a new run of ``recipe`` (a name, a ``.yaml`` path, or a parsed recipe); returns its folder.

    :param target: what an acting agent learns from: a dataset reference, or what :func:`rlgen.data.resolve_dataset`
        resolves (a task name: offline agents then use its ``medium`` dataset). Generative agents take none.
    :param task: the task of a dataset given by path that does not record it.
    :param data: a generative agent's data, if already loaded (built from the recipe otherwise).
    """
    parsed = (recipe if isinstance(recipe, Recipe) else load_recipe(recipe)).with_overrides(overrides)
    torch_device = resolve_device(device)
    if acts(parsed.agent_class):
        if data is not None:
            raise ValueError(f"data= is for generative agents; {parsed.name} learns from a dataset or its task")
        config, name = _resolve(parsed, target, task)
    else:
        if target is not None or task is not None:
            raise ValueError(
                f"{parsed.name} is a generative recipe: it models its own data and takes no dataset or task "
                f"(got {target or task!r}); train it with `rlgen generative train {parsed.name}`"
            )
        config, name = RunConfig(parsed), parsed.name
    group = parsed.name if acts(parsed.agent_class) else "generative"
    path = Path(run_dir) if run_dir else default_run_dir(group, name, parsed.train.seed)
    RunDir.check_new(path)  # before the data is loaded: a taken folder should not cost a long load first
    subject, training_data = _load(config, data)
    # Building the agent checks it against the task and data; only then is the run folder written, so a
    # command that fails validation leaves nothing behind to block its corrected re-run.
    agent, sampler = _build(config, subject, training_data, torch_device)
    run = RunDir.create(path, config.to_dict())
    return run, _fit(run, config, subject, agent, sampler, progress)


def _resolve(recipe: Recipe, target: str | DatasetRef | None, task: str | None) -> tuple[RunConfig, str]:
    """The run config of acting agent ``recipe`` on ``target``, and the name of its run folder's data level."""
    if target is None:
        raise ValueError(f"{recipe.name} acts in a task: give a dataset or task to train it on")
    offline = recipe.agent_class.offline  # type: ignore[attr-defined]
    ref = target if isinstance(target, DatasetRef) else \
        resolve_dataset(target, task, default_level=DEFAULT_LEVEL if offline else None)  # fmt: skip
    task_name = ref.require_task()
    if ref.name is None:
        return RunConfig(recipe, task_name), task_name
    return RunConfig(recipe, task_name, ref.name, str(ref.require_path())), ref.name


def resume_run(
    run_dir: str | os.PathLike[str],
    overrides: Sequence[str] = (),
    device: str = "auto",
    progress: bool = True,
    data: LevelData | None = None,
) -> tuple[RunDir, FitResult]:
    """Continue the run in ``run_dir`` (of any agent) from its newest checkpoint (or from the start if it has none).

    Only ``train.steps`` may be overridden, and only to train further (not below the step already reached);
    anything else would break the promise that a resumed run matches an uninterrupted one. If the newest
    checkpoints do not load (e.g. a file truncated by a full disk), they are set aside as ``*.pt.unreadable``
    with a warning and the run resumes from the newest one that loads. ``config.yaml`` and the checkpoints are
    only touched once everything has been checked.

    :param data: a generative agent's data, if already loaded (built from the run's recipe otherwise).
    """
    run = RunDir.open(run_dir)
    config = RunConfig.from_dict(run.read_config(), str(run.config_path))
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
    subject, training_data = _load(config, data)
    agent, sampler = _build(config, subject, training_data, torch_device)
    for path, error in unreadable:
        aside = path.with_name(path.name + ".unreadable")
        path.rename(aside)
        warnings.warn(f"{error}; moved it to {aside.name} and resuming from step {step}", stacklevel=2)
    if overrides:
        write_text_atomic(run.config_path, yaml.safe_dump(config.to_dict(), sort_keys=False))
    return run, _fit(run, config, subject, agent, sampler, progress)


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


# ------------------------------------------------------------------------------------------------ the two kinds


def _load(config: RunConfig, data: LevelData | None) -> tuple[Subject, Episodes | None]:
    """What the agent of ``config`` works on, and the dataset it learns from (``None`` if it has none)."""
    agent_class = config.recipe.agent_class
    if not acts(agent_class):
        return data or agent_class.Data(config.recipe.agent), None  # type: ignore[attr-defined]
    task = load_task(str(config.task))
    if config.dataset_path is None:
        return task, None
    return task, load_training_data(task, config.dataset_path, config.dataset)


def _create(config: RunConfig, subject: Subject, data: Episodes | None, device: torch.device) -> Learner:
    """A freshly initialised agent of ``config`` for ``subject``; ``data`` is ``None`` when it is only rebuilt to
    load a checkpoint."""
    agent_class, agent_config = config.recipe.agent_class, config.recipe.agent
    if acts(agent_class):
        return agent_class.create(agent_config, subject, data, device)  # type: ignore[attr-defined]
    return agent_class.create(agent_config, subject, device)  # type: ignore[attr-defined]


def _build(
    config: RunConfig, subject: Subject, data: Episodes | None, device: torch.device
) -> tuple[Learner, BatchSampler]:
    """The seeded, freshly initialised agent of ``config`` and what it samples batches from."""
    train = config.recipe.train
    torch.set_num_threads(train.threads)
    seed_everything(train.seed)
    agent = _create(config, subject, data, device)
    agent.set_total_steps(train.steps)
    if isinstance(agent, Agent):
        return agent, agent.sampler(data)
    return agent, subject.batches()  # type: ignore[union-attr]


def evaluate_agent(
    agent: Learner,
    subject: Subject,
    train: TrainConfig,
    step: int | None,
    episodes: int | None = None,
    seed: int | None = None,
    envs: int | None = None,
) -> EvalResult | HeldOutResult:
    """Score ``agent``: by ``episodes`` episodes in its task (defaults: the run's ``train.eval_*``) for an agent
    that acts, by held-out bits/dim for a generative one (which takes no episode options)."""
    if isinstance(agent, Agent) and isinstance(subject, TaskSpec):
        episodes = train.eval_episodes if episodes is None else episodes
        seed = train.eval_seed if seed is None else seed
        return evaluate(agent.eval_policy(), subject, episodes, seed, train.eval_envs if envs is None else envs, step)
    given = [name for name, value in (("episodes", episodes), ("seed", seed), ("envs", envs)) if value is not None]
    if given:
        raise ValueError(f"{', '.join(given)} set(s) evaluation episodes in an environment; {type(agent).__name__} "
                         f"is scored by held-out bits/dim")  # fmt: skip
    return agent.evaluate(subject, step)  # type: ignore[attr-defined]


def _fit(
    run: RunDir, config: RunConfig, subject: Subject, agent: Learner, sampler: BatchSampler, progress: bool
) -> FitResult:
    train = config.recipe.train

    def evaluator(agent: Learner, step: int) -> dict[str, float]:
        result = evaluate_agent(agent, subject, train, step)
        if isinstance(result, HeldOutResult):
            return result.scalars()
        # force: a resumed run evaluates again the steps its killed run reached after the last checkpoint
        result.write(run.evals / f"step_{step:08d}.json", force=True)
        return {**result.scalars(), **{f"progress/{k}": v for k, v in agent.counters().items()}}

    result = fit(agent, sampler, train, run, evaluator, progress=progress)
    if isinstance(agent, LevelAgent):
        agent.write_samples(subject, run.path, seed=train.seed, progress=progress)  # type: ignore[arg-type]
    return result


# ------------------------------------------------------------------------------------------------ data checks


def load_training_data(task: TaskSpec, dataset: str | os.PathLike[str], name: str | None = None) -> Episodes:
    """Load ``dataset`` (a path, or anything :func:`rlgen.data.load_dataset` takes), checking that its observation
    and action shapes fit ``task``'s spaces, that it was not recorded for another task (see
    :func:`check_dataset_task`) and that a continuous task's actions lie in its action box (bounded heads would
    otherwise fail on the first batch that draws one, at a random step). ``name`` names it in errors."""
    name = name or str(dataset)
    episodes = load_dataset(
        dataset,
        observation_shape=(task.obs_dim,),
        action_shape=() if task.discrete else (task.act_dim,),
        expected_by=f"task {task.name} ({task.env_id})",
    )
    check_dataset_task(episodes, task, name)
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


# ------------------------------------------------------------------------------------------------ trained agents


def load_agent(
    run_dir: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str] | None = None,
    device: str = "auto",
    data: LevelData | None = None,
) -> tuple[Learner, Subject, RunConfig, int]:
    """The trained agent of a run of any kind (newest checkpoint unless ``checkpoint`` is given), what it works on
    (its task, or a generative agent's data), its config and its step."""
    run = RunDir.open(run_dir)
    config = RunConfig.from_dict(run.read_config(), str(run.config_path))
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
    subject = _load(config, data)[0] if not acts(config.recipe.agent_class) else load_task(str(config.task))
    agent = _create(config, subject, None, torch_device)
    try:
        agent.load_state_dict(state["agent"])
    except (RuntimeError, KeyError, ValueError, TypeError) as error:  # torch's size/key mismatches, foreign layouts
        summary = " ".join(line.strip() for line in str(error).strip().splitlines()[:2])
        on = f" on {config.task}" if config.task else ""
        raise CheckpointError(f"checkpoint {path} does not match the model of run {run.path} ({config.recipe.name}"
                              f"{on}): {summary}") from error  # fmt: skip
    return agent, subject, config, int(state["step"])
