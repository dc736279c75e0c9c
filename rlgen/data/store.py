"""One entry point for datasets: find them by name or path, load them, list what is on this machine.

Accepted names, tried in order:

1. a path: a D4RL ``.hdf5``/``.h5`` file, a Minari dataset folder (or its ``data`` folder or
   ``main_data.hdf5``), or an rlgen ``.npz`` file;
2. a Minari dataset id in the local store, e.g. ``mujoco/hopper/medium-v0`` or ``rlgen/hopper/medium-v0``;
3. an rlgen dataset name ``<task>-<level>[-<size>]``: the Minari id ``rlgen/<task>/<level>[-<size>]-v0``, else
   the D4RL file ``<task>-<level>[-<size>].hdf5`` in the D4RL folder (what ``rlgen data make --format d4rl``
   writes);
4. a D4RL dataset name such as ``hopper-medium-v2``: ``hopper_medium-v2.hdf5`` (the file name D4RL downloads
   to) or ``hopper-medium-v2.hdf5`` in ``$D4RL_DATASET_DIR`` (default ``~/.d4rl/datasets``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlgen.data.cache import cached
from rlgen.data.d4rl_io import read_d4rl
from rlgen.data.episodes import Episodes
from rlgen.data.errors import DatasetError
from rlgen.data.hdf5 import open_hdf5
from rlgen.data.minari_fast import read_minari_hdf5
from rlgen.data.minari_io import minari_root, read_metadata, resolve_data_path
from rlgen.data.npz_io import read_npz

D4RL_DIR_VAR = "D4RL_DATASET_DIR"
RLGEN_NAMESPACE = "rlgen"


def d4rl_root() -> Path:
    """D4RL's download folder: ``$D4RL_DATASET_DIR`` or ``~/.d4rl/datasets``."""
    env = os.environ.get(D4RL_DIR_VAR)
    return Path(env) if env else Path.home() / ".d4rl" / "datasets"


def rlgen_minari_id(task: str, level: str, version: int = 0) -> str:
    """Minari id of a generated dataset, e.g. ``rlgen/hopper/medium-v0``; ``level`` carries the size of a sized
    name (``medium-200k``)."""
    return f"{RLGEN_NAMESPACE}/{task}/{level}-v{version}"


def rlgen_d4rl_path(task: str, level: str) -> Path:
    """Default D4RL-format file of a generated dataset, e.g. ``~/.d4rl/datasets/hopper-medium.hdf5`` (``level``
    as for :func:`rlgen_minari_id`)."""
    return d4rl_root() / f"{task}-{level}.hdf5"


@dataclass(frozen=True)
class DatasetLocation:
    """Where a dataset is: ``format`` is ``"d4rl"``, ``"minari"`` or ``"npz"``; ``path`` the file or folder."""

    name: str
    format: str
    path: Path


@dataclass(frozen=True)
class DatasetSize:
    """How big a local dataset is: ``steps``, ``episodes`` and ``bytes`` on disk."""

    steps: int
    episodes: int
    bytes: int


def dataset_size(location: DatasetLocation) -> DatasetSize:
    """The size of the dataset at ``location``, from its metadata (a D4RL file: from its arrays' lengths and
    episode-end flags), without reading its steps."""
    path = location.path
    if location.format == "minari":
        meta = read_metadata(resolve_data_path(path))
        steps, episodes = int(meta.get("total_steps", 0)), int(meta.get("total_episodes", 0))
    elif location.format == "d4rl":
        with open_hdf5(path) as f:
            if "terminals" not in f:
                raise DatasetError(f"{path}: no 'terminals' key; not a D4RL-layout file")
            done = np.asarray(f["terminals"], dtype=bool)
            if "timeouts" in f:
                done = done | np.asarray(f["timeouts"], dtype=bool)
        steps, episodes = len(done), int(done.sum()) + int(len(done) > 0 and not done[-1])
    else:
        data = read_npz(path)
        steps, episodes = data.num_steps, data.num_episodes
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return DatasetSize(steps, episodes, sum(p.stat().st_size for p in files))


