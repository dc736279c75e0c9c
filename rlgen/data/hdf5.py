"""HDF5 helpers shared by the readers: open with clear errors, read keys, and map nested metadata to groups."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rlgen.data.errors import DatasetError

_JSON_ATTR = "rlgen_json"  # marks a string dataset holding a JSON-encoded Python value (int, list, None, ...)


@contextmanager
def open_hdf5(path: str | os.PathLike[str], **kwargs: Any) -> Iterator[h5py.File]:
    """Open ``path`` read-only; a missing file raises ``FileNotFoundError``, an unreadable one ``DatasetError``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        file = h5py.File(path, "r", **kwargs)
    except OSError as e:
        raise DatasetError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {e}") from e
    with file:
        yield file


def write_hdf5(path: str | os.PathLike[str], build: Callable[[h5py.File], None], **kwargs: Any) -> None:
    """Create the HDF5 file ``path``: ``build(file)`` fills it in memory, then one plain write puts it on disk.

    HDF5 defers writes to caches that it flushes when objects close; on a full disk those flushes fail inside
    h5py's finalisers, which swallow the error and leave half-closed objects that crash the process when the
    file closes. Writing the finished image with Python turns a full disk into an ``OSError``.
    """
    # A unique name per file: HDF5 refuses to open a second in-memory file of the same name.
    with h5py.File(f"rlgen-{id(build)}-{path}", "w", driver="core", backing_store=False, **kwargs) as f:
        build(f)
        f.flush()
        image = f.id.get_file_image()
    with open(path, "xb") as out:
        out.write(image)


def read_dataset(group: h5py.Group, key: str, source: str | os.PathLike[str], expected: str) -> np.ndarray:
    """``group[key][()]``; a missing key or an unreadable dataset raises ``DatasetError`` naming both."""
    if key not in group:
        raise DatasetError(f"{source}: missing key '{key}' (expected {expected})")
    node = group[key]
    if not isinstance(node, h5py.Dataset):
        raise DatasetError(f"{source}: key '{key}' is a group; expected a dataset of {expected}")
    try:
        return node[()]
    except (OSError, ValueError) as e:  # h5py reports truncated chunks as OSError
        raise DatasetError(f"{source}: key '{key}' cannot be read (truncated or corrupt file?): {e}") from e


def read_tree(group: h5py.Group, source: str | os.PathLike[str]) -> dict[str, Any]:
    """Nested dict of a group's datasets, keeping numpy dtypes (strings as ``str``; see :func:`write_tree`)."""
    out: dict[str, Any] = {}
    for key, node in group.items():
        if isinstance(node, h5py.Group):
            out[key] = read_tree(node, source)
            continue
        value = read_dataset(group, key, source, "a metadata value")
        string = h5py.check_string_dtype(node.dtype)
        if node.attrs.get(_JSON_ATTR, False):
            value = json.loads(value.decode("utf-8"))
        elif string is not None and string.length is None:  # variable-length: str (utf-8) or bytes (ascii)
            decode = (lambda b: b.decode("utf-8")) if string.encoding == "utf-8" else bytes
            value = decode(value) if isinstance(value, bytes) else [decode(v) for v in value.tolist()]
        out[key] = value
    return out


def write_tree(group: h5py.Group, tree: Mapping[str, Any]) -> None:
    """Write a nested dict as groups and datasets so that :func:`read_tree` returns it unchanged.

    numpy values keep their dtype, ``str``/``bytes`` and lists of them become variable-length strings, and any
    other value (int, float, bool, None, mixed lists) is stored as JSON text marked by an attribute.
    """
    for key, value in tree.items():
        if isinstance(value, Mapping):
            write_tree(group.create_group(key), value)
        elif isinstance(value, np.ndarray | np.generic):
            group.create_dataset(key, data=value)
        elif isinstance(value, str):
            group.create_dataset(key, data=value, dtype=h5py.string_dtype("utf-8"))
        elif isinstance(value, bytes):
            group.create_dataset(key, data=value, dtype=h5py.string_dtype("ascii"))
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            group.create_dataset(key, data=value, dtype=h5py.string_dtype("utf-8"))
        elif isinstance(value, list) and value and all(isinstance(v, bytes) for v in value):
            group.create_dataset(key, data=value, dtype=h5py.string_dtype("ascii"))
        else:
            ds = group.create_dataset(key, data=json.dumps(value), dtype=h5py.string_dtype("utf-8"))
            ds.attrs[_JSON_ATTR] = True


def flatten(tree: Mapping[str, Any], prefix: str = "", sep: str = "/") -> dict[str, Any]:
    """``{"a": {"b": x}}`` -> ``{"a/b": x}`` (HDF5 paths; ``sep="."`` gives dotted config keys)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}{sep}", sep))
        else:
            out[f"{prefix}{key}"] = value
    return out


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten`."""
    out: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, leaf = path.split("/")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out
