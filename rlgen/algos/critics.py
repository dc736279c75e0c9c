"""Pieces shared by the offline actor-critic agents (IQL, TD3+BC): twin Q networks, target networks and their
Polyak update, dataset observation normalisation and the continuous-task check.

>>> q = TwinQ(obs_dim=11, act_dim=3, hidden=(256, 256))
>>> target = frozen_copy(q)
>>> q1, q2 = q(torch.zeros(8, 11), torch.zeros(8, 3))
>>> polyak_update(target, q, tau=0.005)
"""

from __future__ import annotations

import copy
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from rlgen.data import Episodes, Statistics
from rlgen.nets import MLP
from rlgen.tasks import TaskSpec

# Added to the dataset's standard deviation before dividing (TD3+BC's and CORL's epsilon): constant
# dimensions map to 0 and near-constant ones are not blown up.
OBS_STD_EPS = 1e-3

M = TypeVar("M", bound=nn.Module)


class QNetwork(nn.Module):
    """``Q(s, a)``: an MLP on the concatenated observation and action, one output."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], activation: str = "relu"):
        super().__init__()
        self.body = MLP(obs_dim + act_dim, hidden, activation)
        self.out = nn.Linear(self.body.out_features, 1)

    def forward(self, obs: Tensor, actions: Tensor) -> Tensor:
        return self.out(self.body(torch.cat([obs, actions], dim=-1))).squeeze(-1)


class TwinQ(nn.Module):
    """Two independent Q networks (clipped double Q-learning): ``forward(s, a) -> (q1, q2)``, each ``(B,)``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], activation: str = "relu"):
        super().__init__()
        self.q1 = QNetwork(obs_dim, act_dim, hidden, activation)
        self.q2 = QNetwork(obs_dim, act_dim, hidden, activation)

    def forward(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        return self.q1(obs, actions), self.q2(obs, actions)

    def min(self, obs: Tensor, actions: Tensor) -> Tensor:
        """The smaller of the two estimates, ``(B,)``."""
        return torch.minimum(*self(obs, actions))


def frozen_copy(module: M) -> M:
    """A copy of ``module`` without gradients, to serve as its target network."""
    return copy.deepcopy(module).requires_grad_(False)


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """``target <- target + tau * (online - target)`` for every parameter (the modules share their layout)."""
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.lerp_(o, tau)


class ObservationNormalizer(nn.Module):
    """``(obs - mean) / (std + 1e-3)`` with the dataset's statistics, kept as buffers so checkpoints carry them
    (identity until :meth:`fit` is called)."""

    def __init__(self, obs_dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(obs_dim))
        self.register_buffer("scale", torch.ones(obs_dim))

    def fit(self, observations: np.ndarray) -> None:
        """Set the statistics to those of ``observations`` ``(N, obs_dim)``."""
        stats = Statistics.compute(observations, num_bins=1)
        self.mean.copy_(torch.as_tensor(stats.mean, dtype=torch.float32))
        self.scale.copy_(torch.as_tensor(stats.std + OBS_STD_EPS, dtype=torch.float32))

    def forward(self, obs: Tensor) -> Tensor:
        return (obs - self.mean) / self.scale


def require_continuous(algo: str, task: TaskSpec, data: Episodes | None) -> None:
    """Raise ``ValueError`` naming the dataset (or the task) if ``task`` has a discrete action space."""
    if task.discrete:
        where = data.source if data is not None else f"task {task.name}"
        raise ValueError(f"{where}: {algo} needs continuous actions; task {task.name!r} has a discrete action space")
