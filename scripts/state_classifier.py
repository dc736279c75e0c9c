"""A state classifier that tells two behaviours apart: which expert's states an observation looks like.

Shared by ``bench_two_experts.py`` (how separable a two-expert mixture is by the state alone) and
``which_expert.py`` (which expert a trained policy's episodes move like).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

HIDDEN = 256


@dataclass
class StateClassifier:
    """An MLP on standardised states; :meth:`second` is the probability that states come from behaviour 1.

    :param held_out_accuracy: accuracy on the 20% of the states held out of training.
    :param held_out_correct: per held-out state, 1.0 where it was classified right, in the order of ``held_out``.
    :param held_out: the indices of the held-out states in the arrays it was fitted on.
    """

    net: torch.nn.Module
    mean: np.ndarray
    std: np.ndarray
    held_out_accuracy: float
    held_out_correct: np.ndarray
    held_out: np.ndarray

    def second(self, observations: np.ndarray) -> np.ndarray:
        """Probability, per row of ``observations`` ``(n, obs_dim)``, that behaviour 1 produced the state."""
        x = torch.as_tensor((observations - self.mean) / self.std, dtype=torch.float32)
        with torch.no_grad():
            return torch.sigmoid(self.net(x).squeeze(-1)).numpy()


def fit_state_classifier(observations: np.ndarray, labels: np.ndarray, steps: int = 3000,
                         seed: int = 0) -> StateClassifier:  # fmt: skip
    """Fit an MLP 256-256 (Adam, ``steps`` batches of 512) to tell label 1 from label 0, holding 20% of the states
    out to measure its accuracy.

    :param observations: ``(n, obs_dim)`` states of both behaviours.
    :param labels: ``(n,)`` 0 or 1: which behaviour each state comes from.
    """
    if observations.ndim != 2 or labels.shape != (len(observations),):
        raise ValueError(f"observations (n, d) and labels (n,) expected, got {observations.shape}, {labels.shape}")
    if not set(np.unique(labels)) == {0, 1}:
        raise ValueError(f"labels must hold both 0 and 1, got {np.unique(labels)}")
    mean, std = observations.mean(0), observations.std(0) + 1e-3
    x = torch.as_tensor((observations - mean) / std, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.float32)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    test, train = order[: len(x) // 5], order[len(x) // 5 :]
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, HIDDEN),
                              torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 1))  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(steps):
        batch = torch.as_tensor(rng.choice(train, 512))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x[batch]).squeeze(-1), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        correct = ((net(x[test]).squeeze(-1) > 0).float() == y[test]).numpy()
    return StateClassifier(net, mean, std, float(correct.mean()), correct, test)
