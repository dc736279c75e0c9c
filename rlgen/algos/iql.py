"""Implicit Q-Learning (Kostrikov, Nair & Levine 2021) with any rlgen head as the policy.

IQL never queries Q at actions outside the dataset. On a batch ``(s, a, r, s', terminal)``, with rewards
scaled by ``reward_scale / (max episode return - min episode return)`` of the dataset::

    V:      min over  E[ |expectile - 1(u < 0)| * u^2 ],   u = min_i Q_target_i(s, a) - V(s)
    Q:      min over  sum_i E[ (Q_i(s, a) - (r + gamma * (1 - terminal) * V(s')))^2 ]
    policy: max over  E[ min(exp(beta * (min_i Q_target_i(s, a) - V(s))), max_weight) * log pi(a | s) ]

followed by the Polyak update ``Q_target <- Q_target + tau * (Q - Q_target)``. ``V(s')`` and the advantage are
taken from V before its step (CORL's order; the paper's code re-evaluates them after it). ``log pi`` is the
head's training likelihood (:meth:`rlgen.heads.Head.training_log_prob`: AdaCat's target-smoothed one), so
every head is trained by exactly the loss behaviour cloning uses, weighted per sample. The policy's learning
rate follows a cosine from ``lr`` to 0 over the run's ``train.steps``, which the launcher passes to
:meth:`IQL.set_total_steps` (without it the policy's rate stays at ``lr``). Observations are standardised with
the dataset's mean and std for every network (buffers in the checkpoint, as is the reward scale).

Deterministic action: ``action`` (``peak`` by default, ``mode`` or ``mean``) with ``peak_width``; what each is
and when the mode fails: :meth:`rlgen.heads.BoxDistribution.point`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlgen.algos.critics import ObservationNormalizer, TwinQ, frozen_copy, polyak_update, require_continuous
from rlgen.config import ConfigError, require_at_least, require_fraction, require_positive
from rlgen.data import Episodes, Transitions
from rlgen.heads import PEAK_WIDTH, BoxDistribution, GaussianHeadConfig, HeadConfig, PointAction
from rlgen.nets import MLP
from rlgen.tasks import TaskSpec
from rlgen.train.agent import Agent


@dataclass(frozen=True)
class IQLConfig:
    """The ``agent:`` block of an IQL recipe; defaults are the paper's locomotion settings.

    :param head: the policy's head config: ``{type: dlml, num_mixtures: 10}``, or a type name (``gaussian``,
        ``uniform``, ``quantile``, ``adacat``, ``dlml``) for that head's defaults. The default is an
        unsquashed Gaussian with a state-independent std, as the paper's, its actions clipped to the box (a
        tanh-squashed one cannot fit behaviour actions that sit at the bounds).
    :param hidden: widths of the policy, Q and V MLPs.
    :param lr: Adam learning rate of Q, V and (at the start of its cosine) the policy.
    :param gamma: discount.
    :param tau: Polyak rate of the target Q networks.
    :param expectile: the expectile V regresses to (0.5: the mean of Q; towards 1: its maximum over actions).
    :param beta: inverse temperature of the advantage weights (0: behaviour cloning).
    :param max_weight: advantage weights are clipped at this value.
    :param reward_scale: rewards are multiplied by ``reward_scale / (max - min episode return)``.
    :param action: deterministic action: the policy distribution's ``mode``, ``mean`` or ``peak``.
    :param peak_width: the window of ``action: peak``, as a fraction of the box.
    :param normalize_observations: standardise observations with the dataset's mean and std.
    """

    head: HeadConfig = field(default_factory=lambda: GaussianHeadConfig(squash=False, state_dependent_std=False))
    hidden: tuple[int, ...] = (256, 256)
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    expectile: float = 0.7
    beta: float = 3.0
    max_weight: float = 100.0
    reward_scale: float = 1000.0
    action: PointAction = "peak"
    peak_width: float = PEAK_WIDTH
    normalize_observations: bool = True

    def __post_init__(self) -> None:
        require_positive(self, "agent", "lr", "max_weight", "reward_scale")
        require_fraction(self, "agent", "peak_width")
        require_at_least(self, "agent", 0.0, "beta")
        if not 0.0 < self.expectile < 1.0:
            raise ConfigError(f"agent.expectile must be in (0, 1), got {self.expectile}")
        for name in ("gamma", "tau"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"agent.{name} must be in [0, 1], got {getattr(self, name)}")


def expectile_loss(diff: Tensor, expectile: float) -> Tensor:
    """``mean(|expectile - 1(diff < 0)| * diff^2)``: minimised over ``v`` by the expectile of ``x`` when
    ``diff = x - v``."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff.square()).mean()


