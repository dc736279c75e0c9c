"""The online agents' networks: a policy on an rlgen head, a state-value MLP, and the policy's samples mapped to
the actions a vector env takes."""

from __future__ import annotations

import math

import numpy as np
from torch import Tensor, nn

from rlgen.heads import BoxDistribution, CategoricalHead, HeadConfig
from rlgen.nets import MLP, orthogonal_init_
from rlgen.tasks import TaskSpec


def policy_head(task: TaskSpec, in_features: int, head: HeadConfig) -> nn.Module:
    """A categorical over the actions of a discrete task, else the head ``head`` over the action box."""
    if task.discrete:
        assert task.num_actions is not None
        return CategoricalHead(in_features, 1, task.num_actions)
    low, high = task.action_bounds()
    return head.create(in_features, task.act_dim, low, high)


class PolicyNet(nn.Module):
    """``head(MLP(s))``: a distribution over actions (categorical for discrete tasks)."""

    def __init__(self, task: TaskSpec, hidden: tuple[int, ...], activation: str, head: HeadConfig,
                 ortho_init: bool = False):  # fmt: skip
        super().__init__()
        self.body = MLP(task.obs_dim, hidden, activation)
        self.head = policy_head(task, self.body.out_features, head)
        if ortho_init:
            orthogonal_init_(self.body, math.sqrt(2))
            orthogonal_init_(self.head.proj, 0.01)  # near-uniform initial policy over the head's outputs

    def forward(self, obs: Tensor) -> BoxDistribution:
        return self.head(self.body(obs))


class ValueNet(nn.Module):
    """``V(s)``: an MLP with a scalar output."""

    def __init__(self, obs_dim: int, hidden: tuple[int, ...], activation: str, ortho_init: bool = False):
        super().__init__()
        self.body = MLP(obs_dim, hidden, activation)
        self.out = nn.Linear(self.body.out_features, 1)
        if ortho_init:
            orthogonal_init_(self.body, math.sqrt(2))
            orthogonal_init_(self.out, 1.0)

    def forward(self, obs: Tensor) -> Tensor:
        return self.out(self.body(obs)).squeeze(-1)


def to_env_actions(task: TaskSpec, actions: Tensor, low: np.ndarray | None, high: np.ndarray | None) -> np.ndarray:
    """Head outputs ``(n, D)`` as the vector env takes them: indices ``(n,)`` or actions clipped to the box."""
    array = actions.cpu().numpy()
    if task.discrete:
        return array[:, 0].astype(np.int64)
    return np.clip(array, low, high)  # an unsquashed Gaussian's samples may leave the box
