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

import contextlib
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from rlgen.config import ConfigError
from rlgen.data import DEFAULT_LEVEL, DatasetRef, Episodes, check_action_space, load_dataset, resolve_dataset
from rlgen.data.cache import cache_dir
from rlgen.data.spaces import task_spaces
from rlgen.generative import HeldOutResult, LevelAgent, LevelData
from rlgen.heads import POINT_ACTIONS
from rlgen.rollout import EvalResult, evaluate
from rlgen.runs.recipes import ALGOS, RECIPE_KEYS, Recipe, acts, load_recipe, recipe_from_dict
from rlgen.runs.upgrade import upgrade_config
from rlgen.tasks import TaskSpec, load_task
from rlgen.train.agent import Agent, BatchSampler, Learner, resolve_device
from rlgen.train.checkpoint import (
    CheckpointError,
    best_checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_agent_state,
    load_checkpoint,
)
from rlgen.train.config import TrainConfig
from rlgen.train.parallel import Replicas
from rlgen.train.run_dir import RunDir, write_text_atomic
from rlgen.train.trainer import FitResult, fit, seed_everything

#: suffixes of the dataset files a run folder is named after by their stem
DATA_FILE_SUFFIXES = (".hdf5", ".h5", ".npz")

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
    def from_dict(cls, raw: dict[str, Any], where: str, training: bool = True) -> RunConfig:
        """The config in ``raw`` (read from ``where``), upgraded from older rlgen versions' spelling (see
        :func:`~rlgen.runs.upgrade.upgrade_config`; ``training``: the run is to be trained further)."""
        try:
            raw = upgrade_config(raw, training)
            recipe = recipe_from_dict(str(raw["recipe"]), {k: raw.get(k) for k in RECIPE_KEYS})
            if not acts(recipe.agent_class):
                return cls(recipe)
            return cls(recipe, str(raw["task"]), raw.get("dataset"), raw.get("dataset_path"))
        except KeyError as error:
            raise ConfigError(f"{where}: missing key {error.args[0]!r}") from error
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from error


# ------------------------------------------------------------------------------------------------ start, resume


