"""Heads over fixed bins: uniform categorical and quantile categorical, plus the shared binned-head base."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from rlgen.heads.base import BoundLike, Head
from rlgen.heads.piecewise import PiecewiseUniform, SmoothingKernel

if TYPE_CHECKING:
    from rlgen.heads.config import BinnedHeadConfig

#: share of a uniform grid mixed into quantile edges so every bin keeps a positive width even where the data
#: repeat a value (a bin of width 0 would have infinite density).
UNIFORM_MIX = 1e-3


def unit_quantile_edges(unit: Tensor, num_bins: int) -> Tensor:
    """``(D, num_bins + 1)`` edges holding equal shares of ``unit`` (``(N, D)`` values in [0, 1]) per dimension,
    from 0 to 1, mixed with a uniform grid (:data:`UNIFORM_MIX`)."""
    levels = torch.linspace(0.0, 1.0, num_bins + 1, device=unit.device)
    return (1.0 - UNIFORM_MIX) * _unit_quantiles(unit, levels) + UNIFORM_MIX * levels


def _unit_quantiles(unit: Tensor, levels: Tensor) -> Tensor:
    """``(D, L)`` per-dimension quantiles of ``unit`` (``(N, D)``) at ``levels`` (``(L,)``), pinned to 0 and 1."""
    quantiles = torch.quantile(unit.float(), levels, dim=0).T.contiguous()
    quantiles[:, 0], quantiles[:, -1] = 0.0, 1.0
    return quantiles


def unit_marginal_bins(unit: Tensor, num_bins: int, point_width: float) -> tuple[Tensor, Tensor]:
    """``(num_bins,)`` widths and masses of a piecewise-uniform fit to ``unit`` (``(N,)`` values in [0, 1]).

    Starts from the quantile bins (equal masses); a run of them narrower than ``point_width`` (a value the data
    repeat, such as an action clipped at its bound) becomes one bin of that width holding their joint mass, and
    the bins freed that way split the widest bins in halves, which leaves the density unchanged.
    """
    levels = torch.linspace(0.0, 1.0, num_bins + 1, device=unit.device)
    edges = _unit_quantiles(unit[:, None], levels)[0].tolist()
    bins: list[list[float]] = []  # [start, end, mass]
    j = 0
    while j < num_bins:
        start = j
        while j < num_bins and edges[j + 1] - edges[j] < point_width:
            j += 1
        if j > start:  # a point mass: centre a bin of point_width on it, inside [0, 1]
            centre = min(max((edges[start] + edges[j]) / 2, point_width / 2), 1.0 - point_width / 2)
            bins.append([centre - point_width / 2, centre + point_width / 2, (j - start) / num_bins])
        else:
            bins.append([edges[j], edges[j + 1], 1.0 / num_bins])
            j += 1
    for left, right in zip(bins, bins[1:], strict=False):  # a widened point bin takes room from the wider neighbour
        if left[1] > right[0]:
            if left[1] - left[0] > right[1] - right[0]:
                left[1] = right[0]
            else:
                right[0] = left[1]
    while len(bins) < num_bins:
        i = max(range(len(bins)), key=lambda i: bins[i][1] - bins[i][0])
        start, end, mass = bins[i]
        bins[i : i + 1] = [[start, (start + end) / 2, mass / 2], [(start + end) / 2, end, mass / 2]]
    widths = torch.tensor([end - start for start, end, _ in bins], device=unit.device)
    masses = torch.tensor([mass for *_, mass in bins], device=unit.device)
    return widths / widths.sum(), masses / masses.sum()


class BinnedHead(Head):
    """Base of heads whose distribution is :class:`PiecewiseUniform`: ``num_bins`` bins per dimension,
    trained with the target-smoothed likelihood (AdaCat eq. 8) when ``bandwidth`` > 0.

    :param config: the head's options (``num_bins``, ``bandwidth``, ``kernel``: see :mod:`rlgen.heads.config`).
    :param params_per_bin: outputs per bin and dimension.
    """

    def __init__(self, in_features: int, dim: int, low: BoundLike, high: BoundLike, config: BinnedHeadConfig,
                 params_per_bin: int):  # fmt: skip
        super().__init__(in_features, dim, low, high, params_per_dim=params_per_bin * config.num_bins)
        self.num_bins = config.num_bins
        self.bandwidth = config.bandwidth
        self.kernel: SmoothingKernel = config.kernel
        if config.init == "spread":
            self.spread_init()

    def training_log_prob(self, dist: PiecewiseUniform, target: Tensor) -> Tensor:
        return self.training_log_prob_per_dim(dist, target).sum(-1)

    def training_log_prob_per_dim(self, dist: PiecewiseUniform, target: Tensor) -> Tensor:
        """:meth:`training_log_prob` of each dimension, shape ``(..., D)``."""
        if self.bandwidth > 0:
            return dist.smoothed_log_prob_per_dim(target, self.bandwidth, self.kernel)
        return dist.log_prob_per_dim(target)

    @classmethod
    @abstractmethod
    def joint_distribution(cls, heads: Sequence[BinnedHead], params: Tensor) -> PiecewiseUniform:
        """The distributions of ``heads`` (all of this class, with one config) side by side as one over all their
        dimensions, from ``params (..., sum of their dims, params_per_dim)``: the same numbers as each head's
        distribution of its slice, in one set of operations."""

    def unit_targets(self, targets: Tensor) -> Tensor:
        """``targets`` (``(N, D)``, inside the box) on the unit interval, checked for :meth:`fit_bins`."""
        targets = torch.as_tensor(targets, dtype=torch.float32, device=self.low.device)
        if targets.ndim != 2 or targets.shape[1] != self.dim or targets.shape[0] < 2:
            raise ValueError(f"fit_bins needs targets of shape (N >= 2, {self.dim}), got {tuple(targets.shape)}")
        if not torch.isfinite(targets).all():
            raise ValueError("fit_bins targets contain NaN or inf")
        return ((targets - self.low) / (self.high - self.low)).clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_bins={self.num_bins}, bandwidth={self.bandwidth}, kernel={self.kernel}"


class FixedBinsHead(BinnedHead):
    """A binned head whose edges (unit interval, per dimension) are a buffer: saved and loaded with the model."""

    def __init__(self, in_features: int, dim: int, low: BoundLike, high: BoundLike, config: BinnedHeadConfig):
        super().__init__(in_features, dim, low, high, config, params_per_bin=1)
        self.register_buffer("edges", torch.linspace(0.0, 1.0, config.num_bins + 1).repeat(dim, 1))

    def distribution(self, params: Tensor) -> PiecewiseUniform:
        return PiecewiseUniform.from_logits(params, self.edges, self.low, self.high)

    @classmethod
    def joint_distribution(cls, heads: Sequence[BinnedHead], params: Tensor) -> PiecewiseUniform:
        edges, low, high = (torch.cat([getattr(head, name) for head in heads]) for name in ("edges", "low", "high"))
        return PiecewiseUniform.from_logits(params, edges, low, high)


class UniformCategoricalHead(FixedBinsHead):
    """k equal-width bins over ``[low, high]``; the continuous density is mass / bin width inside a bin.

    Its log-density equals minus the cross-entropy over bins minus ``log(bin width)``.
    """


class QuantileCategoricalHead(FixedBinsHead):
    """Bins holding equal shares of the training data per dimension (the Trajectory Transformer's tokens).

    Call :meth:`fit_bins` with training targets before training; until then the bins are uniform.
    """

    @torch.no_grad()
    def fit_bins(self, targets: Tensor) -> None:
        """Set the edges to the per-dimension quantiles of ``targets`` (shape ``(N, D)``, inside the box)."""
        self.edges.copy_(unit_quantile_edges(self.unit_targets(targets), self.num_bins))

    def fit_to_data(self, targets: Tensor) -> None:
        self.fit_bins(targets)
