"""Piecewise-uniform distributions: the family behind the uniform, quantile and AdaCat heads.

Per dimension, the unit interval is cut into k adjacent bins with widths ``w`` (summing to 1) and masses
``h`` (summing to 1); the density is ``h_i / w_i`` inside bin ``i`` (AdaCat paper, eq. 1). Uniform
categoricals fix ``w = 1/k``, quantile categoricals fix ``w`` from data, AdaCat predicts both.

The analytic target-smoothed log-likelihood (AdaCat paper, eq. 8) is
``E_{z ~ kernel(.|u)}[log f(z)] = sum_j (F(c_j + w_j) - F(c_j)) (log h_j - log w_j)``
with ``F`` the CDF of the smoothing kernel around the target, truncated to [0, 1].
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from rlgen.heads.base import BoxDistribution, check_sampling_controls, gumbel_argmax, nucleus_filter

SmoothingKernel = Literal["uniform", "gaussian"]
SMOOTHING_KERNELS: tuple[str, ...] = ("uniform", "gaussian")
BinRanking = Literal["mass", "density"]
BIN_RANKINGS: tuple[str, ...] = ("mass", "density")


class PiecewiseUniform(BoxDistribution):
    """Per-dimension mixture of uniform distributions on adjacent bins covering ``[low, high]``.

    :param log_masses: normalised log-masses ``log h``, shape ``(..., D, k)``.
    :param edges: bin edges on the unit interval, shape broadcastable to ``(..., D, k + 1)``, starting at 0,
        ending at 1, non-decreasing.
    :param log_widths: ``log w`` matching ``edges`` (passed separately because ``log_softmax`` of width
        logits is more accurate than the log of differences of a cumulative sum).
    :param adaptive_edges: the edges are predicted per input (AdaCat), not fixed: :func:`rlgen.heads.box_kl`
        then bounds policy steps with a KL that is smooth in the edges.
    """

    def __init__(
        self,
        log_masses: Tensor,
        edges: Tensor,
        log_widths: Tensor,
        low: Tensor,
        high: Tensor,
        validate_args: bool | None = None,
        adaptive_edges: bool = False,
    ):
        super().__init__(low, high, validate_args)
        self.adaptive_edges = adaptive_edges
        self.log_masses = log_masses.float()
        shape = self.log_masses.shape
        self.edges = edges.float().expand(*shape[:-1], shape[-1] + 1)
        self.log_widths = log_widths.float().expand(shape)

    # ----- constructors ----------------------------------------------------------------------------------------
    @classmethod
    def from_logits(
        cls,
        mass_logits: Tensor,
        edges: Tensor,
        low: Tensor,
        high: Tensor,
        validate_args: bool | None = None,
    ) -> PiecewiseUniform:
        """Bins with fixed ``edges`` (uniform or quantile) and masses ``softmax(mass_logits)``."""
        log_widths = torch.log(edges[..., 1:] - edges[..., :-1])
        return cls(torch.log_softmax(mass_logits.float(), -1), edges, log_widths, low, high, validate_args)

    @classmethod
    def from_adacat_logits(
        cls,
        mass_logits: Tensor,
        width_logits: Tensor,
        low: Tensor,
        high: Tensor,
        validate_args: bool | None = None,
    ) -> PiecewiseUniform:
        """AdaCat: widths ``softmax(psi)`` and masses ``softmax(phi)``, both predicted (paper eq. 2)."""
        log_widths = torch.log_softmax(width_logits.float(), -1)
        inner_edges = log_widths.exp().cumsum(-1)[..., :-1]
        zeros = torch.zeros_like(inner_edges[..., :1])
        # The last edge is exactly 1 so that u = 1 always falls inside the support despite cumsum round-off.
        edges = torch.cat([zeros, inner_edges.clamp(max=1.0), zeros + 1.0], -1)
        log_masses = torch.log_softmax(mass_logits.float(), -1)
        return cls(log_masses, edges, log_widths, low, high, validate_args, adaptive_edges=True)

    # ----- helpers -------------------------------------------------------------------------------------------
    @property
    def batch_shape(self) -> torch.Size:
        return self.log_masses.shape[:-2]

    @property
    def num_bins(self) -> int:
        return self.log_masses.shape[-1]

    @property
    def masses(self) -> Tensor:
        return self.log_masses.exp()

    @property
    def widths(self) -> Tensor:
        return self.log_widths.exp()

    def bin_index(self, u: Tensor) -> Tensor:
        """Index of the bin holding each unit coordinate ``u`` (shape ``(..., D)``); u = 1 is in the last bin."""
        return (u.unsqueeze(-1) >= self.edges[..., 1:-1]).sum(-1)

    def _take(self, table: Tensor, index: Tensor) -> Tensor:
        table = table.expand(*index.shape, table.shape[-1])
        return table.gather(-1, index.unsqueeze(-1)).squeeze(-1)

    # ----- densities -----------------------------------------------------------------------------------------
    def log_prob_per_dim(self, x: Tensor) -> Tensor:
        u = self.to_unit(self.check_target(x))
        index = self.bin_index(u)
        return self._take(self.log_masses - self.log_widths, index) - self.log_width

    def smoothed_log_prob_per_dim(self, x: Tensor, bandwidth: float, kernel: SmoothingKernel = "uniform") -> Tensor:
        """Analytic ``E_{z ~ kernel(.|x)}[log p(z)]`` per dimension (AdaCat eq. 8).

        :param bandwidth: kernel width lambda on the unit interval (the full width of the uniform kernel, the
            standard deviation of the Gaussian one); both are truncated to the unit interval.
        """
        if not bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
        u = self.to_unit(self.check_target(x)).unsqueeze(-1)
        kernel_cdf = _KERNEL_CDFS.get(kernel)
        if kernel_cdf is None:
            raise ValueError(f"unknown smoothing kernel {kernel!r}; choose one of {SMOOTHING_KERNELS}")
        cdf_at_edges = kernel_cdf(self.edges, u, bandwidth)
        weights = (cdf_at_edges[..., 1:] - cdf_at_edges[..., :-1]).clamp(min=0.0)
        # Bins the kernel does not reach contribute 0, also where their density is 0; masking before the product
        # keeps 0 * -inf from turning into NaN values or gradients.
        log_density = (self.log_masses - self.log_widths).masked_fill(weights <= 0, 0.0)
        return (weights * log_density).sum(-1) - self.log_width

    def smoothed_log_prob(self, x: Tensor, bandwidth: float, kernel: SmoothingKernel = "uniform") -> Tensor:
        return self.smoothed_log_prob_per_dim(x, bandwidth, kernel).sum(-1)

    def cdf(self, x: Tensor) -> Tensor:
        """Per-dimension cumulative distribution function, shape ``(..., D)``."""
        u = self.to_unit(self.check_target(x))
        index = self.bin_index(u)
        mass_before = self.masses.cumsum(-1) - self.masses
        fraction = (u - self._take(self.edges[..., :-1], index)) / self._take(self.widths, index)
        return self._take(mass_before, index) + self._take(self.masses, index) * fraction.clamp(0.0, 1.0)

    def icdf(self, q: Tensor) -> Tensor:
        """Per-dimension inverse CDF of probabilities ``q`` in [0, 1], shape ``(..., D)``."""
        q = q.float()
        cumulative = self.masses.cumsum(-1)
        index = (q.unsqueeze(-1) >= cumulative[..., :-1]).sum(-1)
        mass = self._take(self.masses, index)
        fraction = ((q - self._take(cumulative - self.masses, index)) / mass.clamp(min=1e-30)).clamp(0.0, 1.0)
        u = self._take(self.edges[..., :-1], index) + fraction * self._take(self.widths, index)
        return self.from_unit(u)

    # ----- sampling and summaries ---------------------------------------------------------------------------------
    def sample(
        self,
        temperature: float = 1.0,
        top_p: float | None = None,
        midpoint: bool = False,
        generator: torch.Generator | None = None,
        rank_by: BinRanking = "mass",
    ) -> Tensor:
        """Sample a bin from the (tempered, nucleus-filtered) masses, then a point inside it.

        :param temperature: divides the mass logits.
        :param top_p: keep the highest-ranked bins holding this mass (``0``: only the first: greedy decoding).
        :param rank_by: ``"mass"`` ranks bins by probability, as token models do; ``"density"`` by mass / width,
            which makes the nucleus a highest-density region. The two agree when bins are equal.
        :param midpoint: return the bin's centre instead of a uniform point inside it (the released
            Trajectory Transformer's token reconstruction).
        """
        check_sampling_controls(temperature, top_p)
        with torch.no_grad():
            if rank_by not in BIN_RANKINGS:
                raise ValueError(f"unknown rank_by {rank_by!r}; choose one of {BIN_RANKINGS}")
            logits = self.log_masses / temperature
            rank = logits - self.log_widths if rank_by == "density" else None
            logits = nucleus_filter(logits, top_p, rank)
            index = gumbel_argmax(logits, generator)
            if midpoint:
                offset = torch.full(index.shape, 0.5, device=index.device)
            else:
                offset = torch.rand(index.shape, device=index.device, generator=generator)
            u = self._take(self.edges[..., :-1], index) + offset * self._take(self.widths, index)
        return self.from_unit(u)

    def mode(self) -> Tensor:
        """Centre of the bin with the highest density ``h / w``."""
        index = (self.log_masses - self.log_widths).argmax(-1)
        return self.bin_center(index)

    def cell_masses(self, cells: int = 256) -> tuple[Tensor, Tensor]:
        """Masses of ``cells`` equal cells of the unit interval (differences of the CDF at their edges)."""
        grid = torch.linspace(0.0, 1.0, cells + 1, device=self.log_masses.device)
        u = grid.view(-1, *([1] * (self.log_masses.dim() - 1))).expand(cells + 1, *self.log_masses.shape[:-1])
        cdf = self.cdf(self.from_unit(u)).movedim(0, -1)
        return 0.5 * (grid[1:] + grid[:-1]), (cdf[..., 1:] - cdf[..., :-1]).clamp(min=0.0)

    def log_cell_masses(self, grid: Tensor, batch: torch.Size | None = None) -> Tensor:
        """Log-masses ``batch + (D, G)`` of the G cells between consecutive points of ``grid`` (``(G + 1,)``,
        increasing from 0 to 1 on the unit interval): differences of the CDF, smooth in the masses and the edges.

        :param batch: the batch shape to broadcast to (default this distribution's).
        """
        shape = self.log_masses.shape[:-1] if batch is None else batch
        points = grid.expand(*shape, -1).contiguous()
        index = torch.searchsorted(self.edges[..., 1:-1].expand(*shape, -1).contiguous(), points, right=True)
        masses = self.masses.expand(*shape, -1)
        mass_before = masses.cumsum(-1) - masses
        start = self.edges[..., :-1].expand(*shape, -1).gather(-1, index)
        width = self.widths.expand(*shape, -1).gather(-1, index)
        fraction = ((points - start) / width).clamp(0.0, 1.0)
        cdf = mass_before.gather(-1, index) + masses.gather(-1, index) * fraction
        # A cell's mass as a difference of CDF values: bins hold positive mass, so only round-off reaches 0.
        return (cdf[..., 1:] - cdf[..., :-1]).clamp(min=1e-30).log()

    def quantised(self, cells: int) -> PiecewiseUniform:
        """This distribution with the mass of each of ``cells`` equal cells of the box spread uniformly over the
        cell: fixed edges, masses from :meth:`log_cell_masses`. Its density at a fixed point is continuous in
        this one's masses and edges, where this one's jumps when an edge moves past the point."""
        if cells < 2:
            raise ValueError(f"cells must be at least 2, got {cells}")
        grid = torch.linspace(0.0, 1.0, cells + 1, device=self.log_masses.device)
        log_widths = torch.log(grid[1:] - grid[:-1])
        return PiecewiseUniform(self.log_cell_masses(grid), grid, log_widths, self.low, self.high, self.validate_args)

    def bin_center(self, index: Tensor) -> Tensor:
        return self.from_unit(self._take(self.edges[..., :-1], index) + 0.5 * self._take(self.widths, index))

    @property
    def mean(self) -> Tensor:
        centers = self.edges[..., :-1] + 0.5 * self.widths
        return self.from_unit((self.masses * centers).sum(-1))

    def entropy_per_dim(self) -> Tensor:
        """Differential entropy ``-sum h (log h - log w) + log(high - low)`` per dimension."""
        empty = self.log_masses == -math.inf
        log_density = (self.log_masses - self.log_widths).masked_fill(empty, 0.0)
        return -(self.masses * log_density).sum(-1) + self.log_width


def _uniform_kernel_cdf(t: Tensor, center: Tensor, bandwidth: float) -> Tensor:
    lower = (center - 0.5 * bandwidth).clamp(min=0.0)
    upper = (center + 0.5 * bandwidth).clamp(max=1.0)
    return ((t - lower) / (upper - lower)).clamp(0.0, 1.0)


def _gaussian_kernel_cdf(t: Tensor, center: Tensor, bandwidth: float) -> Tensor:
    below_support = torch.special.ndtr((0.0 - center) / bandwidth)
    support_mass = torch.special.ndtr((1.0 - center) / bandwidth) - below_support
    return ((torch.special.ndtr((t - center) / bandwidth) - below_support) / support_mass).clamp(0.0, 1.0)


_KERNEL_CDFS = {"uniform": _uniform_kernel_cdf, "gaussian": _gaussian_kernel_cdf}