def default_run_dir(recipe: str, name: str, seed: int, root: str | os.PathLike[str] = "runs") -> Path:
    """``runs/<recipe>/<dataset or task>/seed<seed>-<date>-<time>``: the dataset as named (``hopper-medium``),
    a data file by its stem (``path/hopper_medium-v2.hdf5`` -> ``hopper_medium-v2``), a Minari folder or id by its
    last part (``mujoco/hopper/medium-v0`` -> ``medium-v0``)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(name)
    folder = path.stem if path.suffix.lower() in DATA_FILE_SUFFIXES else path.name
    return Path(root) / recipe / folder / f"seed{seed}-{stamp}"


def start_run(
    recipe: str | Recipe,
    target: str | DatasetRef | None = None,
    overrides: Sequence[str] = (),
    run_dir: str | os.PathLike[str] | None = None,
    device: str = "auto",
    task: str | None = None,
    progress: bool = True,
    data: LevelData | None = None,
    replicas: Replicas | None = None,
) -> tuple[RunDir, FitResult]:
    """Train a new run of ``recipe`` (a name, a ``.yaml`` path, or a parsed recipe); returns its folder.

    :param target: what an acting agent learns from: a dataset reference, or what :func:`rlgen.data.resolve_dataset`
        resolves (a task name: agents that need a dataset then use its ``medium`` one). Generative agents take none.
    :param task: the task of a dataset given by path that does not record it.
    :param data: a generative agent's data, if already loaded (built from the recipe otherwise).
    :param replicas: the processes training the run data-parallel (see :func:`rlgen.train.fit`); the writer alone
        makes the run folder.
    """
    parsed = (recipe if isinstance(recipe, Recipe) else load_recipe(recipe)).with_overrides(overrides)
    replicas = replicas or Replicas()
    check_data_parallel(parsed.agent_class, replicas)
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
    path = replicas.share(Path(run_dir) if run_dir else default_run_dir(group, name, parsed.train.seed))
    if replicas.is_writer:
        RunDir.check_new(path)  # before the data is loaded: a taken folder should not cost a long load first
        if progress:
            _announce(path, config)
    subject, training_data = _load(config, data)
    # Building the agent checks it against the task and data; only then is the run folder written, so a
    # command that fails validation leaves nothing behind to block its corrected re-run.
    agent, sampler = _build(config, subject, training_data, torch_device)
    if not replicas.is_writer:
        return RunDir(path), _fit(RunDir(path), config, subject, agent, sampler, progress, replicas=replicas)
    with RunDir(path).writing():  # a second process starting a run in the same folder is refused
        run = RunDir.create(path, config.to_dict())
        return run, _fit(run, config, subject, agent, sampler, progress, replicas=replicas)


def check_data_parallel(agent_class: type[Learner], replicas: Replicas) -> None:
    """Refuse to train ``agent_class`` in several processes unless it can be (:attr:`Learner.data_parallel`)."""
    if replicas.world_size > 1 and not agent_class.data_parallel:
        able = sorted(name for name, cls in ALGOS.items() if cls.data_parallel)
        raise ValueError(f"{agent_class.__name__} cannot be trained data-parallel ({replicas.world_size} processes "
                         f"under torchrun); algos that can: {', '.join(able)}")  # fmt: skip


def _resolve(recipe: Recipe, target: str | DatasetRef | None, task: str | None) -> tuple[RunConfig, str]:
    """The run config of acting agent ``recipe`` on ``target``, and the name of its run folder's data level."""
    if target is None:
        raise ValueError(f"{recipe.name} acts in a task: give a dataset or task to train it on")
    needs_dataset = recipe.agent_class.needs_dataset  # type: ignore[attr-defined]
    ref = target if isinstance(target, DatasetRef) else \
        resolve_dataset(target, task, default_level=DEFAULT_LEVEL if needs_dataset else None)  # fmt: skip
    if not needs_dataset and ref.name is not None:
        example = f"rlgen train {recipe.name} {ref.task or '<task>'}"
        raise ValueError(f"{recipe.name} is an online agent: it learns in its task's environment and takes a task, "
                         f"not a dataset ({ref.name}); e.g. `{example}`")  # fmt: skip
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
    replicas: Replicas | None = None,
) -> tuple[RunDir, FitResult]:
    """Continue the run in ``run_dir`` (of any agent) from its newest checkpoint.

    Only ``train.steps`` may be overridden, and only to train further (not below the step already reached);
    anything else would break the promise that a resumed run matches an uninterrupted one. If the newest
    checkpoints do not load (e.g. a file truncated by a full disk), they are set aside as ``*.pt.unreadable``
    with a warning and the run resumes from the newest one that loads. A run stopped before its first checkpoint
    trains again from step 0, with a warning: its config fixes the run, so that gives the run it would have been.
    ``config.yaml`` and the checkpoints are only touched once everything has been checked, the checkpoint
    against the model too. A run that another process trains is refused (:meth:`RunDir.writing`).

    :param data: a generative agent's data, if already loaded (built from the run's recipe otherwise).
    :param replicas: the processes training the run data-parallel: each loads the checkpoint, the writer alone
        writes the run folder (which must be at the same path on every node).
    """
    run = RunDir.open(run_dir)
    replicas = replicas or Replicas()
    with run.writing() if replicas.is_writer else contextlib.nullcontext(run):
        return _resume(run, overrides, device, progress, data, replicas)


def _resume(
    run: RunDir, overrides: Sequence[str], device: str, progress: bool, data: LevelData | None, replicas: Replicas
) -> tuple[RunDir, FitResult]:
    config = RunConfig.from_dict(run.read_config(), str(run.config_path))
    check_data_parallel(config.recipe.agent_class, replicas)
    changed = [o for o in overrides if not o.startswith("train.steps=")]
    if changed:
        raise ConfigError(f"a resumed run keeps its config; only train.steps may change, got {', '.join(changed)}")
    if overrides:
        config = replace(config, recipe=config.recipe.with_overrides(overrides))
    torch_device = resolve_device(device)
    resume, unreadable = _resume_point(run)
    step = int(resume[1]["step"]) if resume is not None else 0
    steps = config.recipe.train.steps
    if step > steps:
        raise ConfigError(f"run {run.path} is already at step {step}; train.steps={steps} would not train further "
                          f"(give train.steps of at least {step})")  # fmt: skip
    if progress:
        _announce(run.path, config, resumed=True)
    subject, training_data = _load(config, data)
    agent, sampler = _build(config, subject, training_data, torch_device)
    if resume is not None:
        load_agent_state(agent, resume[1], resume[0], _model(run, config))
    else:
        warnings.warn(f"run {run.path} has no checkpoint (it was stopped before its first): training it from step 0",
                      stacklevel=3)  # fmt: skip
    for path, error in unreadable if replicas.is_writer else ():
        aside = path.with_name(path.name + ".unreadable")
        path.rename(aside)
        warnings.warn(f"{error}; moved it to {aside.name} and resuming from step {step}", stacklevel=3)
    if overrides and replicas.is_writer:
        write_text_atomic(run.config_path, yaml.safe_dump(config.to_dict(), sort_keys=False))
    return run, _fit(run, config, subject, agent, sampler, progress, resume, replicas)


