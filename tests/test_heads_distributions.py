"""Mathematical properties of every head's distribution: normalisation, CDFs, sampling, smoothing, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from torch import nn

from rlgen.heads import (
    DiagGaussian,
    DiscretizedLogisticMixture,
    PiecewiseUniform,
    box_kl,
    kl_quadratic_model,
    make_head,
)

LOW, HIGH = torch.tensor([-2.0]), torch.tensor([3.0])


def random_adacat(batch: tuple[int, ...] = (), bins: int = 12, scale: float = 2.0, seed: int = 0) -> PiecewiseUniform:
    g = torch.Generator().manual_seed(seed)
    return PiecewiseUniform.from_adacat_logits(
        scale * torch.randn(*batch, 1, bins, generator=g), scale * torch.randn(*batch, 1, bins, generator=g), LOW, HIGH
    )


def random_uniform_bins(bins: int = 12, seed: int = 0) -> PiecewiseUniform:
    g = torch.Generator().manual_seed(seed)
    edges = torch.linspace(0, 1, bins + 1)
    return PiecewiseUniform.from_logits(2 * torch.randn(1, bins, generator=g), edges, LOW, HIGH)


def random_gaussian(squash: bool, seed: int = 0) -> DiagGaussian:
    g = torch.Generator().manual_seed(seed)
    return DiagGaussian(0.5 * torch.randn(1, generator=g), torch.tensor([-0.7]), LOW, HIGH, squash=squash)


def random_dlml(num_classes: int = 64, components: int = 4, seed: int = 0) -> DiscretizedLogisticMixture:
    g = torch.Generator().manual_seed(seed)
    logits, means = torch.randn(1, components, generator=g), 0.8 * torch.randn(1, components, generator=g)
    log_scales = torch.rand(1, components, generator=g) * 2.0 - 3.5
    return DiscretizedLogisticMixture(logits, means, log_scales, LOW, HIGH, num_classes)


CONTINUOUS = {
    "adacat": lambda: random_adacat(),
    "uniform": lambda: random_uniform_bins(),
    "gaussian_squashed": lambda: random_gaussian(True),
}


@pytest.mark.parametrize("name", sorted(CONTINUOUS))
def test_density_integrates_to_one_over_the_box(name: str) -> None:
    dist = CONTINUOUS[name]()
    # Midpoint rule on a fine grid: exact up to the few cells that straddle bin edges.
    n = 400_000
    width = (HIGH - LOW).item() / n
    x = LOW + width * (torch.arange(n, dtype=torch.float64) + 0.5).float().unsqueeze(-1)
    total = dist.log_prob(x).double().exp().sum().item() * width
    assert total == pytest.approx(1.0, abs=2e-3)


def test_unsquashed_gaussian_integrates_to_one_over_the_real_line() -> None:
    dist = random_gaussian(False)
    x = torch.linspace(-30.0, 30.0, 600_001).unsqueeze(-1)
    total = torch.trapezoid(dist.log_prob(x).double().exp(), x.squeeze(-1).double()).item()
    assert total == pytest.approx(1.0, abs=1e-5)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), bins=st.integers(2, 40), scale=st.floats(0.1, 6.0))
def test_adacat_cdf_and_icdf_invert_each_other(seed: int, bins: int, scale: float) -> None:
    dist = random_adacat(batch=(16,), bins=bins, scale=scale, seed=seed)
    q = torch.rand(16, 1, generator=torch.Generator().manual_seed(seed))
    x_of_q = dist.icdf(q)
    # float32 resolution of x times the local density bounds how well q can be recovered; bins narrower than
    # float32 can resolve on the unit interval are excluded.
    # The density is that of the bin q falls in: x_of_q may round onto the bin's edge, where log_prob reads
    # the neighbour's density.
    bin_of_q = (q.unsqueeze(-1) >= dist.masses.cumsum(-1)[..., :-1]).sum(-1).unsqueeze(-1)
    width_of_q = dist.widths.gather(-1, bin_of_q).squeeze(-1)
    resolvable = width_of_q > 1e-5
    density = dist.masses.gather(-1, bin_of_q).squeeze(-1) / (width_of_q * (HIGH - LOW))
    tolerance = 1e-5 + density * 2e-6 * (x_of_q.abs() + 1)
    assert ((dist.cdf(x_of_q) - q).abs() <= tolerance)[resolvable].all()
    x = LOW + (HIGH - LOW) * torch.rand(16, 1, generator=torch.Generator().manual_seed(seed + 1))
    # icdf(cdf(x)) recovers x wherever x lies in a bin of non-negligible mass.
    x_back = dist.icdf(dist.cdf(x))
    density = dist.log_prob(x).exp()
    ok = density > 1e-3
    assert torch.allclose(x_back[ok], x[ok], atol=1e-3)


@pytest.mark.parametrize("squash", [False, True])
def test_gaussian_cdf_and_icdf_invert_each_other(squash: bool) -> None:
    dist = DiagGaussian(torch.randn(32, 2), torch.randn(32, 2).clamp(-1.5, 0.5), LOW.repeat(2), HIGH.repeat(2), squash)
    q = torch.rand(32, 2).clamp(0.01, 0.99)
    assert torch.allclose(dist.cdf(dist.icdf(q)), q, atol=1e-4)


def repeat(dist, n: int):
    """The same distribution n times along a new leading batch axis (for batched sampling tests)."""
    if isinstance(dist, PiecewiseUniform):
        k = dist.num_bins
        return PiecewiseUniform(dist.log_masses.expand(n, 1, k), dist.edges, dist.log_widths, dist.low, dist.high)
    if isinstance(dist, DiagGaussian):
        return DiagGaussian(dist.loc.expand(n, 1), dist.log_std.expand(n, 1), dist.low, dist.high, dist.squash)
    return DiscretizedLogisticMixture(
        dist.logits.expand(n, 1, -1),
        dist.means.expand(n, 1, -1),
        dist.log_scales.expand(n, 1, -1),
        dist.low,
        dist.high,
        dist.num_classes,
    )


def cdf_of(dist):
    return lambda v: dist.cdf(torch.as_tensor(v, dtype=torch.float32).reshape(-1, 1)).squeeze(-1).double().numpy()


@pytest.mark.parametrize("name", sorted(CONTINUOUS))
def test_samples_follow_the_density(name: str) -> None:
    dist = CONTINUOUS[name]()
    samples = repeat(dist, 50_000).sample(generator=torch.Generator().manual_seed(1)).squeeze(-1)
    result = stats.kstest(samples.numpy(), cdf_of(dist))
    assert result.pvalue > 1e-3, result


def logistic_mixture_level_masses_float64(dist: DiscretizedLogisticMixture) -> np.ndarray:
    """Independent oracle: level masses from the logistic mixture CDF in float64 (scipy), shape (C,)."""
    c = dist.num_classes
    levels = -1.0 + 2.0 * np.arange(c) / (c - 1)
    upper = np.append(levels[:-1] + 1.0 / (c - 1), np.inf)
    lower = np.insert(levels[1:] - 1.0 / (c - 1), 0, -np.inf)
    weights = torch.softmax(dist.logits.double(), -1).numpy()[0]
    means, scales = dist.means.double().numpy()[0], dist.log_scales.double().exp().numpy()[0]
    masses = np.zeros(c)
    for w, m, s in zip(weights, means, scales, strict=True):
        masses += w * (stats.logistic.cdf(upper, m, s) - stats.logistic.cdf(lower, m, s))
    return masses


def test_dlml_level_masses_sum_to_one_and_match_the_float64_oracle() -> None:
    dist = random_dlml(num_classes=64)
    masses = dist.level_log_probs().double().exp()[0].numpy()
    oracle = logistic_mixture_level_masses_float64(dist)
    assert masses.sum() == pytest.approx(1.0, abs=1e-5)
    # Components whose own mass is below 1e-5 use the documented fallback approximation, so levels where
    # such components contribute are matched more loosely.
    big, large = oracle > 1e-5, oracle > 1e-2
    np.testing.assert_allclose(np.log(masses[big]), np.log(oracle[big]), atol=1e-3)
    np.testing.assert_allclose(np.log(masses[large]), np.log(oracle[large]), atol=2e-5)


def test_dlml_log_prob_is_the_log_mass_of_the_rounded_level() -> None:
    dist = random_dlml(num_classes=32)
    level_values = dist.level_values()[0]
    offsets = (torch.rand(32) - 0.5) * 0.9 * (HIGH - LOW) / 31  # stay inside each level's rounding cell
    x = (level_values + offsets).clamp(LOW, HIGH).unsqueeze(-1)
    assert torch.allclose(dist.log_prob(x), dist.level_log_probs()[0], atol=1e-6)


def test_dlml_tiny_mass_fallback_uses_the_density_at_the_level_centre() -> None:
    # A very narrow component far from the level: the regular branch would be below 1e-5.
    dist = DiscretizedLogisticMixture(
        torch.zeros(1, 1),
        torch.tensor([[0.9]]),
        torch.tensor([[-6.0]]),
        torch.tensor([-1.0]),
        torch.tensor([1.0]),
        num_classes=256,
    )
    x = torch.tensor([[0.0]])
    level_value = dist.level_values()[0, dist.level_of(x).item()].item()
    expected = stats.logistic.logpdf(level_value, 0.9, math.exp(-6.0)) - math.log(255 / 2)
    assert dist.log_prob(x).item() == pytest.approx(expected, rel=1e-4)


def test_dlml_fisher_information_is_the_hessian_of_the_kl_at_equal_distributions() -> None:
    # Components of every kind: wide ones whose tails fill the edge levels, and one so narrow and far from
    # most levels that their masses take the tiny-mass fallback.
    logits = torch.tensor([[[0.3, -0.5, 1.0]], [[0.0, 0.0, 0.0]]])
    means = torch.tensor([[[-0.95, 0.1, 0.6]], [[0.9, -0.2, -1.0]]])
    log_scales = torch.tensor([[[-1.0, 0.5, -6.5]], [[-3.0, -2.0, 0.0]]])
    p = DiscretizedLogisticMixture(logits, means, log_scales, LOW, HIGH, num_classes=24)

    def kl_to(coordinates: torch.Tensor) -> torch.Tensor:
        q = DiscretizedLogisticMixture(*coordinates.split(3, -1), LOW, HIGH, num_classes=24)
        return box_kl(p, q).sum()

    hessian = torch.autograd.functional.hessian(kl_to, p.coordinates)
    fisher = p.fisher_information()
    assert fisher.shape == (2, 1, 9, 9) and not fisher.requires_grad
    for n in range(2):
        torch.testing.assert_close(fisher[n, 0], hessian[n, 0, :, n, 0, :], atol=1e-4, rtol=1e-4)
    assert torch.linalg.eigvalsh(fisher).min() > -1e-5  # a covariance of scores


@pytest.mark.parametrize("kind", ["dlml", "gaussian", "adacat"])
def test_kl_quadratic_model_gives_the_exact_kls_fisher_vector_products(kind: str) -> None:
    # What TRPO takes from it: zero value and gradient at the old policy, and the same Hessian-vector products
    # in the network's parameters as the exact KL there.
    torch.manual_seed(0)
    options = {"dlml": {"num_mixtures": 3, "num_classes": 32}, "adacat": {"num_bins": 6, "cells": 6}}.get(kind, {})
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), make_head(kind, 8, 2, LOW.expand(2), HIGH.expand(2), **options))
    params = list(net.parameters())
    x = torch.randn(16, 4)
    with torch.no_grad():
        old = net(x)
    vector = [torch.randn_like(p) for p in params]

    def fisher_vector(kl: torch.Tensor) -> list[torch.Tensor]:
        gradient = torch.autograd.grad(kl, params, create_graph=True)
        assert max(g.abs().max().item() for g in gradient) < 1e-5
        return torch.autograd.grad(sum((g * v).sum() for g, v in zip(gradient, vector, strict=True)), params)

    model = kl_quadratic_model(old, net(x)).mean()
    assert model.item() == pytest.approx(0.0, abs=1e-6)
    for from_model, exact in zip(fisher_vector(model), fisher_vector(box_kl(old, net(x)).mean()), strict=True):
        torch.testing.assert_close(from_model, exact, atol=1e-5, rtol=1e-3)


def test_kl_quadratic_model_refuses_two_families_or_level_counts() -> None:
    dlml = random_dlml(num_classes=16)
    with pytest.raises(TypeError, match="one family"):
        kl_quadratic_model(dlml, random_adacat())
    with pytest.raises(ValueError, match="same number of levels"):
        kl_quadratic_model(dlml, random_dlml(num_classes=32))


def test_dlml_samples_match_level_masses() -> None:
    dist = random_dlml(num_classes=16, seed=5)
    n = 40_000
    expanded = repeat(dist, n)
    counts = np.bincount(expanded.level_of(expanded.sample()).flatten().numpy(), minlength=16)
    expected = dist.level_log_probs().exp()[0].double().numpy() * n
    keep = expected > 5
    chi2 = stats.chisquare(counts[keep], expected[keep] * counts[keep].sum() / expected[keep].sum())
    assert chi2.pvalue > 1e-3, chi2


@pytest.mark.parametrize("kernel", ["uniform", "gaussian"])
def test_smoothed_likelihood_tends_to_log_prob_as_bandwidth_vanishes(kernel: str) -> None:
    dist = random_adacat(batch=(64,), seed=7)
    x = dist.sample()
    # Keep targets away from bin edges, where the limit is half of each neighbouring bin.
    edges = dist.from_unit(dist.edges[..., 1:-1])
    far = ((x.unsqueeze(-1) - edges).abs().min(-1).values > 1e-3).squeeze(-1)
    smoothed = dist.smoothed_log_prob(x, bandwidth=1e-6, kernel=kernel)
    assert torch.allclose(smoothed[far], dist.log_prob(x)[far], atol=1e-4)


@pytest.mark.parametrize("kernel", ["uniform", "gaussian"])
def test_smoothed_likelihood_equals_monte_carlo_expectation(kernel: str) -> None:
    dist = random_adacat(seed=11)
    bandwidth = 0.08
    for u in (0.02, 0.5, 0.97):  # near both truncated edges and in the middle
        x = dist.from_unit(torch.tensor([[u]]))
        n = 400_000
        g = torch.Generator().manual_seed(0)
        if kernel == "uniform":
            lo, hi = max(u - bandwidth / 2, 0.0), min(u + bandwidth / 2, 1.0)
            z = lo + (hi - lo) * torch.rand(n, generator=g)
        else:
            z = torch.from_numpy(
                stats.truncnorm.rvs(
                    (0 - u) / bandwidth, (1 - u) / bandwidth, loc=u, scale=bandwidth, size=n, random_state=0
                )
            ).float()
        monte_carlo = dist.log_prob(dist.from_unit(z.unsqueeze(-1))).mean().item()
        analytic = dist.smoothed_log_prob(x, bandwidth, kernel).item()
        assert analytic == pytest.approx(monte_carlo, abs=0.02)


def test_uniform_categorical_log_prob_is_cross_entropy_minus_log_bin_width() -> None:
    head = make_head("uniform", 8, 3, low=-1.0, high=torch.tensor([1.0, 3.0, 5.0]), num_bins=20)
    features = torch.randn(64, 8)
    x = head.low + (head.high - head.low) * torch.rand(64, 3)
    logits = head.proj(features).unflatten(-1, (3, 20))
    index = ((x - head.low) / (head.high - head.low) * 20).long().clamp(max=19)
    cross_entropy = torch.nn.functional.cross_entropy(logits.reshape(-1, 20), index.reshape(-1), reduction="none")
    bin_width = ((head.high - head.low) / 20).expand(64, 3).reshape(-1)
    expected = -cross_entropy - torch.log(bin_width)
    assert torch.allclose(head(features).log_prob_per_dim(x).reshape(-1), expected, atol=1e-5)


@pytest.mark.parametrize("kind", ["gaussian", "uniform", "quantile", "adacat", "dlml"])
@pytest.mark.parametrize("extreme", [1e4, -1e4])
def test_gradients_are_finite_at_box_edges_and_with_extreme_logits(kind: str, extreme: float) -> None:
    head = make_head(kind, 4, 2, low=-1.0, high=1.0)
    with torch.no_grad():
        head.proj.bias.fill_(extreme)
        head.proj.bias[::2] = -extreme
    features = torch.randn(6, 4, requires_grad=True)
    x = torch.tensor([[-1.0, 1.0], [1.0, -1.0], [0.0, 1.0], [-1.0, 0.0], [0.999999, -0.999999], [0.3, -0.2]])
    loss = head.loss(features, x)
    loss.backward()
    grads = [p.grad for p in head.parameters()] + [features.grad]
    assert torch.isfinite(loss)
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("kind", ["adacat", "uniform", "gaussian"])
def test_entropy_matches_monte_carlo(kind: str) -> None:
    dist = {"adacat": random_adacat, "uniform": random_uniform_bins, "gaussian": lambda: random_gaussian(True)}[kind]()
    samples = repeat(dist, 50_000).sample()
    assert dist.entropy().item() == pytest.approx(-dist.log_prob(samples).mean().item(), abs=0.03)


def test_dlml_entropy_is_the_entropy_over_levels() -> None:
    dist = random_dlml(num_classes=64)
    masses = logistic_mixture_level_masses_float64(dist)
    assert dist.entropy().item() == pytest.approx(-(masses * np.log(masses)).sum(), abs=1e-3)


@pytest.mark.parametrize("kind", ["adacat", "uniform", "gaussian_squashed", "dlml"])
def test_mean_matches_sample_mean(kind: str) -> None:
    dist = {**CONTINUOUS, "dlml": random_dlml}[kind]()
    samples = repeat(dist, 40_000).sample()
    if kind == "dlml":
        samples = dist.level_values()[0][dist.level_of(samples)]
    assert dist.mean.item() == pytest.approx(samples.mean().item(), abs=0.02)


def test_mode_is_the_highest_density_point() -> None:
    dist = random_adacat(seed=2)
    grid = torch.linspace(-2, 3, 20_001).unsqueeze(-1)
    best = grid[dist.log_prob(grid).argmax()]
    assert dist.log_prob(dist.mode()).item() == pytest.approx(dist.log_prob(best).item(), abs=1e-5)


def dlml_on_unit_box(logits: list[float], means: list[float], stds: list[float]) -> DiscretizedLogisticMixture:
    """A 1-D, 256-level DLML on [-1, 1] with components of the given logistic standard deviations."""
    log_scales = torch.tensor(stds).log() - math.log(math.pi / math.sqrt(3.0))
    one = torch.ones(1)
    return DiscretizedLogisticMixture(torch.tensor([logits]), torch.tensor([means]), log_scales[None], -one, one, 256)


def test_dlml_mode_is_the_most_probable_level() -> None:
    # Two narrow behaviours: the mode is the heavier one's action, not their average (BC's reason to take the mode).
    bimodal = dlml_on_unit_box([1.0, 0.0], [-0.6, 0.5], [0.05, 0.05])
    assert bimodal.mode().item() == pytest.approx(-0.6, abs=1 / 255)
    # A wide component: its edge levels hold the open tails (16% each, every inner level under 1%), so its most
    # probable level is a bound; the mean stays inside (what the SB3 policies act with).
    wide = dlml_on_unit_box([0.0], [0.1], [1.0])
    assert wide.mode().item() == 1.0 and abs(wide.mean.item()) < 0.5
    # The mode is a level, the one log_prob scores highest.
    dist = random_dlml()
    levels = dist.level_log_probs()
    assert (dist.level_values()[0] - dist.mode()).abs().min() < 1e-6
    assert torch.equal(dist.log_prob_per_dim(dist.mode()), levels.max(-1).values)


def test_peak_ignores_a_clipped_tail_at_a_bound_but_keeps_a_mode_there() -> None:
    # A behaviour around 0.25 whose samples were clipped at 1 now and then: the edge level holds its tail (3%, more
    # than any inner level), so the mode is the bound; the peak is the main mode.
    clipped = dlml_on_unit_box([3.0, 0.0], [0.25, 1.2], [0.4, 0.05])
    assert clipped.mode().item() == 1.0
    assert clipped.peak().item() == pytest.approx(0.25, abs=0.05)
    # A behaviour that acts at the bound most of the time keeps its peak there.
    saturated = dlml_on_unit_box([0.0, 2.0], [0.0, 1.5], [0.3, 0.05])
    assert saturated.peak().item() == pytest.approx(1.0, abs=0.02)
    # Two behaviours: the heavier one, not their average.
    bimodal = dlml_on_unit_box([1.0, 0.0], [-0.6, 0.5], [0.05, 0.05])
    assert bimodal.peak().item() == pytest.approx(-0.6, abs=0.02)


def test_peak_of_binned_heads_is_the_centre_of_mass_of_the_heaviest_window() -> None:
    # One thin, dense bin (highest density, 10% of the mass) against a wide bin holding 60%.
    edges = torch.tensor([0.0, 0.001, 0.4, 0.8, 1.0])
    masses = torch.tensor([[[0.1, 0.2, 0.6, 0.1]]])
    dist = PiecewiseUniform(masses.log(), edges, (edges[1:] - edges[:-1]).log(), LOW, HIGH)
    assert dist.mode().item() == pytest.approx(-2.0 + 5 * 0.0005, abs=1e-4)  # the thin bin's centre
    assert 0.4 <= dist.to_unit(dist.peak()).item() <= 0.8
    centres, cell_masses = dist.cell_masses()
    assert cell_masses.sum().item() == pytest.approx(1.0, abs=1e-5) and centres.shape[-1] == cell_masses.shape[-1]
    # A Gaussian has one peak: its mode.
    gaussian = random_gaussian(squash=True)
    assert torch.equal(gaussian.peak(), gaussian.mode())
    with pytest.raises(ValueError, match="peak width"):
        dist.peak(width=0.0)


def test_top_p_keeps_only_the_most_probable_bins() -> None:
    masses = torch.tensor([[[0.5, 0.05, 0.3, 0.15]]])
    dist = PiecewiseUniform(masses.log(), torch.linspace(0, 1, 5), torch.full((4,), 0.25).log(), LOW, HIGH)
    batch = PiecewiseUniform(
        masses.log().expand(5000, 1, 4), torch.linspace(0, 1, 5), torch.full((4,), 0.25).log(), LOW, HIGH
    )
    bins = batch.bin_index(batch.to_unit(batch.sample(top_p=0.75))).flatten()
    assert set(bins.tolist()) == {0, 2}  # 0.5 + 0.3 reach 0.75; the 0.15 and 0.05 bins are dropped
    assert set(batch.bin_index(batch.to_unit(batch.sample(top_p=0.0))).flatten().tolist()) == {0}
    assert dist.mode().item() == pytest.approx(LOW.item() + 0.125 * 5)


def test_top_p_ranked_by_density_keeps_the_densest_bins() -> None:
    """Ranked by density, the nucleus is a highest-density region: the wide bin holding the most mass is the
    least dense here and is the first to go (ranked by mass it would be kept first)."""
    masses, widths = torch.tensor([0.4, 0.35, 0.25]), torch.tensor([0.8, 0.12, 0.08])
    edges = torch.cat([torch.zeros(1), widths.cumsum(0)])
    batch = PiecewiseUniform(masses.log().expand(5000, 1, 3), edges, widths.log(), LOW, HIGH)
    kept = batch.bin_index(batch.to_unit(batch.sample(top_p=0.5, rank_by="density"))).flatten()
    assert set(kept.tolist()) == {1, 2}  # densities 0.5, 2.9, 3.1: the two dense bins reach 0.6 >= 0.5
    share = (kept == 1).float().mean().item()
    assert share == pytest.approx(0.35 / 0.6, abs=0.03)  # inside the nucleus, bins are drawn by mass
    by_mass = batch.bin_index(batch.to_unit(batch.sample(top_p=0.5))).flatten()
    assert set(by_mass.tolist()) == {0, 1}
    with pytest.raises(ValueError, match="rank_by"):
        batch.sample(rank_by="width")
    assert set(batch.bin_index(batch.to_unit(batch.sample(top_p=0.0, rank_by="density"))).flatten().tolist()) == {2}


def test_low_temperature_concentrates_on_the_most_probable_bin() -> None:
    dist = random_adacat(batch=(2000,), seed=4)
    top = dist.log_masses.argmax(-1)
    cold = dist.bin_index(dist.to_unit(dist.sample(temperature=1e-5, midpoint=True)))
    assert (cold == top).all()


def test_any_batch_shape() -> None:
    for kind in ("gaussian", "uniform", "quantile", "adacat", "dlml"):
        head = make_head(kind, 5, 3, low=0.0, high=1.0)
        dist = head(torch.randn(2, 7, 5))
        x = dist.sample()
        assert x.shape == (2, 7, 3) and dist.log_prob(x).shape == (2, 7) and dist.mode().shape == (2, 7, 3)
        assert dist.log_prob_per_dim(x).shape == (2, 7, 3)


def test_quantile_bins_hold_equal_shares_and_survive_save_load(tmp_path) -> None:
    data = torch.cat([torch.randn(5000, 2) * 0.1, torch.zeros(500, 2)]).clamp(-1, 1)  # repeated value at 0
    head = make_head("quantile", 4, 2, low=-1.0, high=1.0, num_bins=10)
    head.fit_bins(data)
    index = head(torch.zeros(1, 4)).bin_index((data + 1) / 2)
    counts = torch.stack([torch.bincount(index[:, d], minlength=10) for d in range(2)])
    assert counts.min() > 0 and (counts.float() / len(data)).max() < 0.25
    assert torch.isfinite(head(torch.randn(3, 4)).log_prob(data[:3])).all()
    torch.save(head.state_dict(), tmp_path / "head.pt")
    restored = make_head("quantile", 4, 2, low=-1.0, high=1.0, num_bins=10)
    restored.load_state_dict(torch.load(tmp_path / "head.pt"))
    assert torch.equal(restored.edges, head.edges)


def test_adacat_fit_bins_starts_at_the_data_marginal() -> None:
    def initial(data: torch.Tensor) -> PiecewiseUniform:
        head = make_head("adacat", 4, 2, low=-1.0, high=1.0, num_bins=10)
        head.fit_bins(data)
        nn.init.zeros_(head.proj.weight)  # leaves the biases: the initial bins
        return head(torch.zeros(1, 4))

    # continuous data: the quantile categorical (equal masses, quantile widths; it mixes in 0.1% of a uniform grid)
    smooth = (torch.randn(5000, 2) * 0.3).clamp(-1, 1)
    quantile = make_head("quantile", 4, 2, low=-1.0, high=1.0, num_bins=10)
    quantile.fit_bins(smooth)
    nn.init.zeros_(quantile.proj.weight)
    nn.init.zeros_(quantile.proj.bias)
    features = torch.zeros(50, 4)
    expected = quantile(features).log_prob(smooth[:50])
    torch.testing.assert_close(initial(smooth).log_prob(smooth[:50]), expected, atol=0.01, rtol=0)
    # a point mass at the upper bound (a clipped action): one bin as wide as the smoothing kernel holds all of it
    clipped = torch.cat([smooth, torch.ones(2500, 2)])
    dist = initial(clipped)
    assert dist.num_bins == 10
    torch.testing.assert_close(dist.widths[0, :, -1], torch.full((2,), 1e-3))
    torch.testing.assert_close(dist.masses[0, :, -1], torch.full((2,), 1 / 3), atol=0.1, rtol=0)  # to a bin's share
    # elsewhere the cdf stays the data's within a bin's share
    grid = torch.linspace(-0.9, 0.9, 19)[:, None].expand(19, 2)
    empirical = (clipped[None] <= grid[:, None]).float().mean(1)
    assert (dist.cdf(grid) - empirical).abs().max() < 0.1


def test_adacat_width_grad_scale_scales_only_the_width_logits_gradient() -> None:
    torch.manual_seed(0)
    plain = make_head("adacat", 4, 2, low=-1.0, high=1.0, num_bins=6)
    scaled = make_head("adacat", 4, 2, low=-1.0, high=1.0, num_bins=6, width_grad_scale=0.25)
    scaled.load_state_dict(plain.state_dict())
    features, target = torch.randn(32, 4), torch.rand(32, 2) * 2 - 1
    for head in (plain, scaled):
        head.loss(features, target).backward()
    torch.testing.assert_close(scaled.loss(features, target), plain.loss(features, target))  # same distribution
    # proj rows are (dimension, [6 width logits, 6 mass logits])
    plain_grad, scaled_grad = (h.proj.weight.grad.view(2, 12, 4) for h in (plain, scaled))
    torch.testing.assert_close(scaled_grad[:, :6], 0.25 * plain_grad[:, :6])
    torch.testing.assert_close(scaled_grad[:, 6:], plain_grad[:, 6:])
    with pytest.raises(ValueError, match="width_grad_scale"):
        make_head("adacat", 4, 2, low=-1.0, high=1.0, width_grad_scale=1.5)


def test_adacat_cells_make_the_log_prob_continuous_in_the_widths() -> None:
    # Two bins meeting at 0.5 with masses 0.8 and 0.2; the action sits just right of the edge, and a small change of
    # the width logits moves the edge 0.002 to just past it: over cells of width 1/8 the log-prob moves by about 0.05.
    action = torch.tensor([[0.501]])
    mass_logits = torch.tensor([0.8, 0.2]).log()
    before, after = torch.tensor([0.0, 0.0]), torch.tensor([math.log(0.502 / 0.498), 0.0])
    for cells, largest_change in ((0, None), (8, 0.1)):
        head = make_head("adacat", 4, 1, low=0.0, high=1.0, num_bins=2, cells=cells)
        dists = [head.distribution(torch.cat([widths, mass_logits])[None, None]) for widths in (before, after)]
        log_probs = [dist.log_prob(action) for dist in dists]
        change = (log_probs[1] - log_probs[0]).abs().item()
        if largest_change is None:  # AdaCat's own density jumps from 0.2 / 0.5 to 0.8 / 0.502
            assert change == pytest.approx(math.log((0.8 / 0.502) / (0.2 / 0.5)), rel=1e-4)
        else:
            assert change < largest_change
    for cells in (-1, 1):
        with pytest.raises(ValueError, match=f"cells must be 0 .* or at least 2, got {cells}"):
            make_head("adacat", 4, 1, low=0.0, high=1.0, cells=cells)


def test_adacat_cells_quantise_the_cdf_and_keep_a_smooth_exact_kl() -> None:
    torch.manual_seed(0)
    plain = make_head("adacat", 4, 2, low=-1.0, high=1.0, num_bins=6)
    quantised = make_head("adacat", 4, 2, low=-1.0, high=1.0, num_bins=6, cells=16)
    quantised.load_state_dict(plain.state_dict())
    params = plain.proj(torch.randn(5, 4)).view(5, 2, 12).detach().requires_grad_()
    base, cells = plain.distribution(params), quantised.distribution(params)
    grid = torch.linspace(-1.0, 1.0, 17)[:, None, None].expand(17, 5, 2)
    # The cells' CDF equals AdaCat's on the cells' edges; inside a cell the mass is uniform.
    torch.testing.assert_close(cells.cdf(grid), base.cdf(grid), atol=1e-5, rtol=0)
    assert not cells.adaptive_edges and torch.equal(cells.edges[0, 0], torch.linspace(0.0, 1.0, 17))
    # Its KL (exact, over fixed cells) has zero gradient at p = q in the widths and masses, as a trust region needs.
    kl = box_kl(cells, quantised.distribution(params.detach())).sum()
    (grad,) = torch.autograd.grad(kl, params)
    assert kl.item() == pytest.approx(0.0, abs=1e-6) and grad.abs().max() < 1e-5
