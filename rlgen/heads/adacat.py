"""AdaCat head: adaptive categorical discretisation (Li, Jain & Abbeel), widths and masses both predicted."""

from __future__ import annotations

from torch import Tensor

from rlgen.heads.base import BoundLike
from rlgen.heads.binned import PiecewiseUniform, SmoothingKernel
from rlgen.heads.categorical import BinnedHead


class AdaCatHead(BinnedHead):
    """2k outputs per dimension: k width logits ``psi`` and k mass logits ``phi``.

    Trained by default with uniform target smoothing of width 1e-3 on the unit interval (the paper's setting
    for the Trajectory Transformer); without smoothing the bins collapse.
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
