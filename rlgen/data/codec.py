"""Lossless JSON encoding of dataset metadata (numpy arrays, numpy scalars and bytes included).

D4RL files keep arbitrary HDF5 datasets under ``metadata/`` (policy weights, strings stored as bytes); Minari
keeps metadata in a JSON file. Tagged objects let the former travel through the latter bit for bit.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

_ARRAY, _SCALAR, _BYTES = "__ndarray__", "__npscalar__", "__bytes__"


def to_json(value: Any) -> Any:
    """Convert ``value`` (nested dicts / lists of JSON types, numpy values, bytes) to plain JSON types."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray | np.generic):
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise TypeError(f"cannot encode a numpy array of dtype object (shape {array.shape})")
        tag = _ARRAY if isinstance(value, np.ndarray) else _SCALAR
        return {
            tag: base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii"),
            "dtype": array.dtype.str,
            "shape": list(array.shape),
        }
    if isinstance(value, bytes):
        return {_BYTES: base64.b64encode(value).decode("ascii")}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot encode metadata value of type {type(value).__name__}")


def from_json(value: Any) -> Any:
    """Inverse of :func:`to_json`."""
    if isinstance(value, dict):
        for tag in (_ARRAY, _SCALAR):
            if tag in value:
                raw = base64.b64decode(value[tag])
                array = np.frombuffer(raw, dtype=np.dtype(value["dtype"])).reshape(value["shape"]).copy()
                return array if tag == _ARRAY else array[()]
        if _BYTES in value:
            return base64.b64decode(value[_BYTES])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value
