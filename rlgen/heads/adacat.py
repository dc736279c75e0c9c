"""AdaCat head: adaptive categorical discretisation (Li, Jain & Abbeel), widths and masses both predicted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from rlgen.heads.base import BoundLike
from rlgen.heads.binned import BinnedHead, unit_marginal_bins
from rlgen.heads.piecewise import PiecewiseUniform

if TYPE_CHECKING:
    from rlgen.heads.config import AdaCatHeadConfig

#: width of the initial bin of a repeated value when the head trains without smoothing.
MIN_POINT_WIDTH = 1e-4


class AdaCatHead(BinnedHead):
    """2k outputs per dimension: k width logits ``psi`` and k mass logits ``phi`` (k outputs, the masses', with
    ``state_dependent_widths: false``: the width logits are then a free parameter per dimension).

    Trained by default with uniform target smoothing of width 1e-3 on the unit interval (the paper's setting
    for the Trajectory Transformer); without smoothing the bins collapse.

    Before training, :meth:`fit_bins` can start the bins at the data's marginal: AdaCat with equal masses and
    quantile widths *is* the quantile categorical (AdaCat sec. 3), so the network then only has to learn how the
    conditional departs from the marginal instead of first finding where the data lie in the box. Unlike the
    quantile categorical, a repeated value gets one bin holding its whole mass rather than many of zero width:
    split over many bins, a point mass loses to any wider bin under top-mass decoding.

    Its options are those of :class:`~rlgen.heads.config.AdaCatHeadConfig`. ``width_grad_scale`` multiplies the
    gradient reaching the width logits (their values are unchanged): every sample pulls its own bin narrower, a
    push that does not fade as the sample nears an edge (AdaCat sec. 3.2); below 1 this noise no longer swamps
    the features a shared network learns for the masses. ``cells`` > 0 quantises the distribution to that many
    equal cells of the box (for policy gradients).
    """

    def __init__(self, in_features: int, dim: int, low: BoundLike, high: BoundLike, config: AdaCatHeadConfig):
        super().__init__(in_features, dim, low, high, config, params_per_bin=2 if config.state_dependent_widths else 1)
        self.width_grad_scale = config.width_grad_scale
        self.cells = config.cells
        self.state_dependent_widths = config.state_dependent_widths
        if not config.state_dependent_widths:
            self.width_logits = nn.Parameter(torch.zeros(dim, self.num_bins))

    def distribution(self, params: Tensor) -> PiecewiseUniform:
        return self._distribution(params, self.low, self.high, self._free_width_logits())

    @classmethod
    def joint_distribution(cls, heads: Sequence[BinnedHead], params: Tensor) -> PiecewiseUniform:
        low, high = (torch.cat([getattr(head, name) for head in heads]) for name in ("low", "high"))
        free = [head._free_width_logits() for head in heads]  # type: ignore[attr-defined]
        if len({w is None for w in free}) > 1:
            raise ValueError("a joint AdaCat distribution needs all its heads to predict widths or none")
        return heads[0]._distribution(params, low, high, None if free[0] is None else torch.cat(free))

    def _free_width_logits(self) -> Tensor | None:
        return None if self.state_dependent_widths else self.width_logits

    def _distribution(
        self, params: Tensor, low: Tensor, high: Tensor, free_width_logits: Tensor | None
    ) -> PiecewiseUniform:
        if free_width_logits is None:
            width_logits, mass_logits = params.split(self.num_bins, dim=-1)
        else:
            mass_logits = params
            width_logits = free_width_logits.expand_as(mass_logits)
        if self.width_grad_scale != 1.0:
            frozen = width_logits.detach()
            width_logits = frozen + self.width_grad_scale * (width_logits - frozen)
        dist = PiecewiseUniform.from_adacat_logits(mass_logits, width_logits, low, high)
        return dist.quantised(self.cells) if self.cells else dist

    def extra_repr(self) -> str:
        cells = f", cells={self.cells}" if self.cells else ""
        widths = "" if self.state_dependent_widths else ", state_dependent_widths=False"
        return f"{super().extra_repr()}, width_grad_scale={self.width_grad_scale}{cells}{widths}"

    @torch.no_grad()
    def fit_bins(self, targets: Tensor) -> None:
        """Start at the data's marginal (``targets (N, D)``, inside the box): the width and mass logits' biases
        become the log-widths and log-masses of :func:`~rlgen.heads.binned.unit_marginal_bins`, whose point
        bins are as wide as the smoothing kernel."""
        unit = self.unit_targets(targets)
        bias = self.proj.bias.view(self.dim, self.params_per_dim)
        for d in range(self.dim):
            widths, masses = unit_marginal_bins(unit[:, d], self.num_bins, max(self.bandwidth, MIN_POINT_WIDTH))
            if self.state_dependent_widths:
                bias[d, : self.num_bins] = widths.log()
            else:
                self.width_logits[d] = widths.log()
            bias[d, -self.num_bins :] = masses.log()
