"""Behaviour cloning on a handful of demonstrations, as the thesis' BC baseline (source 004, sec. 2.6):
split the pairs 70/30, fit the policy's log-likelihood with Adam on minibatches of 128, stop once the
validation loss has not improved for ``patience`` epochs and keep the best weights.

GAIL uses the same routine for its optional warm start, and ``scripts/bench_gail.py`` for the BC column, so
both start from identical policies and data.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch

from rlgen.algos.bc import BCPolicy
from rlgen.algos.gail.demos import Demonstrations


@dataclass(frozen=True)
class CloneSettings:
    """:param validation_fraction: share of the pairs held out to decide when to stop.
    :param max_epochs: upper bound on passes over the training split.
    :param patience: epochs without a new best validation loss before stopping."""

    lr: float = 1e-3
    batch_size: int = 128
    validation_fraction: float = 0.3
    max_epochs: int = 2000
    patience: int = 50

    def __post_init__(self) -> None:
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError(f"batch_size, max_epochs and patience must be >= 1, got {self.batch_size}, "
                             f"{self.max_epochs} and {self.patience}")  # fmt: skip


@dataclass(frozen=True)
class CloneResult:
    """:param epochs: epochs run; :param best_epoch: the epoch whose weights were kept (1-based);
    :param validation_loss: its mean validation NLL."""

    epochs: int
    best_epoch: int
    validation_loss: float


def behaviour_clone(policy: BCPolicy, demos: Demonstrations, settings: CloneSettings,
                    rng: np.random.Generator) -> CloneResult:  # fmt: skip
    """Fit ``policy`` to ``demos`` in place (module docstring); ``rng`` draws the split and the minibatches."""
    held_out = math.ceil(settings.validation_fraction * len(demos))
    if len(demos) - held_out < 1:
        raise ValueError(f"{len(demos)} demonstration pairs are too few to split {settings.validation_fraction:.0%} "
                         f"off for validation")  # fmt: skip
    device = next(policy.parameters()).device
    obs = torch.as_tensor(demos.observations, device=device)
    actions = torch.as_tensor(demos.actions, device=device)
    order = rng.permutation(len(demos))
    valid, train = order[:held_out], order[held_out:]
    optimizer = torch.optim.Adam(policy.parameters(), lr=settings.lr)

    def loss(rows: np.ndarray) -> torch.Tensor:
        return policy.head.loss(policy.features(obs[rows]), actions[rows])

    best, best_epoch, best_state = math.inf, 0, copy.deepcopy(policy.state_dict())
    epoch = 0
    for epoch in range(1, settings.max_epochs + 1):
        shuffled = rng.permutation(train)
        for first in range(0, len(shuffled), settings.batch_size):
            batch_loss = loss(shuffled[first : first + settings.batch_size])
            optimizer.zero_grad(set_to_none=True)
            batch_loss.backward()
            optimizer.step()
        with torch.no_grad():
            validation = float(loss(valid))
        if validation < best:
            best, best_epoch, best_state = validation, epoch, copy.deepcopy(policy.state_dict())
        elif epoch - best_epoch >= settings.patience:
            break
    policy.load_state_dict(best_state)
    return CloneResult(epoch, best_epoch, best)
