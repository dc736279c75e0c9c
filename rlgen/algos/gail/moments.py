"""Running mean and variance of observations, merged batch by batch (Chan et al.'s parallel update), so a
policy's input normalisation follows the states it actually visits; and :func:`renormalise_linear`, which
re-expresses a network's input layer for new statistics so that moving them leaves the network's function as it was."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rlgen.nets import MLP


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


def input_layer(mlp: MLP) -> nn.Linear:
    """The first ``nn.Linear`` of ``mlp``, the one that reads its inputs; an MLP with no hidden layer has none."""
    if not mlp.net or not isinstance(mlp.net[0], nn.Linear):
        raise ValueError(f"an MLP with no hidden layer has no input layer to re-express: {mlp}")
    return mlp.net[0]


@torch.no_grad()
def renormalise_linear(layer: nn.Linear, old_mean: Tensor, old_scale: Tensor, new_mean: Tensor,
                       new_scale: Tensor) -> Tensor:  # fmt: skip
    """Re-express ``layer``, whose first ``len(old_mean)`` inputs are ``(s - old_mean) / old_scale``, for inputs
    ``(s - new_mean) / new_scale``, in place, so that it computes the same output for every ``s``: those input
    columns ``W`` become ``W new_scale / old_scale`` and the bias gains ``W (new_mean - old_mean) / old_scale``.

    :returns: that bias shift, ``(out_features,)``; an input that is not a normalised state (e.g. an indicator
        whose rows hold no state) can give it back through its own column.
    """
    columns = layer.weight[:, : len(old_mean)]
    shift = columns @ ((new_mean - old_mean) / old_scale)
    layer.bias += shift
    columns *= new_scale / old_scale
    return shift