def locate(name_or_path: str | os.PathLike[str]) -> DatasetLocation:
    """Resolve a name or path (see the module docstring); ``FileNotFoundError`` lists every place tried."""
    name = str(name_or_path)
    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix == ".npz":
            return DatasetLocation(name, "npz", path)
        if path.name == "main_data.hdf5" and (path.parent / "metadata.json").is_file():
            return DatasetLocation(name, "minari", path.parent.parent)
        return DatasetLocation(name, "d4rl", path)
    if path.is_dir():
        resolve_data_path(path)  # raises if it is not a Minari dataset
        return DatasetLocation(name, "minari", path if (path / "data").is_dir() else path.parent)
    tried: list[Path] = []
    candidates: list[tuple[str, Path]] = [("minari", minari_root() / name)]
    for i, char in enumerate(name):
        if char == "-":  # the task/level split is unknown here: try every '-'
            task, level = name[:i], name[i + 1 :]
            candidates.append(("minari", minari_root() / rlgen_minari_id(task, level)))
    candidates += [("d4rl", d4rl_root() / f"{name.replace('-', '_', 1)}.hdf5"), ("d4rl", d4rl_root() / f"{name}.hdf5")]
    for fmt, candidate in candidates:
        tried.append(candidate)
        found = (candidate / "data" / "metadata.json").is_file() if fmt == "minari" else candidate.is_file()
        if found:
            return DatasetLocation(name, fmt, candidate)
    raise FileNotFoundError(
        f"dataset {name!r} not found; tried: {', '.join(str(t) for t in tried)}. "
        f"Make one with `rlgen data make <task>-<level>` or pass a path."
    )


def load_dataset(
    name_or_path: str | os.PathLike[str],
    *,
    cache: bool = True,
    observation_shape: Sequence[int] | None = None,
    action_shape: Sequence[int] | None = None,
    expected_by: str = "the task",
) -> Episodes:
    """Load a D4RL file, a Minari dataset (by folder or id) or an rlgen ``.npz`` as :class:`Episodes`.

    :param cache: keep Minari datasets as a flat cache file (see :mod:`rlgen.data.cache`) for fast reloads.
    :param observation_shape: if given, a dataset of another observation shape raises ``DatasetError``;
        likewise ``action_shape`` (``()`` for a discrete action); ``expected_by`` names who expects them.
    """
    where = locate(name_or_path)
    if where.format == "d4rl":
        episodes = read_d4rl(where.path)
    elif where.format == "npz":
        episodes = read_npz(where.path)
    elif cache:
        data = resolve_data_path(where.path)
        files = [data / "main_data.hdf5", data / "metadata.json"]
        episodes = cached(where.path, files, lambda: read_minari_hdf5(where.path))
    else:
        episodes = read_minari_hdf5(where.path)
    if episodes.num_steps == 0:
        raise DatasetError(f"{where.path}: the dataset holds no steps; nothing to train on or summarise")
    episodes.check_shapes(observation_shape, action_shape, expected_by=expected_by)
    return episodes


def list_local_datasets() -> list[DatasetLocation]:
    """Minari datasets in the local store and ``.hdf5`` files in the D4RL folder."""
    found = []
    root = minari_root()
    if root.is_dir():
        for meta in sorted(root.rglob("data/metadata.json")):
            folder = meta.parent.parent
            rel = folder.relative_to(root)
            if not any(part.startswith(".") for part in rel.parts):  # skip half-written (hidden) folders
                found.append(DatasetLocation(rel.as_posix(), "minari", folder))
    if d4rl_root().is_dir():
        found += [DatasetLocation(p.stem, "d4rl", p) for p in sorted(d4rl_root().glob("*.hdf5"))]
    return found