def _resume_point(run: RunDir) -> tuple[tuple[Path, dict[str, Any]] | None, list[tuple[Path, CheckpointError]]]:
    """The newest checkpoint of ``run`` that loads and its state (``None`` if the run has none), and the newer
    ones that do not, with why. Raises :class:`CheckpointError` if the run has checkpoints but none loads."""
    unreadable: list[tuple[Path, CheckpointError]] = []
    for _, path in reversed(list_checkpoints(run.checkpoints)):
        try:
            return (path, load_checkpoint(path)), unreadable
        except CheckpointError as error:
            unreadable.append((path, error))
    if unreadable:
        raise CheckpointError(f"no checkpoint of run {run.path} loads ({unreadable[0][1]}); delete "
                              f"{run.checkpoints} to train the run again from step 0")  # fmt: skip
    return None, unreadable


def _announce(path: Path, config: RunConfig, resumed: bool = False) -> None:
    """Print where the run goes and what it reads, before the data is loaded."""
    print(f"{'resuming run' if resumed else 'run'} {path}")
    if config.dataset_path is not None:
        print(f"dataset {config.dataset}: {config.dataset_path} (Minari data cached as .npz in {cache_dir()})")


def _model(run: RunDir, config: RunConfig) -> str:
    """The model of ``run`` as errors name it: ``run <path> (<recipe> on <task>)``."""
    on = f" on {config.task}" if config.task else ""
    return f"run {run.path} ({config.recipe.name}{on})"


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
    asynchronous: bool | None = None,
    progress: bool = False,
) -> EvalResult | HeldOutResult:
    """Score ``agent``: by ``episodes`` episodes in its task (defaults: the run's ``train.eval_*``) for an agent
    that acts, by held-out bits/dim for a generative one (which takes no episode options). ``progress`` shows a
    progress bar of the episodes."""
    if isinstance(agent, Agent) and isinstance(subject, TaskSpec):
        episodes = train.eval_episodes if episodes is None else episodes
        seed = train.eval_seed if seed is None else seed
        envs = train.eval_envs if envs is None else envs
        asynchronous = train.eval_async if asynchronous is None else asynchronous
        return evaluate(agent.eval_policy(), subject, episodes, seed, envs, step, asynchronous, progress)
    options = (("episodes", episodes), ("seed", seed), ("envs", envs), ("asynchronous", asynchronous))
    given = [name for name, value in options if value is not None]
    if given:
        raise ValueError(f"{', '.join(given)} set(s) evaluation episodes in an environment; {type(agent).__name__} "
                         f"is scored by held-out bits/dim")  # fmt: skip
    return agent.evaluate(subject, step)  # type: ignore[attr-defined]


def act_with(agent: Learner, action: str | None = None, peak_width: float | None = None) -> None:
    """Make ``agent`` act with the deterministic action ``action`` (``mode``, ``mean`` or ``peak``: see
    :meth:`rlgen.heads.BoxDistribution.point`) and the peak's window ``peak_width`` instead of its recipe's
    ``agent.action`` / ``agent.peak_width`` (``None``: keep the recipe's); for agents that have one."""
    if action is not None and action not in POINT_ACTIONS:
        raise ValueError(f"unknown deterministic action {action!r}; choose one of {', '.join(POINT_ACTIONS)}")
    config = getattr(agent, "config", None)
    if not hasattr(config, "action"):
        raise ValueError(f"{type(agent).__name__} has no choice of deterministic action (BC, IQL and GAIL agents do)")
    changes = {k: v for k, v in (("action", action), ("peak_width", peak_width)) if v is not None}
    agent.config = replace(config, **changes)  # type: ignore[attr-defined]


