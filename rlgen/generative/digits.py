"""scikit-learn's bundled 8x8 handwritten digits as integer images with 17 intensity levels (0 .. 16).

The data ship inside the scikit-learn wheel (1,797 images), so nothing is downloaded. A fixed permutation
splits them into train and test images.
"""

from __future__ import annotations

import numpy as np

NUM_LEVELS = 17
SHAPE = (8, 8)


def load_digit_levels(test_fraction: float = 0.2, split_seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train and test images, ``int64`` arrays ``(N, 8, 8)`` with values in ``[0, 16]``.

    :param test_fraction: share of the images held out for testing, in (0, 1).
    :param split_seed: seed of the permutation that splits them (the same seed, the same split).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError("the digits data come with scikit-learn: pip install -e '.[generative]'") from error
    images = load_digits().images
    levels = np.rint(images).astype(np.int64)
    if levels.min() < 0 or levels.max() >= NUM_LEVELS or not np.allclose(images, levels):
        raise ValueError(f"scikit-learn's digits are not integers in [0, {NUM_LEVELS - 1}] (changed upstream?)")
    order = np.random.default_rng(split_seed).permutation(len(levels))
    num_test = max(1, round(test_fraction * len(levels)))
    return levels[order[num_test:]], levels[order[:num_test]]
