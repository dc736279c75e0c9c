"""Statistics over training seeds shared by the benchmark scripts.

Besides the mean and its standard error, the robust aggregates that Agarwal et al. (2021, "Deep Reinforcement
Learning at the Edge of the Statistical Precipice") recommend for few-seed RL comparisons: the interquartile mean
(the mean of the middle half of the scores, so one outlying seed moves it little) and the probability of
improvement ``P(X > Y)`` of one agent over another (ties count half), each with a percentile-bootstrap interval
that resamples each agent's seeds independently.

    from bench_stats import iqm, mean_se, probability_of_improvement, bootstrap_interval
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

import numpy as np


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """The mean and its standard error (``nan`` for one value)."""
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
    return statistics.fmean(values), se


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """The interquartile mean: the mean after dropping ``floor(n / 4)`` values from each end of the sorted ones."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    cut = len(ordered) // 4
    return float(ordered[cut : len(ordered) - cut].mean())


def probability_of_improvement(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """``P(X > Y) + P(X = Y) / 2`` for one score ``X`` of ``x``'s seeds and one ``Y`` of ``y``'s, drawn independently
    (the Mann-Whitney U statistic over ``len(x) * len(y)``)."""
    a, b = np.asarray(x, dtype=np.float64)[:, None], np.asarray(y, dtype=np.float64)[None, :]
    return float(((a > b) + 0.5 * (a == b)).mean())


def bootstrap_interval(
    statistic: Callable[..., float],
    *samples: Sequence[float],
    rng: np.random.Generator,
    resamples: int = 5000,
    level: float = 0.95,
) -> tuple[float, float]:
    """The percentile-bootstrap ``level`` interval of ``statistic(*samples)``, each sample's values resampled with
    replacement on their own."""
    arrays = [np.asarray(s, dtype=np.float64) for s in samples]
    draws = [statistic(*(a[rng.integers(0, len(a), len(a))] for a in arrays)) for _ in range(resamples)]
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)
