"""Per-dimension statistics of a data array: moments for normalisation, quantiles for quantile bins."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Statistics:
    """Statistics over the first axis of an array of shape ``(N, *shape)``; every field has ``shape`` per row.

    ``quantiles[k]`` is the ``quantile_levels[k]`` quantile (``levels = linspace(0, 1, num_bins + 1)``), so
    ``quantiles`` are the edges of ``num_bins`` equal-mass bins per dimension.
    """

    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    quantile_levels: np.ndarray  # (num_bins + 1,)
    quantiles: np.ndarray  # (num_bins + 1, *shape)

    @classmethod
    def compute(cls, data: np.ndarray, num_bins: int = 100) -> Statistics:
        """Statistics of ``data`` (float64 arithmetic); ``num_bins`` sets the quantile resolution."""
        x = np.asarray(data, dtype=np.float64)
        if x.ndim == 0 or len(x) == 0:
            raise ValueError(f"statistics need at least one row, got shape {x.shape}")
        if num_bins < 1:
            raise ValueError(f"num_bins must be >= 1, got {num_bins}")
        levels = np.linspace(0.0, 1.0, num_bins + 1)
        return cls(
            mean=x.mean(axis=0),
            std=x.std(axis=0),
            min=x.min(axis=0),
            max=x.max(axis=0),
            quantile_levels=levels,
            quantiles=np.quantile(x, levels, axis=0),
        )

    @property
    def num_bins(self) -> int:
        return len(self.quantile_levels) - 1

    def normalize(self, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
        """``(x - mean) / max(std, eps)``: a constant dimension maps to 0 instead of dividing by zero."""
        return ((x - self.mean) / np.maximum(self.std, eps)).astype(np.result_type(x, np.float32))

    def denormalize(self, z: np.ndarray, eps: float = 1e-6) -> np.ndarray:
        """Inverse of :meth:`normalize`."""
        return (z * np.maximum(self.std, eps) + self.mean).astype(np.result_type(z, np.float32))

    def uniform_edges(self, num_bins: int) -> np.ndarray:
        """``(num_bins + 1, *shape)`` edges of equal-width bins from ``min`` to ``max``."""
        return np.linspace(self.min, self.max, num_bins + 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, for JSON checkpoints."""
        return {f.name: getattr(self, f.name).tolist() for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Statistics:
        return cls(**{f.name: np.asarray(data[f.name], dtype=np.float64) for f in fields(cls)})
