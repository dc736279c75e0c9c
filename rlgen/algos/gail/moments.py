"""Running mean and variance of observations, merged batch by batch (Chan et al.'s parallel update), so a
policy's input normalisation follows the states it actually visits."""

from __future__ import annotations

from typing import Any

import numpy as np


class RunningMoments:
    """Mean and (population) variance per dimension of every row seen so far.

    :param dim: size of a row.
    """

    def __init__(self, dim: int):
        self.count = 0
        self.mean = np.zeros(dim, dtype=np.float64)
        self.var = np.ones(dim, dtype=np.float64)

    def update(self, rows: np.ndarray) -> None:
        """Merge the moments of ``rows`` ``(n, dim)`` into the running ones."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != len(self.mean):
            raise ValueError(f"expected rows of shape (n, {len(self.mean)}), got {rows.shape}")
        n = len(rows)
        if n == 0:
            return
        batch_mean, batch_var = rows.mean(0), rows.var(0)
        total = self.count + n
        delta = batch_mean - self.mean
        # sums of squared deviations add, plus the spread between the two means
        squares = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        self.mean = self.mean + delta * n / total
        self.var = squares / total
        self.count = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var)

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": self.mean.tolist(), "var": self.var.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
        self.mean = np.asarray(state["mean"], dtype=np.float64)
        self.var = np.asarray(state["var"], dtype=np.float64)
