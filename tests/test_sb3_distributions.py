"""rlgen.sb3 distributions: agreement with rlgen.heads, exact KL divergences, the SB3/TRPO calling conventions."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import kl_divergence

from rlgen.heads import make_head
from rlgen.sb3 import HeadDistribution, box_kl, piecewise_uniform_kl, snap_to_level

LOW, HIGH = np.array([-2.0, 0.0, -1.0], dtype=np.float32), np.array([2.0, 1.0, 3.0], dtype=np.float32)
SPACE = spaces.Box(LOW, HIGH)
OPTIONS = {
    "dlml": {"num_mixtures": 3, "num_classes": 32},
    "adacat": {"num_bins": 8},
    "uniform": {"num_bins": 8},
    "gaussian": {},
}
KINDS = sorted(OPTIONS)


def make_pair(kind: str, batch: int = 5, seed: int = 0, scale: float = 1.0, repeats: int = 0):
    """The SB3 distribution and the rlgen distribution for the same random raw parameters.

    :param repeats: if > 0, the parameters are repeated along a new leading axis of this size, so one call to
        ``sample`` draws that many independent samples per batch element.
    """
    sb3_dist = HeadDistribution(kind, SPACE, exact_entropy=True, **OPTIONS[kind])
    head = sb3_dist.proba_distribution_net(latent_dim=4)
    generator = torch.Generator().manual_seed(seed)
    params = scale * torch.randn(batch, head.dim, head.params_per_dim, generator=generator)
    if repeats:
        params = params.expand(repeats, *params.shape)
    return sb3_dist.proba_distribution(head.distribution(params)), head.distribution(params)


@pytest.mark.parametrize("kind", KINDS)
def test_methods_agree_with_the_head(kind: str) -> None:
    sb3_dist, box = make_pair(kind)
    actions = box.sample()
    torch.testing.assert_close(sb3_dist.log_prob(actions), box.log_prob(actions))
    torch.testing.assert_close(sb3_dist.entropy(), box.entropy())
    # Deterministic: a DLML policy's mean (snapped to a level), an AdaCat policy's mean, the other heads' mode.
    if kind == "dlml":
        expected = snap_to_level(box, box.mean)
    else:
        expected = box.mean if kind == "adacat" else box.mode()
    torch.testing.assert_close(sb3_dist.mode(), expected)
    torch.testing.assert_close(sb3_dist.get_actions(deterministic=True), expected)
    sample = sb3_dist.sample()
    assert sample.shape == (5, 3) and sb3_dist.log_prob(sample).shape == (5,) and sb3_dist.entropy().shape == (5,)
    assert (sample >= torch.from_numpy(LOW)).all() and (sample <= torch.from_numpy(HIGH)).all()
    actions, log_prob = sb3_dist.log_prob_from_params(box)
    torch.testing.assert_close(log_prob, box.log_prob(actions))


def test_entropy_is_exact_by_default_except_for_dlml_which_leaves_sb3_its_estimate() -> None:
    for kind in KINDS:
        default = HeadDistribution(kind, SPACE, **OPTIONS[kind])
        head = default.proba_distribution_net(latent_dim=4)
        default.proba_distribution(head(torch.randn(2, 4)))
        assert (default.entropy() is None) == (kind == "dlml"), kind
    forced = HeadDistribution("dlml", SPACE, exact_entropy=True, **OPTIONS["dlml"])
    forced.proba_distribution(forced.proba_distribution_net(latent_dim=4)(torch.randn(2, 4)))
    assert forced.entropy().shape == (2,)


def test_dlml_acts_on_levels_so_log_prob_is_the_mass_of_the_action_taken() -> None:
    sb3_dist, box = make_pair("dlml", batch=200)
    sample = sb3_dist.sample()
    levels = box.level_values()
    on_level = (sample.unsqueeze(-1) - levels).abs().min(-1).values
    assert on_level.max() < 1e-5
    # Level frequencies over many draws match the pmf the log-probabilities come from.
    many, many_box = make_pair("dlml", batch=1, repeats=20000)
    index = many_box.level_of(many.sample())[:, 0]
    freq = torch.nn.functional.one_hot(index, 32).float().mean(0)
    pmf = many_box.level_log_probs()[0, 0].exp()
    assert (freq - pmf).abs().max() < 0.015


@pytest.mark.parametrize("kind", KINDS)
def test_kl_is_zero_for_identical_and_positive_for_different_params(kind: str) -> None:
    p, _ = make_pair(kind, seed=0)
    p_again, _ = make_pair(kind, seed=0)
    q, _ = make_pair(kind, seed=1)
    same = kl_divergence(p, p_again)
    assert same.shape == (5,)
    torch.testing.assert_close(same, torch.zeros(5), atol=1e-5, rtol=0)
    assert (kl_divergence(p, q) > 1e-3).all()


@pytest.mark.parametrize("kind", KINDS)
def test_kl_matches_a_monte_carlo_estimate(kind: str) -> None:
    p, _ = make_pair(kind, batch=2, seed=2, scale=0.7, repeats=20000)
    q, _ = make_pair(kind, batch=2, seed=3, scale=0.7, repeats=20000)
    draws = p.sample()  # (N, 2, 3)
    log_ratio = p.log_prob(draws) - q.log_prob(draws)
    estimate, stderr = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(draws.shape[0])
    exact = kl_divergence(p, q)[0]
    assert ((exact - estimate).abs() < 4 * stderr + 1e-3).all(), (exact, estimate, stderr)


def test_exact_piecewise_kl_with_different_bins_matches_fine_grid_integration() -> None:
    p, _ = make_pair("adacat", batch=3, seed=4)
    q, _ = make_pair("adacat", batch=3, seed=5)
    # Midpoint rule on a grid far finer than any bin: exact up to the few cells that straddle an edge.
    grid = torch.linspace(0, 1, 200_001)
    midpoints = (0.5 * (grid[1:] + grid[:-1])).view(-1, 1, 1)
    points = torch.from_numpy(LOW) + midpoints * torch.from_numpy(HIGH - LOW)
    log_p = p.distribution.box.log_prob_per_dim(points.expand(-1, 3, 3))
    log_q = q.distribution.box.log_prob_per_dim(points.expand(-1, 3, 3))
    widths = torch.from_numpy(HIGH - LOW) / 200_000
    numeric = (log_p.exp() * (log_p - log_q) * widths).sum((0, 2))
    exact = piecewise_uniform_kl(p.distribution.box, q.distribution.box)
    torch.testing.assert_close(exact, numeric, atol=2e-3, rtol=1e-3)
    # AdaCat's trust-region KL, over the actions quantised to a grid, is at most the exact one and close to it.
    quantised = kl_divergence(p, q)
    assert (quantised <= exact + 1e-4).all() and (quantised >= 0.97 * exact).all(), (quantised, exact)


def test_uniform_bins_kl_equals_categorical_kl() -> None:
    p, _ = make_pair("uniform", seed=6)
    q, _ = make_pair("uniform", seed=7)
    cat_p = torch.distributions.Categorical(logits=p.distribution.box.log_masses)
    cat_q = torch.distributions.Categorical(logits=q.distribution.box.log_masses)
    torch.testing.assert_close(kl_divergence(p, q), torch.distributions.kl_divergence(cat_p, cat_q).sum(-1))


def test_unsquashed_gaussian_kl_equals_torch_normal_kl() -> None:
    options = {"squash": False}
    head = make_head("gaussian", 4, 3, LOW, HIGH, **options)
    params_p, params_q = torch.randn(2, 5, 3, 2).unbind(0)
    p, q = head.distribution(params_p), head.distribution(params_q)
    normal = torch.distributions.kl_divergence(
        torch.distributions.Normal(p.loc, p.std), torch.distributions.Normal(q.loc, q.std)
    ).sum(-1)
    torch.testing.assert_close(box_kl(p, q), normal)


@pytest.mark.parametrize("kind", KINDS)
def test_kl_gradient_vanishes_at_identical_params_and_has_a_curvature(kind: str) -> None:
    # TRPO's Fisher-vector products differentiate KL(new || old) twice at new == old.
    sb3_dist = HeadDistribution(kind, SPACE, exact_entropy=True, **OPTIONS[kind])
    head = sb3_dist.proba_distribution_net(latent_dim=4)
    latent = torch.randn(6, 4)
    with torch.no_grad():
        old = copy.copy(sb3_dist.proba_distribution(head(latent)))
    new = sb3_dist.proba_distribution(head(latent))
    assert new.distribution is not old.distribution
    kl = kl_divergence(new, old).mean()
    (grad,) = torch.autograd.grad(kl, head.proj.weight, create_graph=True)
    assert grad.abs().max() < 1e-5, kind
    (curvature,) = torch.autograd.grad((grad * torch.randn_like(grad)).sum(), head.proj.weight)
    assert curvature.abs().max() > 0, kind


@pytest.mark.parametrize("kind", KINDS)
def test_kl_hessian_at_identical_params_is_positive_semidefinite(kind: str) -> None:
    # sb3-contrib's TRPO takes sqrt(s^T H s): a negative curvature there is a NaN step. AdaCat's exact KL has a
    # kink in its edges at p = q (negative curvature along about half the directions); the registered one not.
    sb3_dist = HeadDistribution(kind, SPACE, exact_entropy=True, **OPTIONS[kind])
    head = sb3_dist.proba_distribution_net(latent_dim=4)
    params = torch.randn(2, head.dim, head.params_per_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        old = copy.copy(sb3_dist.proba_distribution(head.distribution(params)))

    def kl(flat: torch.Tensor) -> torch.Tensor:
        return kl_divergence(sb3_dist.proba_distribution(head.distribution(flat.view_as(params))), old).sum()

    flat = params.flatten().requires_grad_(True)
    (grad,) = torch.autograd.grad(kl(flat), flat)
    assert grad.abs().max() < 1e-5, kind
    hessian = torch.autograd.functional.hessian(kl, params.flatten())
    eigenvalues = torch.linalg.eigvalsh(0.5 * (hessian + hessian.T))
    assert eigenvalues.min() > -1e-5 * eigenvalues.max().clamp(min=1.0), (kind, eigenvalues.min())
    assert eigenvalues.max() > 0, kind


def test_gauss_newton_kl_keeps_the_exact_value_and_trpo_fisher_vector_products() -> None:
    # DLML's default: TRPO's curvature from the KL's quadratic model, its line search from the exact value.
    assert HeadDistribution("dlml", SPACE).kl_derivatives == "gauss-newton"
    assert HeadDistribution("adacat", SPACE).kl_derivatives == "exact"
    latent = torch.randn(6, 4)
    fisher_vectors, values = {}, {}
    for mode in ("exact", "gauss-newton"):
        sb3_dist = HeadDistribution("dlml", SPACE, kl_derivatives=mode, **OPTIONS["dlml"])
        torch.manual_seed(1)
        head = sb3_dist.proba_distribution_net(latent_dim=4)
        with torch.no_grad():
            old = copy.copy(sb3_dist.proba_distribution(head(latent)))
            shifted = copy.copy(sb3_dist.proba_distribution(head(latent + 0.5)))
        values[mode] = kl_divergence(sb3_dist.proba_distribution(head(latent)), shifted)
        kl = kl_divergence(sb3_dist.proba_distribution(head(latent)), old).mean()
        (grad,) = torch.autograd.grad(kl, head.proj.weight, create_graph=True)
        direction = torch.randn(grad.shape, generator=torch.Generator().manual_seed(2))
        (fisher_vectors[mode],) = torch.autograd.grad((grad * direction).sum(), head.proj.weight)
    torch.testing.assert_close(values["gauss-newton"], values["exact"])
    torch.testing.assert_close(fisher_vectors["gauss-newton"], fisher_vectors["exact"], atol=1e-6, rtol=1e-4)
    with pytest.raises(ValueError, match="kl_derivatives must be one of"):
        HeadDistribution("dlml", SPACE, kl_derivatives="hessian")


def test_bad_inputs_get_clear_errors() -> None:
    with pytest.raises(ValueError, match="quantile"):
        HeadDistribution("quantile", SPACE)
    with pytest.raises(ValueError, match="Box"):
        HeadDistribution("dlml", spaces.Discrete(3))
    with pytest.raises(ValueError, match="finite action bounds"):
        HeadDistribution("dlml", spaces.Box(-np.inf, np.inf, (2,)))
    with pytest.raises(ValueError, match="unknown option 'num_mixtures'.* 'adacat' head; valid options: num_bins"):
        HeadDistribution("adacat", SPACE, num_mixtures=3)
    with pytest.raises(TypeError, match="one family"):
        box_kl(make_pair("dlml")[1], make_pair("adacat")[1])