def advantage_weights(advantages: Tensor, beta: float, max_weight: float) -> Tensor:
    """``min(exp(beta * advantages), max_weight)``, the per-sample weights of the policy's likelihood."""
    return torch.exp(beta * advantages).clamp(max=max_weight)


def return_range_scale(data: Episodes, reward_scale: float) -> float:
    """``reward_scale / (max - min episode return)`` of ``data``; a zero range is a ``ValueError``."""
    returns = data.episode_returns()
    spread = float(returns.max() - returns.min())
    if not spread > 0:
        raise ValueError(f"{data.source}: IQL scales rewards by {reward_scale:g} / (max - min episode return), but "
                         f"all {len(returns)} episodes return {returns[0]:.6g}; give a dataset whose episode "
                         "returns differ (one with rewards)")  # fmt: skip
    return reward_scale / spread


class IQLPolicy(nn.Module):
    """MLP body and head on normalised observations: ``forward(obs) -> BoxDistribution`` over actions."""

    def __init__(self, config: IQLConfig, obs_dim: int, act_low: np.ndarray, act_high: np.ndarray):
        super().__init__()
        self.body = MLP(obs_dim, config.hidden)
        self.head = config.head.create(self.body.out_features, len(act_low), act_low, act_high)

    def forward(self, obs: Tensor) -> BoxDistribution:
        return self.head(self.body(obs))