def _fit(
    run: RunDir,
    config: RunConfig,
    subject: Subject,
    agent: Learner,
    sampler: BatchSampler,
    progress: bool,
    resume: tuple[Path, dict[str, Any]] | None = None,
    replicas: Replicas | None = None,
) -> FitResult:
    train = config.recipe.train

    def evaluator(agent: Learner, step: int) -> dict[str, float]:
        result = evaluate_agent(agent, subject, train, step)
        if isinstance(result, HeldOutResult):
            return result.scalars()
        # force: a resumed run evaluates again the steps its killed run reached after the last checkpoint
        result.write(run.evals / f"step_{step:08d}.json", force=True)
        return {**result.scalars(), **{f"progress/{k}": v for k, v in agent.counters().items()}}

    label = f"{config.recipe.name} {config.dataset or config.task} seed{train.seed}" if config.task else \
        f"{config.recipe.name} seed{train.seed}"  # fmt: skip
    # the best checkpoint: by normalised score for an agent that acts, by held-out bits/dim for a generative one
    acting = acts(config.recipe.agent_class)
    best_by, higher_is_better = ("eval/score", True) if acting else ("eval/bits_per_dim", False)
    result = fit(agent, sampler, train, run, evaluator, progress=progress, resume=resume, label=label,
                 replicas=replicas, best_by=best_by, higher_is_better=higher_is_better)  # fmt: skip
    if isinstance(agent, LevelAgent) and (replicas is None or replicas.is_writer):
        agent.write_samples(subject, run.path, seed=train.seed, progress=progress)  # type: ignore[arg-type]
    return result


# ------------------------------------------------------------------------------------------------ data checks


def load_training_data(task: TaskSpec, dataset: str | os.PathLike[str], name: str | None = None) -> Episodes:
    """Load ``dataset`` (a path, or anything :func:`rlgen.data.load_dataset` takes), checking that its observation
    and action shapes fit ``task``'s spaces, that it was not recorded for another task (see
    :func:`check_dataset_task`), that the action bounds it records (if any) are the task's, and that its actions
    lie in the task's action space (bounded heads would otherwise fail on the first batch that draws one, at a
    random step). ``name`` names it in errors."""
    name = name or str(dataset)
    expected_by = f"task {task.name} ({task.env_id})"
    episodes = load_dataset(
        dataset,
        observation_shape=(task.obs_dim,),
        action_shape=() if task.discrete else (task.act_dim,),
        expected_by=expected_by,
    )
    check_dataset_task(episodes, task, name)
    check_action_space(episodes, task_spaces(task)[1], expected_by=expected_by)
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
    """The trained agent of a run of any kind, what it works on (its task, or a generative agent's data), its config
    and its step.

    :param checkpoint: ``"last"`` or ``None`` (the newest checkpoint), ``"best"`` (``checkpoints/best.pt``, the
        best evaluation during training) or a checkpoint file.
    """
    run = RunDir.open(run_dir)
    config = RunConfig.from_dict(run.read_config(), str(run.config_path), training=False)
    torch_device = resolve_device(device)
    path, state = _read_checkpoint(run, checkpoint)
    subject = _load(config, data)[0] if not acts(config.recipe.agent_class) else load_task(str(config.task))
    agent = _create(config, subject, None, torch_device)
    load_agent_state(agent, state, path, _model(run, config))
    return agent, subject, config, int(state["step"])


def _read_checkpoint(run: RunDir, checkpoint: str | os.PathLike[str] | None) -> tuple[Path, dict[str, Any]]:
    """``checkpoint`` and its state: the newest checkpoint of ``run`` for ``None`` or ``"last"``, its best for
    ``"best"``, else the file ``checkpoint``.

    Reading takes no lock: a run being trained meanwhile may delete the newest checkpoint it listed (keeping only
    the newest ones after writing another), and then the listing is read again.
    """
    if checkpoint == "last":
        checkpoint = None
    elif checkpoint == "best":
        checkpoint = best_checkpoint_path(run.checkpoints)
        if not checkpoint.is_file():
            raise FileNotFoundError(f"run {run.path} has no best checkpoint ({checkpoint}): it has not been "
                                    f"evaluated yet, or was trained before best checkpoints were kept")  # fmt: skip
    while True:
        path = Path(checkpoint) if checkpoint is not None else latest_checkpoint(run.checkpoints)
        if path is None:
            raise FileNotFoundError(f"run {run.path} has no checkpoint yet (looked in {run.checkpoints})")
        try:
            return path, load_checkpoint(path)
        except FileNotFoundError:
            if checkpoint is not None or latest_checkpoint(run.checkpoints) == path:
                raise
        except CheckpointError as error:
            older = [str(p) for _, p in list_checkpoints(run.checkpoints) if p != path] if checkpoint is None else []
            hint = f"; evaluate an older one with --checkpoint (kept: {', '.join(older)})" if older else ""
            raise CheckpointError(f"{error}{hint}") from error
