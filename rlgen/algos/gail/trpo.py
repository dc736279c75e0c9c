"""A trust-region policy step (TRPO, Schulman et al. 2015) for policies on any rlgen head.

Maximise the surrogate ``L(theta) = mean(pi_theta(a|s) / pi_old(a|s) * A)`` subject to
``mean_s KL(pi_old(.|s) || pi_theta(.|s)) <= max_kl``:

1. ``g = grad L`` at ``theta_old``;
2. solve ``F x = g`` by conjugate gradient, where ``F`` (the Fisher matrix, the Hessian of the mean KL at
   ``theta_old``) is only touched through Hessian-vector products of the KL's quadratic model
   (:func:`rlgen.heads.kl_quadratic_model`: the same Hessian at ``theta_old``, cheap for DLML), plus
   ``damping * x`` for stability;
3. scale ``x`` to the edge of the trust region of the quadratic KL model: ``beta = sqrt(2 max_kl / x'Fx)``;
4. backtrack ``theta_old + beta * ratio^k * x`` until the exact KL is within ``max_kl`` and the surrogate has
   improved; if no fraction qualifies the parameters stay at ``theta_old``.

The KL is the head family's (:func:`rlgen.heads.box_kl`: exact, or for AdaCat's predicted edges the KL of the
quantised actions, smooth in the edges), so the same step serves Gaussian, DLML and AdaCat policies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rlgen.heads import BoxDistribution, box_kl, kl_quadratic_model


@dataclass(frozen=True)
class TRPOSettings:
    """The trust region and how the step inside it is found.

    :param max_kl: bound on the mean KL between the old and the new policy over the batch's states.
    :param damping: added to the Fisher-vector product (``F + damping I``), regularising the CG solve.
    :param cg_iterations: conjugate-gradient iterations.
    :param backtrack_steps: step fractions tried in the line search (1, ratio, ratio^2, ...).
    :param backtrack_ratio: factor between successive fractions.
    """

    max_kl: float = 0.01
    damping: float = 0.1
    cg_iterations: int = 10
    backtrack_steps: int = 10
    backtrack_ratio: float = 0.5

    def __post_init__(self) -> None:
        if not self.max_kl > 0:
            raise ValueError(f"max_kl must be > 0, got {self.max_kl}")
        if self.damping < 0:
            raise ValueError(f"damping must be >= 0, got {self.damping}")
        if self.cg_iterations < 1 or self.backtrack_steps < 1:
            raise ValueError(f"cg_iterations and backtrack_steps must be >= 1, got {self.cg_iterations} and "
                             f"{self.backtrack_steps}")  # fmt: skip
        if not 0 < self.backtrack_ratio < 1:
            raise ValueError(f"backtrack_ratio must be in (0, 1), got {self.backtrack_ratio}")


@dataclass(frozen=True)
class StepResult:
    """What one TRPO step did.

    :param kl: mean KL(old || new) after the step (0 when it was rejected).
    :param improvement: surrogate gain of the accepted step (0 when rejected).
    :param expected_improvement: ``g . step`` of the full natural step: the linear model's predicted gain.
    :param step_fraction: fraction of the full natural step taken (0: every fraction was rejected).
    """

    kl: float
    improvement: float
    expected_improvement: float
    step_fraction: float


def conjugate_gradient(matvec: Callable[[Tensor], Tensor], b: Tensor, iterations: int,
                       tolerance: float = 1e-10) -> Tensor:  # fmt: skip
    """Approximate solution of ``A x = b`` for a symmetric positive-definite ``A`` given as ``matvec``.

    Exact after ``len(b)`` iterations in exact arithmetic; stops early once ``|r|^2 < tolerance``.
    """
    x = torch.zeros_like(b)
    residual = b.clone()
    direction = b.clone()
    rr = residual @ residual
    for _ in range(iterations):
        if rr < tolerance:
            break
        a_dir = matvec(direction)
        alpha = rr / (direction @ a_dir)
        x += alpha * direction
        residual -= alpha * a_dir
        rr_next = residual @ residual
        direction = residual + (rr_next / rr) * direction
        rr = rr_next
    return x


def _flat(tensors: Sequence[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


@torch.no_grad()
def _assign(params: Sequence[nn.Parameter], flat: Tensor) -> None:
    offset = 0
    for p in params:
        p.copy_(flat[offset : offset + p.numel()].view_as(p))
        offset += p.numel()


def trpo_step(policy: nn.Module, observations: Tensor, actions: Tensor, advantages: Tensor,
              settings: TRPOSettings) -> StepResult:  # fmt: skip
    """Update ``policy``'s parameters in place by one TRPO step (module docstring).

    :param policy: maps observations ``(n, obs_dim)`` to a :class:`~rlgen.heads.BoxDistribution`.
    :param observations: the batch's states, ``(n, obs_dim)``.
    :param actions: the actions taken, as the head sampled them, ``(n, act_dim)``.
    :param advantages: advantage of each action, ``(n,)``.
    """
    if not (len(observations) == len(actions) == len(advantages)):
        raise ValueError(f"observations, actions and advantages need one row per sample, got "
                         f"{len(observations)}, {len(actions)} and {len(advantages)}")  # fmt: skip
    params = [p for p in policy.parameters() if p.requires_grad]
    with torch.no_grad():
        old = policy(observations)
        old_log_prob = old.log_prob(actions)

    def surrogate(dist: BoxDistribution) -> Tensor:
        return ((dist.log_prob(actions) - old_log_prob).exp() * advantages).mean()

    def mean_kl(dist: BoxDistribution) -> Tensor:
        return box_kl(old, dist).mean()

    current = policy(observations)
    gradient = _flat(torch.autograd.grad(surrogate(current), params, retain_graph=True))
    kl_gradient = _flat(torch.autograd.grad(kl_quadratic_model(old, current).mean(), params, create_graph=True))

    def fisher_vector(v: Tensor) -> Tensor:
        hvp = torch.autograd.grad(kl_gradient @ v, params, retain_graph=True)
        return _flat(hvp) + settings.damping * v

    direction = conjugate_gradient(fisher_vector, gradient, settings.cg_iterations)
    curvature = direction @ fisher_vector(direction)
    if not (torch.isfinite(curvature) and curvature > 0):
        return StepResult(0.0, 0.0, 0.0, 0.0)  # a zero or degenerate gradient: nothing to step along
    full_step = direction * torch.sqrt(2.0 * settings.max_kl / curvature)
    expected = float(gradient @ full_step)
    start = _flat([p.detach() for p in params]).clone()
    with torch.no_grad():
        baseline = float(surrogate(old))
        fraction = 1.0
        for _ in range(settings.backtrack_steps):
            _assign(params, start + fraction * full_step)
            new = policy(observations)
            kl, gain = float(mean_kl(new)), float(surrogate(new)) - baseline
            if kl <= settings.max_kl and gain > 0:
                return StepResult(kl, gain, expected, fraction)
            fraction *= settings.backtrack_ratio
        _assign(params, start)
    return StepResult(0.0, 0.0, expected, 0.0)
