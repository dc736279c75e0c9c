"""scripts/bench_stats.py: the seed statistics the benchmark tables report."""

from __future__ import annotations

import types

import numpy as np
import pytest
from helpers import import_script


@pytest.fixture(scope="module")
def stats() -> types.ModuleType:
    return import_script("bench_stats")


def test_iqm_drops_a_quarter_from_each_end(stats: types.ModuleType) -> None:
    assert stats.iqm([30.0, 100.0, 99.0, 98.0, 97.0, 1000.0, 96.0, 95.0]) == pytest.approx(np.mean([96, 97, 98, 99]))
    assert stats.iqm([5.0, 1.0, 3.0]) == pytest.approx(3.0)  # n < 4 keeps every value


def test_probability_of_improvement_counts_ties_half_and_is_complementary(stats: types.ModuleType) -> None:
    x, y = [1.0, 2.0, 3.0], [2.0, 2.0]
    assert stats.probability_of_improvement(x, y) == pytest.approx((0 + 0.5 * 2 + 2) / 6)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=7), rng.normal(size=5)
    assert stats.probability_of_improvement(a, b) + stats.probability_of_improvement(b, a) == pytest.approx(1.0)


def test_bootstrap_interval_brackets_the_statistic_and_shrinks_with_more_seeds(stats: types.ModuleType) -> None:
    rng = np.random.default_rng(1)
    few, many = rng.normal(size=8), rng.normal(size=128)
    low, high = stats.bootstrap_interval(np.mean, few, rng=rng, resamples=2000)
    assert low < few.mean() < high
    low_many, high_many = stats.bootstrap_interval(np.mean, many, rng=rng, resamples=2000)
    assert high_many - low_many < (high - low) / 2
    assert stats.bootstrap_interval(np.mean, [4.0, 4.0], rng=rng, resamples=50) == (4.0, 4.0)
