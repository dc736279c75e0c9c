"""A dataset resolved once: what a user names (a task, ``<task>-<level>``, a path, a Minari id) -> a
:class:`DatasetRef` that everything downstream takes.

>>> ref = resolve_dataset("hopper")             # DatasetRef(name='hopper-medium', task='hopper', level='medium', ...)
>>> ref = resolve_dataset("path/to/file.hdf5")  # task read from the file's metadata; the steps are not read
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# rlgen.tasks as a module, not its names: it imports rlgen.data.scores, so this file may load while rlgen.tasks is
# still half-initialised
from rlgen import tasks
from rlgen.catalog import dataset_names
from rlgen.data.d4rl_io import read_d4rl_metadata
from rlgen.data.minari_io import episodes_metadata, read_metadata, resolve_data_path
from rlgen.data.npz_io import read_npz_metadata
from rlgen.data.store import DatasetLocation, locate
from rlgen.heads.config import did_you_mean

#: the dataset level meant by a task name given where a dataset is expected
DEFAULT_LEVEL = "medium"
#: suffixes of dataset files: a target with one is a path (never a name or a Minari id)
FILE_SUFFIXES = (".hdf5", ".h5", ".npz")


@dataclass(frozen=True)
class DatasetRef:
    """A dataset as :func:`resolve_dataset` found it.

    :param name: the dataset as named: what the user gave, or ``<task>-<level>`` for a task given alone; ``None``
        when a task was given alone and no default level was asked for (an agent that needs no data).
    :param task: the task the data belong to; ``None`` if neither the name nor the data's metadata tells.
    :param level: the level of an rlgen dataset name ``<task>-<level>``, else ``None``.
    :param path: the file or folder on this machine (absolute), ``None`` if it is not there (yet).
    :param format: ``d4rl``, ``minari`` or ``npz`` (``None`` without a path).
    """

    name: str | None
    task: str | None
    level: str | None = None
    path: Path | None = None
    format: str | None = None

    def require_task(self) -> str:
        """The task; ``ValueError`` asking for ``--task`` if the dataset does not record it."""
        if self.task is None:
            raise ValueError(f"dataset {self.name!r} does not record its task; pass --task (one of "
                             f"{', '.join(tasks.list_tasks())})")  # fmt: skip
        return self.task

    def require_path(self) -> Path:
        """The local path; ``FileNotFoundError`` listing every place tried if the dataset is not on this machine
        (or, if it was made since it was resolved, where it is now)."""
        if self.path is not None:
            return self.path
        if self.name is None:
            raise ValueError(f"task {self.task!r} was given without a dataset")
        return locate(self.name).path.resolve()


def resolve_dataset(
    target: str | os.PathLike[str], task: str | None = None, *, default_level: str | None = DEFAULT_LEVEL
) -> DatasetRef:
    """The dataset ``target`` names, by one rule, tried in order:

    1. a task name: its dataset ``<task>-<default_level>`` (no dataset if ``default_level`` is ``None``);
    2. ``<task>-<level>`` with a level of the task: that rlgen dataset (``path`` is ``None`` until it is made);
    3. a path, a Minari id or a D4RL name on this machine (see :func:`rlgen.data.locate`): the task is the one
       its metadata records, else the task of its recorded environment id; only the metadata is read.

    :param task: the task of the data, when known (e.g. ``--task``); it replaces what rules 2-3 would find, and the
        data's own records are checked against it when they are loaded. Rule 1 with another task is an error.
    :raises FileNotFoundError: if ``target`` is a path (a dataset file suffix, or starting with ``/``, ``.`` or
        ``~``) that does not exist.
    :raises ValueError: if ``target`` matches no rule (with the closest known name and what was tried).
    """
    target = str(target)
    names = tasks.list_tasks()
    if target in names:
        if task is not None and task != target:
            raise ValueError(f"{target!r} is a task, but --task {task} was given; give a dataset of {task}")
        if default_level is None:
            return DatasetRef(None, target)
        return _with_location(DatasetRef(f"{target}-{default_level}", target, default_level))
    try:
        spec, level = tasks.parse_dataset_name(target)
    except ValueError as error:
        not_a_name = error
    else:
        return _with_location(DatasetRef(target, task or spec.name, level))
    try:
        location = locate(target)
    except FileNotFoundError as not_found:
        if task is not None:  # loading names every place tried
            return DatasetRef(target, task)
        if target.endswith(FILE_SUFFIXES) or target.startswith(("/", ".", "~")):
            raise FileNotFoundError(f"dataset path {target} does not exist "
                                    f"(looked at {Path(target).expanduser().absolute()})") from None  # fmt: skip
        # a name that starts with a task gets that task's levels, any other the closest known name
        of_a_task = any(target.startswith(f"{n}-") for n in names)
        close = "" if of_a_task else did_you_mean(target, [*names, *dataset_names()])
        why = not_a_name if of_a_task else "'rlgen data list' shows them"
        raise ValueError(
            f"dataset {target!r} not found{close}: it is neither a task ({', '.join(names)}), nor a dataset name "
            f"<task>-<level> ({why}), nor a local dataset path or Minari id ({not_found})"
        ) from None
    recorded = task or _recorded_task(read_dataset_metadata(location), names)
    return DatasetRef(target, recorded, None, location.path.resolve(), location.format)


def read_dataset_metadata(location: DatasetLocation) -> dict[str, Any]:
    """The metadata of the dataset at ``location`` (what :attr:`Episodes.metadata` would hold), without reading
    its steps."""
    if location.format == "d4rl":
        return read_d4rl_metadata(location.path)
    if location.format == "npz":
        return read_npz_metadata(location.path)
    data_path = resolve_data_path(location.path)
    return episodes_metadata(read_metadata(data_path), str(location.path))


def _recorded_task(metadata: dict[str, Any], names: list[str]) -> str | None:
    """The task ``metadata`` records, else the one task (of ``names``) whose gymnasium id it records."""
    if "task" in metadata:
        return str(metadata["task"])
    env_id = metadata.get("env_id")
    matches = []
    for name in names if env_id is not None else []:
        try:
            if tasks.load_task(name, allow_untrained=True).env_id == str(env_id):
                matches.append(name)
        except ValueError:  # an unreadable task file names no environment
            continue
    return matches[0] if len(matches) == 1 else None


def _with_location(ref: DatasetRef) -> DatasetRef:
    """``ref`` with the path and format of its name if it is on this machine."""
    try:
        location = locate(ref.name)  # type: ignore[arg-type]
    except FileNotFoundError:
        return ref
    return DatasetRef(ref.name, ref.task, ref.level, location.path.resolve(), location.format)
