"""Discrete data on rlgen heads: the probability *mass* every head puts on each of L levels.

Data with L levels (pixel intensities, mu-law audio codes) are the integers ``0 .. L-1``. A continuous head
scores level ``l`` by integrating its density over the level's bin ``[l - 1/2, l + 1/2]`` (the lowest and
highest bins are open-ended, so the L masses sum to 1 even for a density whose support extends beyond the
box); the DLML head's log-probability already is that mass. Every head is thus trained and evaluated on the
same discrete likelihood, and bits/dim compare across heads (AdaCat paper, sec. 4.2).

:func:`level_head` builds a head whose box fits this convention: ``[-1/2, L - 1/2]`` for densities, so that
the L bins tile the box, and ``[0, L - 1]`` with ``num_classes = L`` for DLML, whose levels sit on the box's
grid.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rlgen.heads import DiagGaussian, DiscretizedLogisticMixture, DLMLHeadConfig, Head, HeadConfig, PiecewiseUniform
from rlgen.heads.base import BoxDistribution, gumbel_argmax


def level_head(config: HeadConfig, in_features: int, num_levels: int, dim: int = 1) -> Head:
    """A head built from ``config`` over ``num_levels`` levels per dimension (a DLML head's ``num_classes`` is
    set to ``num_levels``, whatever the config says)."""
    if num_levels < 2:
        raise ValueError(f"num_levels must be at least 2, got {num_levels}")
    if isinstance(config, DLMLHeadConfig):
        return config.replace(num_classes=num_levels).create(in_features, dim, 0.0, num_levels - 1.0)
    return config.create(in_features, dim, -0.5, num_levels - 0.5)


def check_levels(levels: Tensor, num_levels: int, name: str = "levels") -> None:
    """Raise ``ValueError`` unless ``levels`` is an integer tensor with values in ``[0, num_levels - 1]``."""
    if levels.is_floating_point() or levels.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor, got {levels.dtype}")
    if levels.numel() and (levels.min() < 0 or levels.max() >= num_levels):
        raise ValueError(f"{name} must lie in [0, {num_levels - 1}], got values in "
                         f"[{int(levels.min())}, {int(levels.max())}]")  # fmt: skip


def level_log_mass(dist: BoxDistribution, levels: Tensor, num_levels: int) -> Tensor:
    """Log-probability mass of integer ``levels`` (shape ``(..., D)``, broadcast against the distribution).

    :param dist: a distribution from :func:`level_head` (uniform, quantile, AdaCat, Gaussian or DLML).
    :param num_levels: L; levels 0 and L-1 take the open-ended tails.
    """
    check_levels(levels, num_levels)
    if isinstance(dist, DiscretizedLogisticMixture):
        if dist.num_classes != num_levels:
            raise ValueError(f"DLML head has {dist.num_classes} classes but the data have {num_levels} levels")
        return dist.log_prob_per_dim(levels.float())
    value = levels.float()
    lower, upper = value - 0.5, value + 0.5
    lowest, highest = levels == 0, levels == num_levels - 1
    if isinstance(dist, PiecewiseUniform):
        return _piecewise_log_mass(dist, dist.to_unit(lower).masked_fill(lowest, 0.0),
                                   dist.to_unit(upper).masked_fill(highest, 1.0))  # fmt: skip
    if isinstance(dist, DiagGaussian):
        return _gaussian_log_mass(dist, lower.masked_fill(lowest, -math.inf), upper.masked_fill(highest, math.inf))
    raise TypeError(f"no level likelihood for {type(dist).__name__}; use a head from rlgen.generative.level_head")


def _piecewise_log_mass(dist: PiecewiseUniform, a: Tensor, b: Tensor) -> Tensor:
    """``log sum_j h_j |[a, b] & bin_j| / w_j`` on the unit interval: exact, and differentiable in the widths."""
    a, b = a.clamp(0.0, 1.0).unsqueeze(-1), b.clamp(0.0, 1.0).unsqueeze(-1)
    overlap = torch.minimum(b, dist.edges[..., 1:]) - torch.maximum(a, dist.edges[..., :-1])
    inside = overlap > 0
    # The clamp keeps log's gradient finite in the bins the level misses, which the where() then drops.
    log_overlap = torch.where(inside, overlap.clamp(min=1e-30).log(), -math.inf)
    return torch.logsumexp(dist.log_masses - dist.log_widths + log_overlap, dim=-1)


def _gaussian_log_mass(dist: DiagGaussian, lower: Tensor, upper: Tensor) -> Tensor:
    """``log(Phi(z_b) - Phi(z_a))`` for the latent Gaussian, reflected so that the interval lies mostly in the
    lower tail (no cancellation) and only its lower end may be open."""

    def latent(x: Tensor) -> Tensor:
        v = 2.0 * dist.to_unit(x) - 1.0
        return torch.atanh(v.clamp(-1.0, 1.0)) if dist.squash else v

    za, zb = latent(lower), latent(upper)
    a_open, b_open = za == -math.inf, zb == math.inf
    # Open ends are replaced before the arithmetic with the parameters, so no gradient ever meets an infinity.
    za = (torch.where(a_open, 0.0, za) - dist.loc) / dist.std
    zb = (torch.where(b_open, 0.0, zb) - dist.loc) / dist.std
    flip = b_open | (~a_open & (za + zb > 0))
    za, zb, a_open = torch.where(flip, -zb, za), torch.where(flip, -za, zb), torch.where(flip, b_open, a_open)
    log_b, log_a = torch.special.log_ndtr(zb), torch.special.log_ndtr(za)
    rest = torch.log(-torch.expm1((log_a - log_b).clamp(max=-1e-12)))
    return log_b + torch.where(a_open, 0.0, rest)


def level_log_probs(dist: BoxDistribution, num_levels: int) -> Tensor:
    """Log-masses of all L levels, shape ``batch_shape + (D, L)``."""
    batch = (*dist.batch_shape, dist.dim)
    grid = torch.arange(num_levels, device=dist.low.device).view(num_levels, *[1] * len(batch)).expand(-1, *batch)
    return level_log_mass(dist, grid, num_levels).movedim(0, -1)


def sample_levels(
    dist: BoxDistribution, num_levels: int, temperature: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    """Levels drawn from the discrete distribution the likelihood scores, shape ``batch_shape + (D,)``.

    :param temperature: divides the level log-masses (< 1 sharpens).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return gumbel_argmax(level_log_probs(dist, num_levels) / temperature, generator)


def bits_per_dim(log_mass_sum: float, count: int) -> float:
    """Negative log-likelihood in bits per element from a sum of natural-log masses over ``count`` elements."""
    return -log_mass_sum / (count * math.log(2.0))
