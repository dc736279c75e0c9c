"""Diagonal Gaussian head, optionally tanh-squashed into the target box.

The Gaussian lives on the centred unit coordinate ``v = 2 (x - low) / (high - low) - 1``, so network outputs
are scale-free. Unsquashed, ``v`` ranges over the real line (the density extends beyond the box and samples
are not clipped); squashed, ``v = tanh(z)`` with ``z`` Gaussian, and the log-density includes
``-log(1 - tanh(z)^2)``. Moments and entropy of the squashed case, which have no closed form, use
Gauss-Hermite quadrature (exact to float precision for these smooth integrands).

An unsquashed head can instead take its outputs in the environment's units (``env_units``): the mean as an
offset from the box centre and the log-std of the action itself, as Stable-Baselines3's Gaussian does. The
distribution is the same family; only how far one optimiser step moves it in env units changes (by the box's
half-width), which matters to policy-gradient methods with scale-free optimisers (RMSprop, Adam).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rlgen.heads.base import PEAK_WIDTH, BoundLike, BoxDistribution, Head, check_sampling_controls

if TYPE_CHECKING:
    from rlgen.heads.config import GaussianHeadConfig

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
# Squashed log-densities are evaluated at most this close to the box edges, where atanh diverges.
SQUASH_EDGE = 1e-6
_HERMITE_NODES, _HERMITE_WEIGHTS = np.polynomial.hermite_e.hermegauss(32)


class DiagGaussian(BoxDistribution):
    """Independent Gaussians per dimension on the centred unit coordinate, optionally tanh-squashed.

    :param loc: means, shape ``(..., D)``.
    :param log_std: log standard deviations (clamped to [-20, 2]), shape ``(..., D)``.
    :param squash: squash with tanh so that the support is exactly the box.
    """

    def __init__(
        self,
        loc: Tensor,
        log_std: Tensor,
        low: Tensor,
        high: Tensor,
        squash: bool = False,
        validate_args: bool | None = None,
    ):
        super().__init__(low, high, validate_args)
        self.loc = loc.float()
        self.log_std = log_std.float().clamp(LOG_STD_MIN, LOG_STD_MAX)
        self.squash = squash
        # Unsquashed Gaussians put mass outside the box: targets there are scored, not rejected.
        self.bounded_support = squash

    @property
    def batch_shape(self) -> torch.Size:
        return self.loc.shape[:-1]

    @property
    def std(self) -> Tensor:
        return self.log_std.exp()

    @property
    def log_half_width(self) -> Tensor:
        return self.log_width - math.log(2.0)

    def to_centered(self, x: Tensor) -> Tensor:
        return 2.0 * self.to_unit(x) - 1.0

    def from_centered(self, v: Tensor) -> Tensor:
        return self.from_unit(0.5 * (v + 1.0))

    def _latent(self, x: Tensor) -> Tensor:
        v = self.to_centered(self.check_target(x))
        if self.squash:
            return torch.atanh(v.clamp(-1.0 + SQUASH_EDGE, 1.0 - SQUASH_EDGE))
        return v

    def log_prob_per_dim(self, x: Tensor) -> Tensor:
        z = self._latent(x)
        standard = (z - self.loc) / self.std
        log_p = -0.5 * standard.square() - self.log_std - 0.5 * math.log(2.0 * math.pi)
        if self.squash:
            log_p = log_p - _log_tanh_derivative(z)
        return log_p - self.log_half_width

    def cdf(self, x: Tensor) -> Tensor:
        return torch.special.ndtr((self._latent(x) - self.loc) / self.std)

    def icdf(self, q: Tensor) -> Tensor:
        z = self.loc + self.std * torch.special.ndtri(q.float())
        return self.from_centered(torch.tanh(z) if self.squash else z)

    def sample(
        self, temperature: float = 1.0, top_p: float | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Reparameterised sample (gradients flow to ``loc`` and ``log_std``); ``temperature`` scales the std."""
        check_sampling_controls(temperature, top_p)
        if top_p is not None:
            raise ValueError("top_p applies to binned and mixture heads; a Gaussian has no bins to filter")
        noise = torch.randn(self.loc.shape, device=self.loc.device, generator=generator)
        z = self.loc + temperature * self.std * noise
        return self.from_centered(torch.tanh(z) if self.squash else z)

    def mode(self) -> Tensor:
        """The mean of the latent Gaussian, squashed: the usual deterministic action of tanh policies."""
        return self.from_centered(torch.tanh(self.loc) if self.squash else self.loc)

    def peak(self, width: float = PEAK_WIDTH) -> Tensor:
        """The mode: a Gaussian has one peak at every resolution."""
        return self.mode()

    def _hermite_expectation(self, fn) -> Tensor:
        """``E_z[fn(z)]`` for the latent Gaussian by Gauss-Hermite quadrature."""
        nodes = torch.as_tensor(_HERMITE_NODES, dtype=torch.float32, device=self.loc.device)
        weights = torch.as_tensor(
            _HERMITE_WEIGHTS / math.sqrt(2.0 * math.pi), dtype=torch.float32, device=self.loc.device
        )
        z = self.loc.unsqueeze(-1) + self.std.unsqueeze(-1) * nodes
        return (fn(z) * weights).sum(-1)

    @property
    def mean(self) -> Tensor:
        if not self.squash:
            return self.from_centered(self.loc)
        return self.from_centered(self._hermite_expectation(torch.tanh))

    def entropy_per_dim(self) -> Tensor:
        gaussian = 0.5 * math.log(2.0 * math.pi * math.e) + self.log_std
        if self.squash:
            gaussian = gaussian + self._hermite_expectation(_log_tanh_derivative)
        return gaussian + self.log_half_width