class ValueNetwork(nn.Module):
    """``V(s)``: an MLP with one output."""

    def __init__(self, obs_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.body = MLP(obs_dim, hidden)
        self.out = nn.Linear(self.body.out_features, 1)

    def forward(self, obs: Tensor) -> Tensor:
        return self.out(self.body(obs)).squeeze(-1)


class IQL(Agent):
    """Implicit Q-Learning (see the module docstring): one V, Q and policy step per batch."""

    Config = IQLConfig
    checkpointed = (
        "normalizer",
        "policy",
        "q",
        "q_target",
        "v",
        "q_optimizer",
        "v_optimizer",
        "policy_optimizer",
        "policy_schedule",
    )
    data_parallel = True

    def __init__(self, config: IQLConfig, task: TaskSpec, act_low: np.ndarray, act_high: np.ndarray,
                 device: torch.device):  # fmt: skip
        self.config, self.device = config, device
        self.act_low, self.act_high = act_low.astype(np.float32), act_high.astype(np.float32)
        obs_dim, act_dim = task.obs_dim, len(act_low)
        self.normalizer = ObservationNormalizer(obs_dim).to(device)
        self.policy = IQLPolicy(config, obs_dim, self.act_low, self.act_high).to(device)
        self.q = TwinQ(obs_dim, act_dim, config.hidden).to(device)
        self.q_target = frozen_copy(self.q)
        self.v = ValueNetwork(obs_dim, config.hidden).to(device)
        self.q_optimizer = torch.optim.Adam(self.q.parameters(), lr=config.lr)
        self.v_optimizer = torch.optim.Adam(self.v.parameters(), lr=config.lr)
        self.policy_optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.lr)
        self.total_steps: int | None = None
        self.policy_schedule = torch.optim.lr_scheduler.LambdaLR(self.policy_optimizer, lambda n: self._lr_factor(n))
        self.reward_scale = 1.0  # set from the data by create, restored from checkpoints

    @classmethod
    def create(cls, config: IQLConfig, task: TaskSpec, data: Episodes | None, device: torch.device) -> IQL:
        require_continuous("IQL", task, data)
        low, high = task.action_bounds()
        agent = cls(config, task, low, high, device)
        if data is not None:
            agent.reward_scale = return_range_scale(data, config.reward_scale)
            if config.normalize_observations:
                agent.normalizer.fit(data.observations)
            actions = np.clip(data.actions, agent.act_low, agent.act_high)
            agent.policy.head.fit_to_data(torch.as_tensor(actions, device=device))
        return agent

    def set_total_steps(self, total_steps: int) -> None:
        """Decay the policy's learning rate to 0 over ``total_steps`` updates (the run's ``train.steps``)."""
        self.total_steps = total_steps

    def _lr_factor(self, step: int) -> float:
        if self.total_steps is None:
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * min(step, self.total_steps) / self.total_steps))

    def update(self, batch: Transitions) -> dict[str, Tensor | float]:
        c = self.config
        obs = self.normalizer(torch.as_tensor(batch.observations, device=self.device))
        next_obs = self.normalizer(torch.as_tensor(batch.next_observations, device=self.device))
        actions = torch.as_tensor(batch.actions, device=self.device)
        rewards = torch.as_tensor(batch.rewards, device=self.device) * self.reward_scale
        terminals = torch.as_tensor(batch.terminals, device=self.device)
        with torch.no_grad():
            target_q = self.q_target.min(obs, actions)
            next_v = self.v(next_obs)

        # V: expectile regression towards the target Q of the dataset's actions.
        v = self.v(obs)
        advantages = target_q - v
        v_loss = expectile_loss(advantages, c.expectile)
        self.v_optimizer.zero_grad(set_to_none=True)
        v_loss.backward()
        self.v_optimizer.step()

        # Q: one-step TD towards V of the next state; the target networks follow by Polyak averaging.
        td_target = rewards + c.gamma * (1.0 - terminals) * next_v
        q1, q2 = self.q(obs, actions)
        q_loss = F.mse_loss(q1, td_target) + F.mse_loss(q2, td_target)
        self.q_optimizer.zero_grad(set_to_none=True)
        q_loss.backward()
        self.q_optimizer.step()
        polyak_update(self.q_target, self.q, c.tau)

        # Policy: advantage-weighted likelihood of the dataset's actions, through the head's training loss.
        advantages = advantages.detach()
        weights = advantage_weights(advantages, c.beta, c.max_weight)
        log_prob = self.policy.head.training_log_prob(self.policy(obs), actions)
        actor_loss = -(weights * log_prob).mean()
        self.policy_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.policy_optimizer.step()
        self.policy_schedule.step()

        return {
            "q_loss": q_loss.detach(),
            "v_loss": v_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "q_mean": q1.detach().mean(),
            "v_mean": v.detach().mean(),
            "advantage_mean": advantages.mean(),
            "advantage_std": advantages.std(),
            "weight_mean": weights.mean(),
            "weight_max": weights.max(),
            "weight_clipped": (weights >= c.max_weight).float().mean(),
        }

    @torch.no_grad()
    def act(self, observations: np.ndarray, deterministic: bool = True) -> np.ndarray:
        obs = self.normalizer(torch.as_tensor(observations, dtype=torch.float32, device=self.device))
        dist = self.policy(obs)
        if not deterministic:
            actions = dist.sample()
        else:
            actions = dist.point(self.config.action, self.config.peak_width)
        # An unsquashed Gaussian's samples may leave the box; the env expects actions inside it.
        return np.clip(actions.cpu().numpy(), self.act_low, self.act_high)

    def trainable_modules(self) -> list[nn.Module]:
        return [self.q, self.v, self.policy]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "reward_scale": self.reward_scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.reward_scale = float(state["reward_scale"])
