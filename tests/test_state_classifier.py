"""scripts/state_classifier.py: the classifier that tells which of two experts' states an observation looks like."""

from __future__ import annotations

import types

import numpy as np
import pytest
from helpers import import_script


@pytest.fixture(scope="module")
def classifier_module() -> types.ModuleType:
    return import_script("state_classifier")


def states(rng: np.random.Generator, shift: float, n: int = 2000) -> np.ndarray:
    return rng.normal(size=(n, 3)) + np.array([shift, 0.0, 0.0])


def test_it_tells_two_distinct_behaviours_apart_and_not_two_equal_ones(classifier_module: types.ModuleType) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 2000)
    apart = classifier_module.fit_state_classifier(np.concatenate([states(rng, -3.0), states(rng, 3.0)]), labels,
                                                   steps=300)  # fmt: skip
    assert apart.held_out_accuracy > 0.97
    assert len(apart.held_out_correct) == len(apart.held_out) == 800
    probability = apart.second(np.array([[-3.0, 0.0, 0.0], [3.0, 0.0, 0.0]]))
    assert probability[0] < 0.05 and probability[1] > 0.95
    same = classifier_module.fit_state_classifier(np.concatenate([states(rng, 0.0), states(rng, 0.0)]), labels,
                                                  steps=300)  # fmt: skip
    assert 0.4 < same.held_out_accuracy < 0.6


def test_it_refuses_labels_of_one_behaviour_or_the_wrong_length(classifier_module: types.ModuleType) -> None:
    obs = np.zeros((10, 3))
    with pytest.raises(ValueError, match="both 0 and 1"):
        classifier_module.fit_state_classifier(obs, np.zeros(10, dtype=np.int64))
    with pytest.raises(ValueError, match=r"labels \(n,\)"):
        classifier_module.fit_state_classifier(obs, np.zeros(9, dtype=np.int64))
