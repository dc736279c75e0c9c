"""Sweeps: one ordinary run folder per cell of agents x datasets x override sets x seeds, run as Ray tasks.

Every name is checked and every dataset resolved (to an absolute path) on the driver by :func:`plan_sweep`, before
any run starts. Cell ``(agent, dataset, variant, seed)`` always lives in ``<out>/<agent>/<dataset>/<variant>/
seed<seed>``, so running the same sweep again finds it: a finished run (its newest checkpoint at ``train.steps``) is
skipped, an interrupted one resumed (:func:`rlgen.runs.resume_run`), and ``rlgen eval`` / ``rlgen plot`` /
``rlgen train --resume`` work on each folder. :func:`run_sweep` runs the cells on a local Ray instance (one CPU
per run) or a cluster; a run that fails is recorded with its error and the others go on.

A grid file (YAML) holds the same fields as the flags of ``rlgen sweep``::

    agents: [bc-gaussian, bc-dlml]
    datasets: [hopper-medium, walker2d-medium]
    seeds: [0, 1, 2]
    set: [train.steps=5000]                # overrides of every run
    # agents may instead map each agent to overrides of its own (applied after ``set``), e.g.
    # agents: {tt-uniform: [agent.model.n_layer=2], bc-dlml: []}
    variants:                              # optional: named override sets, one more axis of the grid
      small: ["agent.hidden=[64, 64]"]       # quoted: YAML would read [64, 64] as a list
      large: ["agent.hidden=[512, 512]"]
    out: sweeps/bc                         # optional: --out replaces it
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from rlgen.data import DEFAULT_LEVEL, DatasetRef, resolve_dataset
from rlgen.data.hdf5 import flatten
from rlgen.rollout import standard_error
from rlgen.runs import Recipe, RunConfig, acts, load_recipe, resume_run, start_run
from rlgen.train import RunDir
from rlgen.train.checkpoint import list_checkpoints
from rlgen.train.config import ConfigError
from rlgen.train.run_dir import write_text_atomic

GRID_KEYS = ("agents", "datasets", "seeds", "set", "variants", "out")
DEFAULT_VARIANT = "default"
SUMMARY_JSON, SUMMARY_MD = "summary.json", "summary.md"
_TIMES = ("wall_s", "update_s")  # a run's seconds, summed over the invocations that trained it
#: in each run folder: the seconds the sweeps spent on that run, over every invocation that trained it
RUN_TIMES = "sweep_times.json"
#: the thread policy of every run: one thread, as each run holds one CPU
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_FOLDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")


@dataclass(frozen=True)
class Grid:
    """What a sweep runs: every agent on every dataset, for every variant (a named override set) and seed.

    :param overrides: ``--set`` overrides of every run; an agent's own overrides, then a variant's, come after them.
    :param variants: name -> overrides; none means one variant, ``default``, without overrides of its own.
    :param agent_overrides: agent -> overrides of that agent's runs only (keys another agent lacks, say).
    """

    agents: list[str]
    datasets: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    overrides: list[str] = field(default_factory=list)
    variants: dict[str, list[str]] = field(default_factory=dict)
    agent_overrides: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("agents", "datasets", "seeds"):
            if not getattr(self, key):
                raise ValueError(f"a sweep needs at least one of {key} (--{key})")
        for key, values in (("agents", self.agents), ("datasets", self.datasets), ("seeds", self.seeds)):
            repeated = sorted({str(v) for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"{key} named twice in the sweep: {', '.join(repeated)}")
        for name in self.variants:
            if not _FOLDER_NAME.match(name) or name == DEFAULT_VARIANT and self.variants[name]:
                raise ValueError(f"variant name {name!r} must be a folder name (letters, digits, _ . = + -) other "
                                 f"than {DEFAULT_VARIANT!r}")  # fmt: skip
        unknown = sorted(set(self.agent_overrides) - set(self.agents))
        if unknown:
            raise ValueError(f"overrides given for {unknown[0]}, which is not among the agents of the sweep")
        sets = [self.overrides, *self.variants.values(), *self.agent_overrides.values()]
        seeded = [o for overrides in sets for o in overrides if o.startswith("train.seed=")]
        if seeded:
            raise ValueError(f"a sweep sets train.seed from its seeds (--seeds); drop {seeded[0]}")

    def variant_items(self) -> list[tuple[str, list[str]]]:
        return list(self.variants.items()) or [(DEFAULT_VARIANT, [])]


def load_grid(path: str | os.PathLike[str]) -> tuple[Grid, Path | None]:
    """The grid of a YAML grid file (module docstring), and its ``out`` folder if it names one."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a grid file is a mapping with keys {', '.join(GRID_KEYS)}")
    unknown = sorted(set(raw) - set(GRID_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown key {unknown[0]!r}; valid keys: {', '.join(GRID_KEYS)}")

    def strings(key: str, value: Any) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{path}: {key} must be a list of strings, got {value!r}")
        return value

    def named_sets(key: str) -> dict[str, list[str]]:
        value = raw.get(key) or {}
        if not isinstance(value, dict):
            raise ValueError(f"{path}: {key} must map a name to a list of KEY=VALUE overrides, got {value!r}")
        return {str(name): strings(f"{key}.{name}", overrides or []) for name, overrides in value.items()}

    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"{path}: seeds must be a list of integers, got {seeds!r}")
    agents = raw.get("agents") or []
    per_agent = named_sets("agents") if isinstance(agents, dict) else {}
    try:
        grid = Grid(list(per_agent) or strings("agents", agents), strings("datasets", raw.get("datasets") or []),
                    seeds, strings("set", raw.get("set") or []), named_sets("variants"), per_agent)  # fmt: skip
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    out = raw.get("out")
    return grid, Path(out) if out is not None else None


# ------------------------------------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class Cell:
    """One run of a sweep: a recipe with its overrides applied, its dataset (absolute path) and its folder.

    :param finished: whether its folder already holds a run trained to ``recipe.train.steps``.
    """

    agent: str
    dataset: str
    variant: str
    seed: int
    recipe: Recipe
    ref: DatasetRef
    path: Path
    finished: bool = False

    @property
    def label(self) -> str:
        variant = "" if self.variant == DEFAULT_VARIANT else f" [{self.variant}]"
        return f"{self.agent} on {self.dataset}{variant} seed {self.seed}"

    def record(self, status: str, **fields: Any) -> RunRecord:
        return RunRecord(self.agent, self.dataset, self.variant, self.seed, str(self.path), status, **fields)


@dataclass(frozen=True)
class RunRecord:
    """What became of one cell: ``status`` is ``trained``, ``resumed``, ``finished`` (already, skipped) or
    ``failed`` (with ``error``); ``score`` is the normalised score of its last evaluation, ``wall_s`` the seconds
    spent training it, ``update_s`` those of them spent sampling batches and updating (no evaluation or loading)."""

    agent: str
    dataset: str
    variant: str
    seed: int
    path: str
    status: str
    step: int | None = None
    score: float | None = None
    wall_s: float | None = None
    update_s: float | None = None
    error: str | None = None


def plan_sweep(grid: Grid, out: str | os.PathLike[str]) -> list[Cell]:
    """The cells of ``grid`` under the folder ``out``, in grid order (agent, dataset, variant, seed).

    Fails before anything runs, naming what is wrong: an unknown agent, a generative recipe, a dataset that is
    unknown or not on this machine, a bad override, or a cell folder trained with another config.
    """
    out = Path(out).resolve()
    recipes: dict[str, Recipe] = {}
    for name in grid.agents:
        recipe = load_recipe(name)
        if recipe.name in recipes:
            raise ValueError(f"agents {name} and {recipe.name} are the same recipe, {recipe.name}")
        try:
            recipe = recipe.with_overrides(grid.overrides)
        except ConfigError as error:
            raise ConfigError(f"--set of agent {recipe.name}: {error}") from None
        try:
            recipes[recipe.name] = recipe.with_overrides(grid.agent_overrides.get(name, []))
        except ConfigError as error:
            raise ConfigError(f"the overrides of agent {name}: {error}") from None
    generative = [name for name, recipe in recipes.items() if not acts(recipe.agent_class)]
    if generative:
        raise ValueError(f"{generative[0]} is a generative recipe; a sweep trains agents on datasets or tasks")
    refs: dict[tuple[str, str], DatasetRef] = {}
    for agent, recipe in recipes.items():
        needs_dataset = recipe.agent_class.needs_dataset  # type: ignore[attr-defined]
        for name in grid.datasets:
            refs[agent, name] = _resolve(name, DEFAULT_LEVEL if needs_dataset else None)
    cells = []
    for agent, recipe in recipes.items():
        for name in grid.datasets:
            ref = refs[agent, name]
            for variant, overrides in grid.variant_items():
                try:
                    varied = recipe.with_overrides(overrides)
                except ConfigError as error:
                    raise ConfigError(f"variant {variant} of agent {agent}: {error}") from None
                for seed in grid.seeds:
                    parsed = varied.with_overrides([f"train.seed={seed}"])
                    path = out / agent / Path(ref.name or str(ref.task)).name / variant / f"seed{seed}"
                    cell = Cell(agent, name, variant, seed, parsed, ref, path)
                    cells.append(replace(cell, finished=_finished(cell)))
    return cells


def _resolve(name: str, default_level: str | None) -> DatasetRef:
    """Dataset ``name`` with its absolute path (none for a task an online agent acts in), or an error naming it."""
    ref = resolve_dataset(name, default_level=default_level)
    ref.require_task()
    if ref.name is None:
        return ref
    try:
        return replace(ref, path=ref.require_path().resolve())
    except FileNotFoundError as error:
        raise FileNotFoundError(f"dataset {name} of the sweep is not on this machine: {error}") from None


def _finished(cell: Cell) -> bool:
    """Whether ``cell``'s folder holds a run trained to its ``train.steps``; raises if the folder holds a run of
    another config (anything but ``train.steps`` differs)."""
    if not (cell.path / "config.yaml").is_file():
        return False
    run = RunDir.open(cell.path)
    ref = cell.ref
    expected = RunConfig(cell.recipe, ref.task, ref.name, str(ref.path) if ref.path else None).to_dict()
    expected = flatten(yaml.safe_load(yaml.safe_dump(expected)), sep=".")  # with the types config.yaml holds
    stored = flatten(run.read_config(), sep=".")
    # Keys the stored config lacks (added to rlgen since) were at their defaults, so only stored keys are compared.
    differ = [k for k in stored if k not in ("dataset_path", "train.steps") and stored[k] != expected.get(k, ...)]
    if differ:
        key = differ[0]
        raise ValueError(f"{cell.path} holds a run with {key}={stored[key]!r}, but this sweep asks for "
                         f"{expected.get(key)!r}; give another --out or remove that run")  # fmt: skip
    checkpoints = list_checkpoints(run.checkpoints)
    return bool(checkpoints) and checkpoints[-1][0] >= cell.recipe.train.steps


# ------------------------------------------------------------------------------------------------ running


def run_cell(cell: Cell, device: str = "auto") -> RunRecord:
    """Train ``cell`` (start it, or resume the run in its folder) on one torch thread; any error is recorded, not
    raised, so that one failed run does not stop a sweep. This is the body of each Ray task."""
    os.environ.update(THREAD_ENV)
    torch.set_num_threads(1)
    tick = time.perf_counter()
    # A run's own lines (each evaluation) stay out of the sweep's output of one line per run.
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            return _train(cell, device, tick)
        except Exception as error:  # a sweep reports every failure of a run and goes on with the others
            return cell.record("failed", wall_s=time.perf_counter() - tick, error=_one_line(error))


def _train(cell: Cell, device: str, tick: float) -> RunRecord:
    """Start ``cell``'s run, or resume it if its folder holds one; ``tick`` is when the task began."""
    earlier = _stored_times(cell.path)
    if (cell.path / "config.yaml").is_file():
        _, result = resume_run(cell.path, [f"train.steps={cell.recipe.train.steps}"], device, progress=False)
    else:
        _, result = start_run(cell.recipe, cell.ref, run_dir=cell.path, device=device, progress=False)
    times = {"wall_s": time.perf_counter() - tick, "update_s": result.update_seconds}
    if result.start_step:  # resumed: add what earlier invocations spent on this run
        times = {key: earlier.get(key, 0.0) + seconds for key, seconds in times.items()}
    # kept with the run, so a sweep killed before writing its summary still knows them when run again
    write_text_atomic(cell.path / RUN_TIMES, json.dumps(times) + "\n")
    status = "resumed" if result.start_step else "trained"
    return cell.record(status, step=result.step, score=_last_score(cell.path), **times)


def _stored_times(path: Path) -> dict[str, float]:
    """The seconds recorded in run folder ``path`` by earlier sweeps (none if it has no readable record)."""
    try:
        stored = json.loads((path / RUN_TIMES).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(stored, dict):
        return {}
    return {key: float(stored[key]) for key in _TIMES if isinstance(stored.get(key), int | float)}


def last_evaluation(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The newest evaluation (``evals/step_*.json``: ``score_mean``, ``return_mean``, ...) in run folder ``path``,
    or ``None`` if it has none."""
    evals = sorted((Path(path) / "evals").glob("step_*.json"))
    return json.loads(evals[-1].read_text()) if evals else None


def _last_score(path: Path) -> float | None:
    evaluation = last_evaluation(path)
    return None if evaluation is None else float(evaluation["score_mean"])


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def run_sweep(
    cells: Sequence[Cell],
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    gpus_per_run: float = 0.0,
    device: str = "auto",
    sequential: bool = False,
    report: Callable[[str], None] = print,
) -> list[RunRecord]:
    """Run the cells that are not finished and return one record per cell, in the order of ``cells``.

    :param address: a Ray cluster to join (``host:port``, ``ray://host:port`` or ``auto``; default: the
        ``RAY_ADDRESS`` variable, else a local instance of ``num_cpus`` CPUs, all the machine's by default).
    :param gpus_per_run: GPUs Ray reserves for each run (with ``device`` ``auto`` or ``cuda``).
    :param sequential: run the cells one after another in this process, without Ray.
    :param report: called with one line per run as it ends, numbered out of the runs to do.
    """
    records: dict[int, RunRecord] = {}
    todo = []
    for index, cell in enumerate(cells):
        if cell.finished:
            step = list_checkpoints(cell.path / "checkpoints")[-1][0]
            records[index] = cell.record("finished", step=step, score=_last_score(cell.path),
                                         **_stored_times(cell.path))  # fmt: skip
        else:
            todo.append(index)
    if len(todo) < len(cells):
        report(f"{len(cells) - len(todo)} of {len(cells)} runs already finished (skipped)")

    def done(index: int, record: RunRecord) -> None:
        records[index] = record
        count = f"[{len(records) - (len(cells) - len(todo))}/{len(todo)}]"
        if record.status == "failed":
            report(f"{count} FAILED {cells[index].label}: {record.error}")
        else:
            score = "no evaluation" if record.score is None else f"score {record.score:.1f}"
            report(f"{count} {record.status} {cells[index].label}: {score} at step {record.step} "
                   f"({record.wall_s:.1f} s)")  # fmt: skip

    if sequential:
        for index in todo:
            done(index, run_cell(cells[index], device))
    elif todo:
        _run_on_ray(cells, todo, done, address, num_cpus, gpus_per_run, device)
    return [records[index] for index in range(len(cells))]


def _run_on_ray(
    cells: Sequence[Cell],
    todo: list[int],
    done: Callable[[int, RunRecord], None],
    address: str | None,
    num_cpus: int | None,
    gpus_per_run: float,
    device: str,
) -> None:
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        address = address or os.environ.get("RAY_ADDRESS") or None
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        if address:
            if num_cpus is not None:
                raise ValueError(f"--cpus sizes a local Ray instance; the cluster at {address} has its own CPUs")
            check_address(address)
            ray.init(address=address, **quiet)
        else:
            # Ray runs its workers at nice 15 by default: the runs of a local sweep are this machine's main work,
            # and would otherwise get only what any other process leaves over
            os.environ.setdefault("RAY_worker_niceness", "0")
            # _node_ip_address: a local instance listens on this machine only
            ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, _node_ip_address="127.0.0.1",
                     **quiet)  # fmt: skip
    try:
        # Ray gives a task of one CPU OMP_NUM_THREADS=1 already; run_cell sets the rest of the thread policy.
        task = ray.remote(run_cell).options(num_cpus=1, num_gpus=gpus_per_run)
        pending = {task.remote(cells[index], device): index for index in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            index = pending.pop(ready[0])
            try:
                record = ray.get(ready[0])
            except ray.exceptions.RayError as error:  # the task's process died (e.g. killed for memory)
                record = cells[index].record("failed", error=_one_line(error))
            done(index, record)
    finally:
        if started:
            ray.shutdown()


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RuntimeError("rlgen sweep runs on Ray, which is not installed: pip install 'rlgen[ray]' (or run the "
                           "cells one after another in this process with --sequential)") from None  # fmt: skip
    return ray


def check_address(address: str, timeout: float = 5.0) -> None:
    """Raise ``ConnectionError`` (one line) unless the Ray cluster at ``address`` (``host:port`` or
    ``ray://host:port``; ``auto`` is left to Ray) accepts a connection: Ray itself would retry for minutes."""
    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"Ray address {address!r} must be host:port, ray://host:port or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()  # [::1]:6379 too
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConnectionError(f"cannot reach a Ray cluster at {address} ({reason}); start one with "
                              f"`ray start --head` or leave out --address for a local instance") from None  # fmt: skip


# ------------------------------------------------------------------------------------------------ the summary


def summarise(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One row per agent x dataset x variant, in the order of ``records``: the normalised score's mean and
    standard error over the seeds that have one, those seeds, the step they reached, the seeds that failed and the
    seconds spent training all of them."""
    groups: dict[tuple[str, str, str], list[RunRecord]] = {}
    for record in records:
        groups.setdefault((record.agent, record.dataset, record.variant), []).append(record)
    rows = []
    for (agent, dataset, variant), group in groups.items():
        scored = [r for r in group if r.status != "failed" and r.score is not None]
        scores = [float(r.score) for r in scored]  # type: ignore[arg-type]
        walls = [r.wall_s for r in group if r.wall_s is not None]
        rows.append({
            "agent": agent,
            "dataset": dataset,
            "variant": variant,
            "score_mean": sum(scores) / len(scores) if scores else None,
            "score_se": standard_error(scores) if scores else None,
            "scores": scores,
            "seeds": [r.seed for r in scored],
            "steps": min((int(r.step) for r in scored if r.step is not None), default=None),
            "failed_seeds": [r.seed for r in group if r.status == "failed"],
            "wall_s": sum(walls) if walls else None,
        })  # fmt: skip
    return rows


def write_summary(out: str | os.PathLike[str], records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """Write ``<out>/summary.json`` (``rows`` from :func:`summarise` and ``runs``, one record per run) and
    ``<out>/summary.md``; returns the rows. A skipped run whose folder holds no times (made by an older rlgen)
    keeps those an earlier invocation recorded in ``summary.json``."""
    out = Path(out)
    earlier = {run["path"]: run for run in _read_runs(out / SUMMARY_JSON)}
    merged = []
    for record in records:
        if record.status == "finished" and record.wall_s is None:  # a run folder without its times (older rlgen)
            before = earlier.get(record.path, {})
            record = replace(record, **{key: before.get(key) for key in _TIMES})
        merged.append(record)
    rows = summarise(merged)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"rows": rows, "runs": [asdict(r) for r in merged]}, indent=2) + "\n"
    write_text_atomic(out / SUMMARY_JSON, text)
    write_text_atomic(out / SUMMARY_MD, _markdown(rows, merged))
    return rows


def _read_runs(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        runs = json.loads(path.read_text()).get("runs", [])
    except (json.JSONDecodeError, AttributeError):
        return []  # rewritten below; a damaged summary only loses the earlier training times
    return [run for run in runs if isinstance(run, dict) and "path" in run]


def _markdown(rows: list[dict[str, Any]], records: Sequence[RunRecord]) -> str:
    def number(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        "| agent | dataset | variant | normalised score (mean ± s.e. over seeds) | seeds | steps | wall time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        score = "-" if row["score_mean"] is None else f"{row['score_mean']:.1f} ± {row['score_se']:.1f}"
        seeds = " ".join(map(str, row["seeds"])) + (f" (failed: {' '.join(map(str, row['failed_seeds']))})"
                                                    if row["failed_seeds"] else "")  # fmt: skip
        lines.append(f"| {row['agent']} | {row['dataset']} | {row['variant']} | {score} | {seeds} | "
                     f"{row['steps'] if row['steps'] is not None else '-'} | {number(row['wall_s'])} |")  # fmt: skip
    failed = [r for r in records if r.status == "failed"]
    if failed:
        lines += ["", "Failed runs:", ""] + [f"- `{r.path}`: {r.error}" for r in failed]
    return "\n".join(lines) + "\n"
