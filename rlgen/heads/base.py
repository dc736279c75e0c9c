"""The interface every rlgen head and its distribution share.

A *head* is an ``nn.Module`` mapping features ``(..., F)`` to a *distribution* over a D-dimensional target
living in a box ``[low, high]`` (one interval per dimension). Distributions factorise over dimensions, so
``log_prob_per_dim`` returns ``(..., D)`` and ``log_prob`` sums it to ``(...)``.

Every distribution works internally in a unit coordinate of its own choosing and converts at the boundary;
log-densities are returned in the user's coordinates (the log-Jacobian of the affine map is included).
Parameters are upcast to float32 on construction, so a head run under bf16 autocast still computes
log-probabilities and samples in float32.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

BoundLike = float | Sequence[float] | Tensor

# Targets within this fraction of the box width outside [low, high] are clamped (float round-off from
# normalisation); anything further out is an error.
BOUND_TOLERANCE = 1e-5

HeadInit = Literal["auto", "spread", "torch"]
HEAD_INITS: tuple[str, ...] = ("auto", "spread", "torch")
#: gain of the orthogonal init of a spread head's output weights (Stable-Baselines3's for its action layer):
#: small, so every state starts near the spread distribution the bias sets.
SPREAD_WEIGHT_GAIN = 0.01


def as_bounds(low: BoundLike, high: BoundLike, dim: int) -> tuple[Tensor, Tensor]:
    """Broadcast ``low``/``high`` to float32 tensors of shape ``(dim,)`` and check they form a box."""
    low_t = torch.as_tensor(low, dtype=torch.float32).flatten()
    high_t = torch.as_tensor(high, dtype=torch.float32).flatten()
    if low_t.numel() == 1:
        low_t = low_t.expand(dim)
    if high_t.numel() == 1:
        high_t = high_t.expand(dim)
    if low_t.shape != (dim,) or high_t.shape != (dim,):
        raise ValueError(
            f"bounds must be scalars or have {dim} entries (one per target dimension), "
            f"got low with {low_t.numel()} and high with {high_t.numel()}"
        )
    if not (torch.isfinite(low_t).all() and torch.isfinite(high_t).all()):
        raise ValueError(f"bounds must be finite, got low={low_t.tolist()} high={high_t.tolist()}")
    if not (high_t > low_t).all():
        bad = int(torch.nonzero(high_t <= low_t)[0])
        raise ValueError(
            f"need low < high in every dimension; dimension {bad} has low={low_t[bad]}, high={high_t[bad]}"
        )
    return low_t.clone(), high_t.clone()


#: the deterministic actions every head offers (:meth:`BoxDistribution.point`)
PointAction = Literal["mode", "mean", "peak"]
POINT_ACTIONS: tuple[str, ...] = ("mode", "mean", "peak")
#: the window of :meth:`BoxDistribution.peak`, as a fraction of the box
PEAK_WIDTH = 0.1


class BoxDistribution(ABC):
    """A factorised distribution over targets in ``[low, high]^D``.

    :param low: lower bounds, shape ``(D,)``.
    :param high: upper bounds, shape ``(D,)``.
    :param validate_args: check targets for shape, NaN and range before scoring them (costs a device sync).
    """

    #: default for ``validate_args``; switch off globally for speed once inputs are known to be clean.
    default_validate_args: bool = True
    #: whether the support is exactly the box (targets outside it are errors) or extends beyond it.
    bounded_support: bool = True

    def __init__(self, low: Tensor, high: Tensor, validate_args: bool | None = None):
        self.low = low.float()
        self.high = high.float()
        self.validate_args = self.default_validate_args if validate_args is None else validate_args

    @property
    def dim(self) -> int:
        return self.low.shape[-1]

    @property
    @abstractmethod
    def batch_shape(self) -> torch.Size:
        """Leading shape of the parameters, excluding the target dimension D."""

    # ----- coordinates -----------------------------------------------------------------------------------------
    @property
    def log_width(self) -> Tensor:
        """``log(high - low)`` per dimension: the log-Jacobian between the unit interval and the box."""
        return torch.log(self.high - self.low)

    def to_unit(self, x: Tensor) -> Tensor:
        """Map targets from the box to ``[0, 1]`` per dimension."""
        return (x - self.low) / (self.high - self.low)

    def from_unit(self, u: Tensor) -> Tensor:
        """Map ``[0, 1]`` back to the box."""
        return self.low + u * (self.high - self.low)

    def check_target(self, x: Tensor, name: str = "target") -> Tensor:
        """Validate ``x`` (shape, NaN, range) and return it as float32, clamped into the box when the support is
        the box (``bounded_support``)."""
        x = x.float()
        if self.validate_args:
            if x.shape[-1:] != (self.dim,):
                raise ValueError(f"{name} must have last dimension {self.dim}, got shape {tuple(x.shape)}")
            if torch.isnan(x).any():
                raise ValueError(f"{name} contains NaN (first at index {_first_index(torch.isnan(x))})")
        if not self.bounded_support:
            return x
        if self.validate_args:
            slack = BOUND_TOLERANCE * (self.high - self.low)
            outside = (x < self.low - slack) | (x > self.high + slack)
            if outside.any():
                idx = _first_index(outside)
                raise ValueError(
                    f"{name} outside the head's box at index {idx}: value {x[idx].item():.6g} not in "
                    f"[{self.low[idx[-1]].item():.6g}, {self.high[idx[-1]].item():.6g}]"
                )
        return torch.minimum(torch.maximum(x, self.low), self.high)

    # ----- the shared interface ----------------------------------------------------------------------------------
    @abstractmethod
    def log_prob_per_dim(self, x: Tensor) -> Tensor:
        """Log-density (log-mass for discrete heads) of each dimension of ``x``, shape ``(..., D)``."""

    def log_prob(self, x: Tensor) -> Tensor:
        """Joint log-density of ``x``: the sum over the D independent dimensions, shape ``(...)``."""
        return self.log_prob_per_dim(x).sum(-1)

    @abstractmethod
    def sample(self, temperature: float = 1.0, top_p: float | None = None) -> Tensor:
        """Draw one target per batch element, shape ``(..., D)``.

        :param temperature: < 1 sharpens, > 1 flattens (each head documents what it scales).
        :param top_p: keep only the most probable bins/components whose mass adds up to at least ``top_p``
            (nucleus sampling; the Trajectory Transformer's ``cdf_act=0.6`` is ``top_p=0.4``). Binned heads
            can rank bins by density instead (``rank_by="density"``: a highest-density region).
        """

    @abstractmethod
    def mode(self) -> Tensor:
        """The most likely target, shape ``(..., D)``."""

    @property
    @abstractmethod
    def mean(self) -> Tensor:
        """The expected target, shape ``(..., D)``."""

    def cell_masses(self) -> tuple[Tensor, Tensor]:
        """The distribution on a grid of M equal cells of the unit interval: the cells' centres (broadcastable
        to the masses) and masses, shape ``(..., D, M)``; what :meth:`peak` scans."""
        raise NotImplementedError(f"{type(self).__name__} has no cell masses")

    def peak(self, width: float = PEAK_WIDTH) -> Tensor:
        """Per dimension, the centre of mass of the most probable window spanning ``width`` of the box, shape
        ``(..., D)``: a mode at that resolution.

        Unlike :meth:`mode` (the densest bin or most probable level), a thin bin or an edge level that holds
        the clipped tail of a behaviour (actions saturated at a bound now and then) does not win against a
        whole window of the main mode; an action that sits at a bound for most of the mass still does.
        """
        if not 0.0 < width <= 1.0:
            raise ValueError(f"peak width must be in (0, 1] (a fraction of the box), got {width}")
        centres, masses = self.cell_masses()
        cells = masses.shape[-1]
        span = min(cells, max(1, round(width * cells)))
        zero = torch.zeros_like(masses[..., :1])
        mass_sum = torch.cat([zero, masses.cumsum(-1)], -1)
        moment_sum = torch.cat([zero, (masses * centres).cumsum(-1)], -1)
        start = (mass_sum[..., span:] - mass_sum[..., :-span]).argmax(-1, keepdim=True)
        mass = mass_sum.gather(-1, start + span) - mass_sum.gather(-1, start)
        moment = moment_sum.gather(-1, start + span) - moment_sum.gather(-1, start)
        return self.from_unit((moment / mass.clamp(min=1e-30)).squeeze(-1).clamp(0.0, 1.0))

    def point(self, kind: PointAction, peak_width: float = PEAK_WIDTH) -> Tensor:
        """The deterministic action ``kind``: :meth:`mode`, :attr:`mean` or :meth:`peak` over windows spanning
        ``peak_width`` of the box (a Gaussian's are all its mean).

        The mode (the densest bin or most probable level) fails where behaviour actions were clipped at a bound
        now and then: the edge level or a thin edge bin holds that tail and wins, so the agent acts at the bound.
        The mean can average two modes into an action no behaviour took. The peak does neither, which is why BC,
        IQL and GAIL act with it by default (``benchmarks/point_actions.md`` compares the three).
        """
        if kind == "mode":
            return self.mode()
        if kind == "mean":
            return self.mean
        if kind == "peak":
            return self.peak(peak_width)
        raise ValueError(f"unknown deterministic action {kind!r}; choose one of {', '.join(POINT_ACTIONS)}")

    def entropy(self) -> Tensor:
        """Entropy of the joint distribution, shape ``(...)`` (sum of per-dimension entropies)."""
        return self.entropy_per_dim().sum(-1)

    def entropy_per_dim(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no entropy")


def _first_index(mask: Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in torch.nonzero(mask)[0])


def check_sampling_controls(temperature: float, top_p: float | None) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_p is not None and not 0.0 <= top_p <= 1.0:
        raise ValueError(f"top_p must be in [0, 1], got {top_p}")


def nucleus_filter(log_probs: Tensor, top_p: float | None, rank: Tensor | None = None) -> Tensor:
    """Set to -inf the entries of the last axis outside the nucleus: the smallest set of the highest-ranked
    entries whose total mass reaches ``top_p`` (always at least the highest-ranked one). Input and output are
    (unnormalised) log-probabilities.

    :param rank: the order in which entries join the nucleus, same shape as ``log_probs`` (default: their
        probability); ranked by density, a binned density's nucleus is a highest-density region.
    """
    if top_p is None or top_p >= 1.0:
        return log_probs
    if top_p <= 0.0:  # only the highest-ranked entry: no sort needed
        first = (log_probs if rank is None else rank).argmax(-1, keepdim=True)
        return torch.full_like(log_probs, -math.inf).scatter_(-1, first, log_probs.gather(-1, first))
    probs = torch.softmax(log_probs, dim=-1)
    order = (log_probs if rank is None else rank).argsort(dim=-1, descending=True)
    sorted_probs = probs.gather(-1, order)
    mass_before = sorted_probs.cumsum(-1) - sorted_probs
    drop_sorted = mass_before >= top_p
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return log_probs.masked_fill(drop, -math.inf)


def gumbel_argmax(log_probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Index sampled from the categorical with (unnormalised) ``log_probs`` over the last axis, by Gumbel-max."""
    uniform = torch.rand(log_probs.shape, device=log_probs.device, generator=generator)
    gumbel = -torch.log(-torch.log(uniform.clamp(1e-10, 1.0 - 1e-7)))
    return torch.argmax(log_probs + gumbel, dim=-1)


class Head(nn.Module, ABC):
    """Base class of all heads: a map from features to a :class:`BoxDistribution`.

    :param in_features: size F of the features' last axis.
    :param dim: number D of target dimensions.
    :param low: lower bound(s) of the target box.
    :param high: upper bound(s) of the target box.
    :param params_per_dim: number of network outputs per target dimension.
    """

    def __init__(self, in_features: int, dim: int, low: BoundLike, high: BoundLike, params_per_dim: int):
        super().__init__()
        if in_features < 1 or dim < 1:
            raise ValueError(f"in_features and dim must be positive, got {in_features} and {dim}")
        self.in_features = in_features
        self.dim = dim
        self.params_per_dim = params_per_dim
        low_t, high_t = as_bounds(low, high, dim)
        self.register_buffer("low", low_t)
        self.register_buffer("high", high_t)
        self.proj = nn.Linear(in_features, dim * self.params_per_dim)

    @abstractmethod
    def distribution(self, params: Tensor) -> BoxDistribution:
        """Build the distribution from raw parameters of shape ``(..., D, params_per_dim)``."""

    def forward(self, features: Tensor) -> BoxDistribution:
        if features.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expects features with last dimension {self.in_features}, "
                f"got shape {tuple(features.shape)}"
            )
        params = self.proj(features)
        return self.distribution(params.unflatten(-1, (self.dim, self.params_per_dim)))

    def loss(self, features: Tensor, target: Tensor) -> Tensor:
        """Training loss: mean negative log-likelihood of ``target`` (shape: the features' batch shape, then D)."""
        dist = self(features)
        expected = (*features.shape[:-1], self.dim)
        if tuple(target.shape) != expected:  # log_prob would broadcast a mismatched batch silently
            raise ValueError(
                f"{type(self).__name__}.loss: target must have shape {expected} (the features' batch shape, then "
                f"{self.dim}), got {tuple(target.shape)}"
            )
        return -self.training_log_prob(dist, target).mean()

    def fit_to_data(self, targets: Tensor) -> None:
        """Set what the head derives from its training targets ``(N, D)`` before training (a quantile head's
        bins); the default derives nothing."""

    def training_log_prob(self, dist: BoxDistribution, target: Tensor) -> Tensor:
        """The log-likelihood the loss maximises, shape ``batch_shape`` (heads with target smoothing override it)."""
        return dist.log_prob(target)

    @torch.no_grad()
    def spread_init(self, scale: float = 1.0) -> None:
        """Start every state at the head's spread distribution: centred in the box, wide, with little mass on
        its edges (:meth:`spread_bias`): orthogonal output weights of gain :data:`SPREAD_WEIGHT_GAIN`, the
        bias set to those outputs.

        :param scale: the spread's standard deviation per dimension on the centred box [-1, 1], for heads
            whose spread is a parameter.
        """
        nn.init.orthogonal_(self.proj.weight, gain=SPREAD_WEIGHT_GAIN)
        self.proj.bias.copy_(self.spread_bias(scale).flatten())

    def spread_bias(self, scale: float) -> Tensor:
        """The outputs ``(D, params_per_dim)`` of the spread distribution (default zeros); see :meth:`spread_init`."""
        return torch.zeros(self.dim, self.params_per_dim)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, dim={self.dim}"
