"""The run directory: everything one training run writes, in one folder.

::

    <run>/config.yaml              the full config (recipe, dataset, task, train and agent settings)
    <run>/metrics.jsonl            one JSON object per log event: {"step": int, "<group>/<name>": float, ...}
    <run>/events.out.tfevents.*    the same scalars for TensorBoard (``tensorboard --logdir <run>``)
    <run>/checkpoints/step_*.pt    see :mod:`rlgen.train.checkpoint`
    <run>/evals/step_*.json        one evaluation result per periodic evaluation (see :mod:`rlgen.rollout`)
    <run>/results.json             the result of the latest ``rlgen eval``
    <run>/.lock                    held by the one process that trains the run (see :meth:`RunDir.writing`)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from rlgen.data.atomic import atomic_path, hold_lock

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
LOCK_FILE = ".lock"


class RunDir:
    """Paths of one run folder and reading/writing its config and metrics."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def evals(self) -> Path:
        return self.path / "evals"

    @classmethod
    def check_new(cls, path: str | os.PathLike[str]) -> None:
        """Raise ``FileExistsError`` unless ``path`` can hold a new run: it must be an empty folder, or missing
        with no file in the way of making it (``user.txt/run``)."""
        path = Path(path)
        if path.is_dir():
            if (path / CONFIG_FILE).is_file():
                raise FileExistsError(f"run directory {path} already exists; resume it with --resume {path}")
            if any(p.name != LOCK_FILE for p in path.iterdir()):
                raise FileExistsError(f"{path} is not empty and is not a run directory (no {CONFIG_FILE}); "
                                      f"choose a new or empty folder for the run")  # fmt: skip
            return
        blocking = next((p for p in (path, *path.parents) if p.exists()), None)
        if blocking is not None and not blocking.is_dir():
            raise FileExistsError(f"cannot make run directory {path}: {blocking} is a file, not a folder")

    @classmethod
    def create(cls, path: str | os.PathLike[str], config: dict[str, Any]) -> RunDir:
        """Make a new run folder holding ``config.yaml`` (see :meth:`check_new` for what may be there)."""
        run = cls(path)
        cls.check_new(run.path)
        run.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run.config_path, yaml.safe_dump(config, sort_keys=False))
        return run

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunDir:
        """An existing run folder (one holding ``config.yaml``); a folder of runs (``rlgen demo``'s) is an error
        naming the runs in it."""
        run = cls(path)
        if not run.config_path.is_file():
            runs = sorted(p.parent.name for p in run.path.glob(f"*/{CONFIG_FILE}"))
            if runs:
                example = run.path / runs[0]
                raise FileNotFoundError(f"{run.path} is not a run directory but holds runs ({', '.join(runs)}), "
                                        f"as rlgen demo's folder does; give one, e.g. {example}")  # fmt: skip
            raise FileNotFoundError(f"{run.path} is not a run directory: {CONFIG_FILE} not found")
        return run

    @contextmanager
    def writing(self) -> Iterator[RunDir]:
        """Hold the run folder's writer lock (making the folder if missing) while the block trains the run::

            with RunDir(path).writing() as run: ...

        A second process asking for it meanwhile gets :class:`~rlgen.data.atomic.LockHeldError` naming the
        holder's pid. The OS releases the lock when its process dies, so a killed run leaves none behind.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        with hold_lock(self.path / LOCK_FILE, f"run {self.path}"):
            yield self

    def read_config(self) -> dict[str, Any]:
        try:
            config = yaml.safe_load(self.config_path.read_text())
        except yaml.YAMLError as error:
            raise ValueError(f"{self.config_path}: unreadable YAML: {error}") from error
        if not isinstance(config, dict):
            raise ValueError(f"{self.config_path}: expected a mapping at the top level")
        return config

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every row of ``metrics.jsonl`` (empty if none); a torn last line from a kill is skipped."""
        if not self.metrics_path.is_file():
            return []
        rows = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows


class MetricsLogger:
    """Writes scalars to ``metrics.jsonl`` and TensorBoard.

    Starting at ``start_step > 0`` (a resumed run) first drops what the killed run logged after its last
    checkpoint, in both sinks, so the curves have no duplicated or orphaned points.
    """

    def __init__(self, run: RunDir, start_step: int = 0, tensorboard: bool = True):
        from torch.utils.tensorboard import SummaryWriter

        self.run = run
        if start_step > 0:
            kept = [row for row in run.read_metrics() if row.get("step", 0) <= start_step]
            write_text_atomic(run.metrics_path, "".join(json.dumps(row) + "\n" for row in kept))
        elif run.metrics_path.exists():
            run.metrics_path.unlink()
        self._file = run.metrics_path.open("a")
        self._writer = SummaryWriter(str(run.path), purge_step=start_step + 1 if start_step else None) \
            if tensorboard else None  # fmt: skip

    def log(self, step: int, scalars: dict[str, float]) -> None:
        """Record ``scalars`` (names like ``train/loss``, ``eval/score``) at ``step``."""
        self._file.write(json.dumps({"step": step, **scalars}) + "\n")
        self._file.flush()
        if self._writer is not None:
            for name, value in scalars.items():
                self._writer.add_scalar(name, value, step)

    def flush(self) -> None:
        self._file.flush()
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        self._file.close()
        if self._writer is not None:
            self._writer.close()


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` by a temp file and a rename: never a half-written file."""
    with atomic_path(path, force=True) as tmp:
        tmp.write_text(text)
