"""rlgen's own flat file: every field of :class:`Episodes` in one uncompressed ``.npz``; loads in a blink.

Used as the cache of datasets whose native format is slow to read (Minari), and loadable by path.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from rlgen.data.atomic import atomic_path
from rlgen.data.codec import from_json, to_json
from rlgen.data.episodes import Episodes
from rlgen.data.errors import DatasetError
from rlgen.data.spaces import SPACE_KEYS, check_declared, space_from_tree, space_to_tree

FORMAT = "rlgen.episodes"
VERSION = 2  # 2: the header holds the spaces
READABLE_VERSIONS = (1, 2)  # a version 1 file gets spaces inferred from its arrays
_ARRAYS = ("observations", "actions", "rewards", "terminals", "timeouts", "episode_ends")


def write_npz(episodes: Episodes, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write ``episodes`` to ``path`` atomically; an existing file needs ``force=True``."""
    path = Path(path)
    arrays = {name: getattr(episodes, name) for name in _ARRAYS}
    if episodes.final_observations is not None:
        arrays["final_observations"] = episodes.final_observations
    arrays.update({f"infos/{k}": v for k, v in episodes.infos.items()})
    arrays.update({f"final_infos/{k}": v for k, v in episodes.final_infos.items()})
    header = {"format": FORMAT, "version": VERSION, "metadata": to_json(dict(episodes.metadata))}
    header.update({key: to_json(space_to_tree(getattr(episodes, key))) for key in SPACE_KEYS})
    with atomic_path(path, force=force) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, __header__=np.array(json.dumps(header)), **arrays)
    return path


def read_npz(path: str | os.PathLike[str], source: str | None = None) -> Episodes:
    """Read a file written by :func:`write_npz`; ``source`` names the data in errors (default: ``path``)."""
    path = Path(path)
    arrays = _read(path, None)
    header = _header(path, arrays.pop("__header__"))
    for key in _ARRAYS:
        if key not in arrays:
            raise DatasetError(f"{path}: missing key '{key}'")
    prefixed = {p: {k[len(p) :]: v for k, v in arrays.items() if k.startswith(p)} for p in ("infos/", "final_infos/")}
    spaces = {k: space_from_tree(from_json(header[k]), str(path), f"__header__/{k}") for k in SPACE_KEYS if k in header}
    check_declared(spaces, arrays["observations"], arrays["actions"], str(path), "__header__/")
    return Episodes(
        **{k: arrays[k] for k in _ARRAYS},
        final_observations=arrays.get("final_observations"),
        infos=prefixed["infos/"],
        final_infos=prefixed["final_infos/"],
        metadata=from_json(header["metadata"]),
        source=source or str(path),
        **spaces,
    )


def read_npz_metadata(path: str | os.PathLike[str]) -> dict:
    """The metadata of a file written by :func:`write_npz`, reading its header only."""
    path = Path(path)
    return from_json(_header(path, _read(path, "__header__")["__header__"])["metadata"])


def _read(path: Path, only: str | None) -> dict[str, np.ndarray]:
    """The arrays of an rlgen ``.npz`` (just ``only`` if given); the header must be among them."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files if only is None or k == only}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DatasetError(f"{path}: not a readable rlgen .npz file (truncated or corrupt?): {e}") from e
    if "__header__" not in arrays:
        raise DatasetError(f"{path}: missing key '__header__'; not an rlgen episodes file")
    return arrays


def _header(path: Path, raw: np.ndarray) -> dict:
    header = json.loads(str(raw))
    if header.get("format") != FORMAT or header.get("version") not in READABLE_VERSIONS:
        raise DatasetError(f"{path}: expected format {FORMAT} version {' or '.join(map(str, READABLE_VERSIONS))}, "
                           f"got {header.get('format')} version {header.get('version')}")  # fmt: skip
    return header
