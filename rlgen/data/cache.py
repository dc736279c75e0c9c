"""A cache of slow-to-read datasets as rlgen ``.npz`` files, keyed by the source files' size and mtime.

Reading a Minari dataset costs a few HDF5 dataset opens per episode however it is done; a dataset that is
loaded again (every training run) is instead read from one flat file. A changed source gets a new key, and
writing it removes the stale cache of the same source.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from rlgen.data.episodes import Episodes
from rlgen.data.errors import DatasetError
from rlgen.data.npz_io import VERSION, read_npz, write_npz

CACHE_DIR_VAR = "RLGEN_CACHE_DIR"


def cache_dir() -> Path:
    """``$RLGEN_CACHE_DIR`` or ``~/.cache/rlgen/datasets``."""
    env = os.environ.get(CACHE_DIR_VAR)
    return Path(env) if env else Path.home() / ".cache" / "rlgen" / "datasets"


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]


def cached(source: Path, files: Sequence[Path], read: Callable[[], Episodes]) -> Episodes:
    """``read()``, or its cached result while ``files`` are unchanged.

    :param source: the dataset's location, naming it in errors and identifying its cache entry.
    """
    stat = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    stem = _digest(str(source.resolve()))
    path = cache_dir() / f"{stem}-{_digest([stat, VERSION])}.npz"
    if path.is_file():
        try:
            return read_npz(path, source=str(source))
        except DatasetError as e:  # a damaged cache is rebuilt, never trusted
            warnings.warn(f"rebuilding the dataset cache: {e}", stacklevel=2)
    episodes = read()
    try:
        write_npz(episodes, path, force=True)
        for stale in path.parent.glob(f"{stem}-*.npz"):
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError as e:  # e.g. a read-only home: loading still works, only slower next time
        warnings.warn(f"cannot write the dataset cache {path}: {e}", stacklevel=2)
    return episodes
