"""Discretised logistic mixture likelihood (DLML, as in PixelCNN++ and robot action decoders).

Per dimension the target is scaled to ``y`` in [-1, 1] and read as one of ``num_classes`` evenly spaced levels
``y_i = -1 + 2 i / (C - 1)``. A mixture of K logistics puts mass on level ``i`` equal to the mixture's
probability of ``[y_i - e, y_i + e]`` with half-width ``e = 1 / (C - 1)``; the lowest and highest levels take
the open-ended tails, so the C masses sum to 1. ``log_prob`` is the log-mass of the level a target rounds to.

Numerics follow the standard recipe: log-scales are clamped at -7, and where a level's mass is below 1e-5
its log-mass is replaced by the log-density at the level centre times the bin width. The regular branch
evaluates ``log(sigmoid(a) - sigmoid(b))`` as ``logsigmoid(a) + logsigmoid(-b) + log(-expm1(b - a))``,
which has no cancellation when both CDF values are close to 0 or 1.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlgen.heads.base import (
    BoundLike,
    BoxDistribution,
    Head,
    check_sampling_controls,
    gumbel_argmax,
    nucleus_filter,
)

if TYPE_CHECKING:
    from rlgen.heads.config import DLMLHeadConfig

LOG_SCALE_MIN = -7.0
TINY_MASS = 1e-5
# Stands in for an infinite bin bound: large enough that the logistic CDF is exactly 0 or 1 in float32.
_FAR = 1e30


def logistic_level_log_mass(
    level: Tensor, num_classes: int, means: Tensor, log_scales: Tensor, log_weights: Tensor
) -> Tensor:
    """Log-mass of integer ``level`` (shape ``S``) under a logistic mixture with parameters of shape ``S + (K,)``:
    the log-sum over components of their weights times :func:`logistic_component_log_mass`."""
    return torch.logsumexp(logistic_component_log_mass(level, num_classes, means, log_scales) + log_weights, dim=-1)


def logistic_component_log_mass(level: Tensor, num_classes: int, means: Tensor, log_scales: Tensor) -> Tensor:
    """Log-mass of integer ``level`` (shape ``S``) under each logistic component, shape ``S + (K,)``.

    The vectorised core of DLML: every case is computed for all entries and one ``torch.where`` picks the
    tiny-mass fallback, with no boolean-mask assignment. The open-ended edge bins reuse the regular formula
    with the missing bound pushed to infinity.
    """
    half_width = 1.0 / (num_classes - 1)
    y = (2.0 * level.float() / (num_classes - 1) - 1.0).unsqueeze(-1)
    inv_scale = torch.exp(-log_scales)
    middle = inv_scale * (y - means)
    step = inv_scale * half_width
    lowest = (level == 0).unsqueeze(-1)
    highest = (level == num_classes - 1).unsqueeze(-1)
    upper = middle + step + highest.float() * _FAR
    lower = middle - step - lowest.float() * _FAR
    # log(sigmoid(upper) - sigmoid(lower)) without cancellation; the cap keeps the log (and its gradient) finite
    # when a huge scale makes the bin vanishingly narrow.
    width_term = torch.log(-torch.expm1((lower - upper).clamp(max=-1e-12)))
    regular = F.logsigmoid(upper) + F.logsigmoid(-lower) + width_term
    fallback = middle - log_scales - 2.0 * F.softplus(middle) - math.log((num_classes - 1) / 2.0)
    keep = (regular > math.log(TINY_MASS)) | lowest | highest
    return torch.where(keep, regular, fallback)


class DiscretizedLogisticMixture(BoxDistribution):
    """K-component discretised logistic mixture per dimension over ``num_classes`` levels.

    :param logits: mixture logits, shape ``(..., D, K)``.
    :param means: component means on the [-1, 1] scale, shape ``(..., D, K)``.
    :param log_scales: component log-scales (clamped below at -7), shape ``(..., D, K)``.
    :param num_classes: number C of levels per dimension.
    """

    def __init__(
        self,
        logits: Tensor,
        means: Tensor,
        log_scales: Tensor,
        low: Tensor,
        high: Tensor,
        num_classes: int,
        validate_args: bool | None = None,
    ):
        super().__init__(low, high, validate_args)
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.logits = logits.float()
        self.means = means.float()
        self.log_scales = log_scales.float().clamp(min=LOG_SCALE_MIN)
        self.num_classes = num_classes

    @property
    def batch_shape(self) -> torch.Size:
        return self.logits.shape[:-2]

    @property
    def log_weights(self) -> Tensor:
        return torch.log_softmax(self.logits, -1)

    def level_of(self, x: Tensor) -> Tensor:
        """Index of the level each target rounds to, shape ``(..., D)``."""
        u = self.to_unit(self.check_target(x))
        return torch.round(u * (self.num_classes - 1)).long().clamp(0, self.num_classes - 1)

    def level_values(self) -> Tensor:
        """The C level values in the user's coordinates, shape ``(D, C)``."""
        grid = torch.linspace(0.0, 1.0, self.num_classes, device=self.logits.device)
        return self.from_unit(grid.unsqueeze(-1)).T

    def log_prob_per_dim(self, x: Tensor) -> Tensor:
        """Log-mass of the level each dimension of ``x`` rounds to."""
        level = self.level_of(x)
        return logistic_level_log_mass(level, self.num_classes, self.means, self.log_scales, self.log_weights)

    def level_log_probs(self) -> Tensor:
        """Log-mass of every level, shape ``(..., D, C)`` (memory grows with C * K per element)."""
        levels = torch.arange(self.num_classes, device=self.logits.device)
        levels = levels.expand(*self.logits.shape[:-1], self.num_classes)
        params = (p.unsqueeze(-2) for p in (self.means, self.log_scales, self.log_weights))
        return logistic_level_log_mass(levels, self.num_classes, *params)

    @property
    def coordinates(self) -> Tensor:
        """The tensors the level masses are a function of, per dimension: mixture logits, means and log-scales
        (after their clamp), shape ``(..., D, 3K)``: the coordinates of :meth:`fisher_information`."""
        return torch.cat([self.logits, self.means, self.log_scales], -1)

    def fisher_information(self) -> Tensor:
        """Fisher information of the level pmf in :attr:`coordinates`, ``sum_c p_c g_c g_c^T`` with ``g_c`` the
        gradient of ``log p_c``, shape ``(..., D, 3K, 3K)``, without gradient: the Hessian of ``KL(self || q)``
        in ``q``'s coordinates at ``q = self``.

        The score of a mixture is the responsibility ``r_ck`` of each component for level c times that
        component's own score: ``r_ck - w_k`` in logit k, ``r_ck`` times the derivative of the component's
        log-mass in its mean and log-scale. Those derivatives come from one backward pass over the level table,
        where an autograd Hessian-vector product of the KL costs a double backward pass each time it is taken.
        """
        levels = torch.arange(self.num_classes, device=self.logits.device).expand(*self.logits.shape[:-1], -1)
        table_shape = (*self.logits.shape[:-1], self.num_classes, self.logits.shape[-1])
        means = self.means.detach().unsqueeze(-2).expand(table_shape).clone().requires_grad_()
        log_scales = self.log_scales.detach().unsqueeze(-2).expand(table_shape).clone().requires_grad_()
        with torch.enable_grad():
            component = logistic_component_log_mass(levels, self.num_classes, means, log_scales)
            mean_score, log_scale_score = torch.autograd.grad(component.sum(), (means, log_scales))
        log_weights = self.log_weights.detach().unsqueeze(-2)
        joint = component.detach() + log_weights  # (..., D, C, K)
        log_probs = torch.logsumexp(joint, -1, keepdim=True)
        responsibility = (joint - log_probs).exp()
        scores = torch.cat(
            [responsibility - log_weights.exp(), responsibility * mean_score, responsibility * log_scale_score], -1
        )
        return torch.einsum("...ci,...c,...cj->...ij", scores, log_probs.squeeze(-1).exp(), scores)

    def cdf(self, x: Tensor) -> Tensor:
        """Probability of the levels up to and including the one ``x`` rounds to, shape ``(..., D)``."""
        cumulative = self.level_log_probs().exp().cumsum(-1)
        level = self.level_of(x)
        return cumulative.expand(*level.shape, self.num_classes).gather(-1, level.unsqueeze(-1)).squeeze(-1)

    def sample(
        self, temperature: float = 1.0, top_p: float | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Gumbel-max over components, then the logistic inverse CDF, clipped to the box.

        :param temperature: divides the mixture logits and multiplies the component scales.
        :param top_p: nucleus filter over mixture components.
        """
        check_sampling_controls(temperature, top_p)
        with torch.no_grad():
            component = gumbel_argmax(nucleus_filter(self.logits / temperature, top_p), generator).unsqueeze(-1)
            mean = self.means.gather(-1, component).squeeze(-1)
            scale = self.log_scales.gather(-1, component).squeeze(-1).exp() * temperature
            uniform = torch.rand(mean.shape, device=mean.device, generator=generator).clamp(1e-5, 1.0 - 1e-5)
            y = (mean + scale * (torch.log(uniform) - torch.log1p(-uniform))).clamp(-1.0, 1.0)
        return self.from_unit(0.5 * (y + 1.0))

    def mode(self) -> Tensor:
        """The most probable level. The edge levels also hold the open tails, so a mixture whose components
        reach past the box (an untrained or on-policy one) has its mode on a bound: act with :attr:`mean`
        there (the SB3 policies do)."""
        index = self.level_log_probs().argmax(-1)
        return self._level_to_target(index)

    def _level_to_target(self, index: Tensor) -> Tensor:
        return self.from_unit(index.float() / (self.num_classes - 1))

    def cell_masses(self) -> tuple[Tensor, Tensor]:
        """The C levels are the cells: their unit-interval values and masses."""
        return torch.linspace(0.0, 1.0, self.num_classes, device=self.logits.device), self.level_log_probs().exp()

    @property
    def mean(self) -> Tensor:
        levels, probs = self.cell_masses()
        return self.from_unit((probs * levels).sum(-1))

    def entropy_per_dim(self) -> Tensor:
        """Entropy of the discrete distribution over the C levels (nats)."""
        log_p = self.level_log_probs()
        return -(log_p.exp() * log_p).sum(-1)


class DLMLHead(Head):
    """DLML head: 3K outputs per dimension (mixture logits, means, log-scales); its options are those of
    :class:`~rlgen.heads.config.DLMLHeadConfig`."""

    def __init__(self, in_features: int, dim: int, low: BoundLike, high: BoundLike, config: DLMLHeadConfig):
        k = config.num_mixtures
        super().__init__(in_features, dim, low, high, params_per_dim=(3 if config.state_dependent_scale else 2) * k)
        self.num_mixtures = k
        self.num_classes = config.num_classes
        self.state_dependent_scale = config.state_dependent_scale
        if not config.state_dependent_scale:
            self.log_scales = nn.Parameter(torch.zeros(dim, k))
        if config.init == "spread":
            self.spread_init()

    def distribution(self, params: Tensor) -> DiscretizedLogisticMixture:
        if self.state_dependent_scale:
            logits, means, log_scales = params.split(self.num_mixtures, dim=-1)
        else:
            logits, means = params.split(self.num_mixtures, dim=-1)
            log_scales = self.log_scales.expand_as(means)
        return DiscretizedLogisticMixture(logits, means, log_scales, self.low, self.high, self.num_classes)

    @torch.no_grad()
    def spread_init(self, scale: float = 1.0) -> None:
        super().spread_init(scale)
        if not self.state_dependent_scale:
            self.log_scales.copy_(self._spread_outputs(scale)[:, 2 * self.num_mixtures :])

    def spread_bias(self, scale: float) -> Tensor:
        """Equal weights; means at the centres of K equal cells of [-1, 1]; each component's standard deviation
        ``scale / K`` (a logistic's is its scale times pi / sqrt(3)). With ``scale`` 1 the mixture is near
        uniform over the box and the edge levels keep a few percent (K = 1: SB3's Gaussian, clipped)."""
        outputs = self._spread_outputs(scale)
        return outputs if self.state_dependent_scale else outputs[:, : 2 * self.num_mixtures]

    def _spread_outputs(self, scale: float) -> Tensor:
        k = self.num_mixtures
        means = torch.arange(k, dtype=torch.float32).mul(2.0).add(1.0).div(k).sub(1.0)
        log_scale = math.log(scale / k) - math.log(math.pi / math.sqrt(3.0))
        outputs = torch.cat([torch.zeros(k), means, torch.full((k,), log_scale)])
        return outputs.expand(self.dim, 3 * k)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, num_mixtures={self.num_mixtures}, num_classes={self.num_classes}, "
            f"state_dependent_scale={self.state_dependent_scale}"
        )