def _log_tanh_derivative(z: Tensor) -> Tensor:
    """``log(1 - tanh(z)^2)`` computed without cancellation: ``2 (log 2 - z - softplus(-2 z))``."""
    return 2.0 * (math.log(2.0) - z - F.softplus(-2.0 * z))


class GaussianHead(Head):
    """Diagonal Gaussian head; its options are those of :class:`~rlgen.heads.config.GaussianHeadConfig`."""

    def __init__(self, in_features: int, dim: int, low: BoundLike, high: BoundLike, config: GaussianHeadConfig):
        super().__init__(in_features, dim, low, high, params_per_dim=2 if config.state_dependent_std else 1)
        self.squash = config.squash
        self.state_dependent_std = config.state_dependent_std
        self.env_units = config.env_units
        if not config.state_dependent_std:
            self.log_std = torch.nn.Parameter(torch.full((dim,), float(config.init_log_std)))

    def distribution(self, params: Tensor) -> DiagGaussian:
        if self.state_dependent_std:
            loc, log_std = params.unbind(-1)
        else:
            loc = params.squeeze(-1)
            log_std = self.log_std.expand_as(loc)
        if self.env_units:  # to the centred unit coordinate v = (x - centre) / half_width
            half_width = (self.high - self.low) / 2.0
            loc, log_std = loc / half_width, log_std - half_width.log()
        return DiagGaussian(loc, log_std, self.low, self.high, squash=self.squash)

    def spread_bias(self, scale: float) -> Tensor:
        """Mean at the box centre, standard deviation ``scale`` on the centred box (latent for a squashed head)."""
        if not self.state_dependent_std:
            return torch.zeros(self.dim, 1)
        return torch.stack([torch.zeros(self.dim), self._log_std_outputs(scale)], -1)

    @torch.no_grad()
    def spread_init(self, scale: float = 1.0) -> None:
        super().spread_init(scale)
        if not self.state_dependent_std:
            self.log_std.copy_(self._log_std_outputs(scale))

    def _log_std_outputs(self, scale: float) -> Tensor:
        """The log-std output giving standard deviation ``scale`` on the centred box."""
        log_std = torch.full((self.dim,), math.log(scale))
        if self.env_units:
            log_std = log_std + ((self.high - self.low) / 2.0).log().cpu()
        return log_std

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, squash={self.squash}, state_dependent_std={self.state_dependent_std}, "
                f"env_units={self.env_units}")  # fmt: skip
