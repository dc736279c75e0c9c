"""AdaCat head: adaptive categorical discretisation (Li, Jain & Abbeel), widths and masses both predicted."""

from __future__ import annotations

import torch
from torch import Tensor

from rlgen.heads.base import BoundLike
from rlgen.heads.binned import PiecewiseUniform, SmoothingKernel
from rlgen.heads.categorical import BinnedHead


class AdaCatHead(BinnedHead):
    """2k outputs per dimension: k width logits ``psi`` and k mass logits ``phi``.

    Trained by default with uniform target smoothing of width 1e-3 on the unit interval (the paper's setting
    for the Trajectory Transformer); without smoothing the bins collapse.

    Before training, :meth:`fit_bins` can start the bins at the data's quantiles: AdaCat with equal masses and
    quantile widths *is* the quantile categorical (AdaCat sec. 3), so the network then only has to learn how the
    conditional departs from the marginal instead of first finding where the data lie in the box.
    """

    def __init__(
        self,
        in_features: int,
        dim: int,
        low: BoundLike,
        high: BoundLike,
        num_bins: int = 50,
        bandwidth: float = 1e-3,
        kernel: SmoothingKernel = "uniform",
    ):
        super().__init__(in_features, dim, low, high, num_bins, params_per_bin=2, bandwidth=bandwidth, kernel=kernel)

    def distribution(self, params: Tensor) -> PiecewiseUniform:
        width_logits, mass_logits = params.split(self.num_bins, dim=-1)
        return PiecewiseUniform.from_adacat_logits(mass_logits, width_logits, self.low, self.high)

    @torch.no_grad()
    def fit_bins(self, targets: Tensor) -> None:
        """Start at the quantile categorical of ``targets`` (``(N, D)``, inside the box): the width logits' bias
        becomes the log-widths of the per-dimension quantile bins, the mass logits' bias 0 (equal masses)."""
        log_widths = self.quantile_edges(targets).diff(dim=-1).log()  # (D, k)
        bias = self.proj.bias.view(self.dim, 2 * self.num_bins)
        bias[:, : self.num_bins] = log_widths
        bias[:, self.num_bins :] = 0.0
