"""Normalised scores on the D4RL scale."""

from __future__ import annotations

import numpy as np


def normalized_score(returns: float | np.ndarray, ref_min_score: float, ref_max_score: float) -> np.ndarray:
    """``100 * (R - ref_min) / (ref_max - ref_min)``: 0 is the random policy, 100 the reference expert.

    ``minari.get_normalized_score`` computes the same quantity on a 0-1 scale.
    """
    if not ref_max_score > ref_min_score:
        raise ValueError(f"ref_max_score {ref_max_score} must exceed ref_min_score {ref_min_score}")
    r = np.asarray(returns, dtype=np.float64)
    return 100.0 * (r - ref_min_score) / (ref_max_score - ref_min_score)
