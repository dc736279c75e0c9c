"""KL divergences between two rlgen head distributions of the same family (TRPO's trust region, in rlgen.sb3
and in GAIL's policy step), in closed form, so no estimator is needed:

- **Piecewise-uniform, fixed bins** (uniform, quantile): both densities are constant on every segment of the
  merged set of bin edges, so ``KL(p || q) = sum_s len_s p_s (log p_s - log q_s)`` over those segments, exactly
  (:func:`piecewise_uniform_kl`, which also takes bins that differ).
- **Piecewise-uniform, predicted bins** (AdaCat): the exact KL has a kink at p = q in the edges (moving an edge
  by eps changes it by O(|eps|), as the densities on both sides of an edge differ), which a trust region's
  second-order model cannot use (zero-gradient and positive-curvature assumptions fail). :func:`box_kl` takes
  instead the KL of the actions quantised to a fixed grid of :data:`KL_GRID_CELLS` cells of the box
  (:func:`quantised_kl`): a KL between categoricals whose cell masses are smooth in the masses and the edges,
  so zero gradient and a positive semi-definite Hessian (the Fisher of the cell masses) at p = q; it is at
  most the exact KL and tends to it as the grid gets finer.
- **DLML**: both are pmfs over the same C levels, so the KL is the finite sum over levels.
- **Gaussian**: KL is invariant under the shared bijection (affine map to the box, then tanh when squashed), so
  it equals the closed-form KL between the latent diagonal Gaussians.

All results are per batch element, summed over the D independent dimensions (shape ``batch_shape``).

A trust-region step differentiates the KL twice, and only at p = q (its Fisher-vector products).
:func:`kl_quadratic_model` gives those derivatives at the cost of the network rather than of the head: for DLML,
whose exact KL sums over all C levels of all K components, the double backward pass over that table is what
made a TRPO update 60-70x slower than a Gaussian policy's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from rlgen.heads.base import BoxDistribution
from rlgen.heads.dlml import DiscretizedLogisticMixture
from rlgen.heads.gaussian import DiagGaussian
from rlgen.heads.piecewise import PiecewiseUniform


def box_kl(p: BoxDistribution, q: BoxDistribution) -> Tensor:
    """``KL(p || q)`` for two distributions of the same rlgen family, shape ``batch_shape`` (exact, except for
    predicted bins: see the module's docstring).

    :param p: the distribution the expectation is taken under.
    :param q: the reference distribution.
    :raises TypeError: for different families or a family without a KL here.
    :raises ValueError: for incompatible boxes, level counts or squashing.
    """
    _check_comparable(p, q)
    kl = _KL_BY_FAMILY.get(type(p))
    if kl is None:
        raise TypeError(f"no KL divergence for {type(p).__name__}; known: {sorted(c.__name__ for c in _KL_BY_FAMILY)}")
    return kl(p, q)


def _check_comparable(p: BoxDistribution, q: BoxDistribution) -> None:
    """Raise unless ``p`` and ``q`` are of one family on one box."""
    if type(p) is not type(q):
        raise TypeError(f"KL needs two distributions of one family, got {type(p).__name__} and {type(q).__name__}")
    if not (torch.equal(p.low, q.low) and torch.equal(p.high, q.high)):
        raise ValueError("KL needs both distributions on the same box (low/high differ)")


#: cells of the grid on which :func:`box_kl` compares two piecewise-uniform distributions with predicted edges.
KL_GRID_CELLS = 512


def piecewise_kl(p: PiecewiseUniform, q: PiecewiseUniform) -> Tensor:
    """:func:`quantised_kl` if either distribution predicts its edges (AdaCat), else :func:`piecewise_uniform_kl`."""
    if p.adaptive_edges or q.adaptive_edges:
        return quantised_kl(p, q)
    return piecewise_uniform_kl(p, q)


def quantised_kl(p: PiecewiseUniform, q: PiecewiseUniform, cells: int = KL_GRID_CELLS) -> Tensor:
    """KL between the distributions of the target rounded to ``cells`` equal cells of the box: smooth in the
    masses and the edges of both, at most the exact KL."""
    batch = torch.broadcast_shapes(p.log_masses.shape[:-1], q.log_masses.shape[:-1])
    grid = torch.linspace(0.0, 1.0, cells + 1, device=p.log_masses.device)
    log_p, log_q = p.log_cell_masses(grid, batch), q.log_cell_masses(grid, batch)
    return (log_p.exp() * (log_p - log_q)).sum((-1, -2))


def piecewise_uniform_kl(p: PiecewiseUniform, q: PiecewiseUniform) -> Tensor:
    """Exact KL between piecewise-uniform densities by integrating over the merged bin edges."""
    batch = torch.broadcast_shapes(p.log_masses.shape[:-1], q.log_masses.shape[:-1])
    edges = torch.cat([p.edges.expand(*batch, -1), q.edges.expand(*batch, -1)], -1).sort(-1).values
    lengths = edges[..., 1:] - edges[..., :-1]
    midpoints = 0.5 * (edges[..., 1:] + edges[..., :-1])
    log_p = _unit_log_density(p, midpoints, batch)
    log_q = _unit_log_density(q, midpoints, batch)
    # Empty segments (shared edges) and bins without mass add nothing; masking first keeps 0 * inf out.
    active = (lengths > 0) & (log_p > -torch.inf)
    terms = lengths * log_p.exp() * (log_p - log_q)
    return torch.where(active, terms, torch.zeros_like(terms)).sum((-1, -2))


def _unit_log_density(dist: PiecewiseUniform, u: Tensor, batch: torch.Size) -> Tensor:
    """Log-density on the unit interval at points ``u`` of shape ``batch + (S,)``; same bin rule as
    :meth:`PiecewiseUniform.bin_index` (a point on an inner edge belongs to the bin on its right)."""
    inner_edges = dist.edges[..., 1:-1].expand(*batch, -1).contiguous()
    index = torch.searchsorted(inner_edges, u.contiguous(), right=True)
    table = (dist.log_masses - dist.log_widths).expand(*batch, -1)
    return table.gather(-1, index)


def kl_quadratic_model(p: BoxDistribution, q: BoxDistribution) -> Tensor:
    """The second-order model of ``KL(p || q)`` around ``q = p``, shape ``batch_shape``.

    For a family with an output Fisher (DLML): ``0.5 d' F d`` per dimension, with ``d`` the difference of the
    two distributions' coordinates and ``F`` the Fisher information of ``p`` in them, held constant. At ``q = p``
    it is zero, its gradient is zero and its Hessian in any parameters the coordinates depend on is the KL's
    (``J' F J``, the Gauss-Newton form of the Fisher), so a trust-region solver may take its Fisher-vector
    products from it; away from ``q = p`` it is only a model, so the trust region's KL check uses
    :func:`box_kl`. Other families return their exact KL, already cheap to differentiate twice.
    """
    if not isinstance(p, DiscretizedLogisticMixture):
        return box_kl(p, q)
    _check_comparable(p, q)
    _check_same_levels(p, q)  # type: ignore[arg-type]  # q is p's family: checked just above
    difference = (q.coordinates - p.coordinates).unsqueeze(-1)
    quadratic = difference.transpose(-1, -2) @ p.fisher_information() @ difference
    return 0.5 * quadratic.squeeze(-1).squeeze(-1).sum(-1)


def dlml_kl(p: DiscretizedLogisticMixture, q: DiscretizedLogisticMixture) -> Tensor:
    """Exact KL between two DLMLs over their shared C levels."""
    _check_same_levels(p, q)
    log_p, log_q = p.level_log_probs(), q.level_log_probs()
    return (log_p.exp() * (log_p - log_q)).sum((-1, -2))


def _check_same_levels(p: DiscretizedLogisticMixture, q: DiscretizedLogisticMixture) -> None:
    if p.num_classes != q.num_classes:
        raise ValueError(f"KL needs the same number of levels, got {p.num_classes} and {q.num_classes}")


def gaussian_kl(p: DiagGaussian, q: DiagGaussian) -> Tensor:
    """Closed-form KL between the latent diagonal Gaussians (equal to the KL on the box for either squashing)."""
    if p.squash != q.squash:
        raise ValueError("KL needs both Gaussians squashed or both unsquashed")
    variance_ratio = (2.0 * (p.log_std - q.log_std)).exp()
    mean_term = ((p.loc - q.loc) / q.std).square()
    return 0.5 * (variance_ratio + mean_term - 1.0 - 2.0 * (p.log_std - q.log_std)).sum(-1)


_KL_BY_FAMILY: dict[type, Callable[..., Tensor]] = {
    PiecewiseUniform: piecewise_kl,
    DiscretizedLogisticMixture: dlml_kl,
    DiagGaussian: gaussian_kl,
}
