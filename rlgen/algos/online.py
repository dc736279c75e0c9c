"""What the online agents (REINFORCE, actor-critic, DQN) share: the policy / value networks on rlgen heads,
the return and advantage estimators, and the agent base classes.

An online agent is its own batch sampler: :func:`rlgen.train.fit` calls ``agent.sample(batch_size, rng)``,
which steps the environments and returns what the next gradient step learns from, then ``agent.update``.
``train.steps`` therefore counts gradient steps for online agents too; environment steps are logged beside.

Exact resume. A checkpoint holds the agent's networks and optimisers, the replay buffer (DQN) and the state of
its :class:`~rlgen.rollout.collector.VectorCollector`, which restores the environments exactly (every episode
is reset from a seed of the trainer's checkpointed numpy generator and its actions are replayed on resume).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlgen.data import Episodes
from rlgen.heads import BoxDistribution, CategoricalHead, GaussianHeadConfig, HeadConfig
from rlgen.nets import MLP, orthogonal_init_
from rlgen.rollout.collector import VectorCollector
from rlgen.tasks import TaskSpec
from rlgen.train.agent import Agent, BatchSampler
from rlgen.train.config import ConfigError, require_positive

# ------------------------------------------------------------------------------------------------ estimators


def returns_to_go(rewards: np.ndarray, dones: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = r_t + gamma * G_{t+1}``, restarting after every step flagged in ``dones``.

    :param rewards: shape ``(T, ...)`` in time order.
    :param dones: same shape; true where an episode ended (terminated or truncated) at that step.
    """
    out = np.zeros_like(rewards, dtype=np.float32)
    running = np.zeros(rewards.shape[1:], dtype=np.float32)
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running * (1.0 - dones[t])
        out[t] = running
    return out


def gae(rewards: Tensor, values: Tensor, next_values: Tensor, dones: Tensor, gamma: float, lam: float) -> Tensor:
    """Generalised advantage estimates over a rollout of shape ``(T, N)`` (Schulman et al. 2016).

    ``delta_t = r_t + gamma * V'_t - V(s_t)`` and ``A_t = delta_t + gamma * lam * A_{t+1}``, the recursion cut
    where an episode ended. ``next_values`` is ``V`` of the true next state, already zero where the episode
    *terminated* (a truncated episode bootstraps from its final observation). ``lam = 1`` gives the n-step
    advantage bootstrapped at the rollout's end; ``lam = 0`` the one-step TD error.
    """
    deltas = rewards + gamma * next_values - values
    advantages = torch.zeros_like(deltas)
    running = torch.zeros_like(deltas[0])
    for t in range(len(deltas) - 1, -1, -1):
        running = deltas[t] + gamma * lam * (1.0 - dones[t]) * running
        advantages[t] = running
    return advantages


def linear_schedule(start: float, end: float, duration: int, t: int) -> float:
    """``start`` moving linearly to ``end`` over ``duration`` steps, then ``end`` (the ε-greedy schedule)."""
    if duration <= 0:
        return end
    return start + (end - start) * min(t / duration, 1.0)


# ------------------------------------------------------------------------------------------------ networks


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


# ------------------------------------------------------------------------------------------------ agent base


class OnlineAgent(Agent):
    """An agent that learns from its own interaction: it is its own :class:`BatchSampler`.

    Subclasses build :attr:`collector` and implement :meth:`sample`.
    """

    offline = False
    collector: VectorCollector

    def sampler(self, data: Episodes | None) -> BatchSampler:
        if data is not None:
            raise ValueError(f"{type(self).__name__} learns online from its environment; it takes no dataset")
        return self

    @abstractmethod
    def sample(self, batch_size: int, rng: np.random.Generator) -> Any:
        """Interact with the environments and return what the next :meth:`update` learns from."""

    def counters(self) -> dict[str, float]:
        return {"env_steps": float(self.collector.env_steps), "episodes": float(self.collector.episodes)}


