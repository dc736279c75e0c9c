"""The online agents' bases: :class:`OnlineAgent`, and :class:`PolicyGradientAgent` with its
:class:`PolicyGradientConfig` (REINFORCE and A2C build on them).

An online agent is its own batch sampler: :func:`rlgen.train.fit` calls ``agent.sample(batch_size, rng)``,
which steps the environments and returns what the next gradient step learns from, then ``agent.update``.
``train.steps`` counts environment steps for online agents, like SB3's ``total_timesteps`` (and so do
``train.eval_every``, ``log_every`` and ``checkpoint_every``): :meth:`OnlineAgent.steps_done` reports them, and
training stops after the first update at which they reach ``train.steps``.

Exact resume. A checkpoint holds the agent's networks and optimisers, the replay buffer (DQN) and the state of
its :class:`~rlgen.rollout.collector.VectorCollector`, which restores the environments exactly (every episode
is reset from a seed of the trainer's checkpointed numpy generator and its actions are replayed on resume).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlgen.algos.networks import PolicyNet, ValueNet, to_env_actions
from rlgen.config import ConfigError, require_positive
from rlgen.data import Episodes
from rlgen.heads import GaussianHeadConfig, HeadConfig
from rlgen.rollout.collector import VectorCollector
from rlgen.tasks import TaskSpec
from rlgen.train.agent import Agent, BatchSampler


class OnlineAgent(Agent):
    """An agent that steps its own environments through :attr:`collector` and is its own :class:`BatchSampler`.

    Most learn from that interaction alone (``needs_dataset`` false: they are given no data); one that also
    learns from a dataset (GAIL's demonstrations) sets ``needs_dataset`` and overrides :meth:`sampler`.
    Subclasses build :attr:`collector` and implement :meth:`sample`.
    """

    needs_dataset = False
    collector: VectorCollector

    @classmethod
    def refuse_data(cls, data: Episodes | None) -> None:
        """Raise if ``data`` is given to an agent that takes no dataset."""
        if data is not None and not cls.needs_dataset:
            raise ValueError(f"{cls.__name__} learns online from its environment; it takes no dataset")

    def sampler(self, data: Episodes | None) -> BatchSampler:
        self.refuse_data(data)
        return self

    @abstractmethod
    def sample(self, batch_size: int, rng: np.random.Generator) -> Any:
        """Interact with the environments and return what the next :meth:`update` learns from."""

    def steps_done(self, updates: int) -> int:
        """The environment steps collected so far: every one of them has been learned from once an update is
        done (DQN, which takes several updates per collection, overrides this)."""
        return self.collector.env_steps

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

    checkpointed = ("policy", "value", "optimizer", "collector")

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
        cls.refuse_data(data)
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