@dataclass(frozen=True)
class PolicyGradientConfig:
    """Settings shared by REINFORCE and actor-critic (their recipes' ``agent:`` blocks extend it).

    :param head: head config of the policy for continuous actions (e.g. ``{type: gaussian, squash: false}``);
        discrete tasks always use a categorical over their actions (a misspelt head is still an error there).
    :param hidden: widths of the policy and value MLPs (separate networks).
    :param optimizer: ``adam`` or ``rmsprop`` (A2C's original optimiser, alpha 0.99, eps 1e-5).
    :param value_coef: weight of the value (baseline) regression loss.
    :param entropy_coef: weight of the policy-entropy bonus.
    :param normalize_advantages: standardise advantages within each batch.
    :param num_envs: environments stepped together.
    :param ortho_init: orthogonal initialisation (gain sqrt(2) in the bodies, 0.01 on the policy head's output
        layer, 1 on the value output), as SB3's and CleanRL's actor-critics do; PyTorch's default otherwise.
    """

    head: HeadConfig = field(default_factory=GaussianHeadConfig)
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    optimizer: Literal["adam", "rmsprop"] = "adam"
    lr: float = 1e-3
    gamma: float = 0.99
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    grad_clip: float | None = 0.5
    normalize_advantages: bool = False
    num_envs: int = 1
    ortho_init: bool = True

    def __post_init__(self) -> None:
        require_positive(self, "agent", "lr")
        if not 0.0 <= self.gamma <= 1.0:
            raise ConfigError(f"agent.gamma must be in [0, 1], got {self.gamma}")


class PolicyGradientAgent(OnlineAgent):
    """A policy on an rlgen head plus a learned value (baseline or critic), one optimiser over both."""

    def __init__(self, config: PolicyGradientConfig, task: TaskSpec, device: torch.device):
        self.config, self.task, self.device = config, task, device
        self.policy = PolicyNet(task, config.hidden, config.activation, config.head, config.ortho_init).to(device)
        self.value = ValueNet(task.obs_dim, config.hidden, config.activation, config.ortho_init).to(device)
        params = [*self.policy.parameters(), *self.value.parameters()]
        if config.optimizer == "rmsprop":
            self.optimizer: torch.optim.Optimizer = torch.optim.RMSprop(params, lr=config.lr, alpha=0.99, eps=1e-5)
        else:
            self.optimizer = torch.optim.Adam(params, lr=config.lr)
        self.low, self.high = (None, None) if task.discrete else task.action_bounds()
        self.collector = VectorCollector(task, config.num_envs)

    @classmethod
    def create(cls, config: Any, task: TaskSpec, data: Episodes | None, device: torch.device) -> Self:
        if data is not None:
            raise ValueError(f"{cls.__name__} learns online; it takes no dataset")
        return cls(config, task, device)

    def tensor(self, array: np.ndarray) -> Tensor:
        return torch.as_tensor(array, dtype=torch.float32, device=self.device)

    @torch.no_grad()
    def explore(self, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A sampled action per observation: ``(raw head sample (n, D), what the env is given)``."""
        raw = self.policy(self.tensor(observations)).sample()
        return raw.cpu().numpy(), to_env_actions(self.task, raw, self.low, self.high)

    def gradient_step(self, obs: Tensor, raw_actions: Tensor, advantages: Tensor,
                      returns: Tensor) -> dict[str, Tensor | float]:  # fmt: skip
        """One optimiser step on ``-log pi(a|s) A - entropy_coef H + value_coef (V(s) - G)^2``, batch means."""
        c = self.config
        if c.normalize_advantages and advantages.numel() > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        dist = self.policy(obs)
        log_prob = dist.log_prob(raw_actions)
        entropy = dist.entropy().mean()
        value_loss = F.mse_loss(self.value(obs), returns)
        pg_loss = -(log_prob * advantages).mean()
        loss = pg_loss + c.value_coef * value_loss - c.entropy_coef * entropy
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if c.grad_clip is not None:
            nn.utils.clip_grad_norm_([*self.policy.parameters(), *self.value.parameters()], c.grad_clip)
        self.optimizer.step()
        scalars: dict[str, Tensor | float] = {"policy_loss": pg_loss.detach(), "value_loss": value_loss.detach(),
                                              "entropy": entropy.detach()}  # fmt: skip
        if self.collector.finished:
            scalars["episode_return"] = self.collector.recent_return()
        return scalars

    @torch.no_grad()
    def act(self, observations: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """The head's mode (``deterministic``) or a sample, as the env takes it."""
        dist = self.policy(self.tensor(observations))
        return to_env_actions(self.task, dist.mode() if deterministic else dist.sample(), self.low, self.high)

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "value": self.value.state_dict(),
                "optimizer": self.optimizer.state_dict(), "collector": self.collector.state_dict()}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.value.load_state_dict(state["value"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.collector.load_state_dict(state["collector"])
