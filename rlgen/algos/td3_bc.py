"""TD3+BC (Fujimoto & Gu 2021): TD3 with a behaviour-cloning term in the actor's loss.

On a batch ``(s, a, r, s', terminal)`` with observations standardised by the dataset's mean and std::

    a'     = clip(pi_target(s') + clip(noise_std * eps, -noise_clip, noise_clip), low, high),   eps ~ N(0, 1)
    critic: min over  sum_i E[ (Q_i(s, a) - (r + gamma * (1 - terminal) * min_j Q_target_j(s', a')))^2 ]
    actor:  min over  -lambda * E[ Q_1(s, pi(s)) ] + E[ (pi(s) - a)^2 ],   lambda = alpha / E|Q_1(s, pi(s))|

with ``lambda`` treated as a constant (no gradient). ``noise_std`` and ``noise_clip`` are fractions of the
action box's half-width. The actor and both target networks are updated every ``policy_delay`` critic steps
(on the first one and every ``policy_delay``-th after it), the targets by Polyak averaging at rate ``tau``.
The actor is deterministic: ``tanh`` of an MLP mapped onto the action box; it is also the evaluation action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlgen.algos.critics import ObservationNormalizer, TwinQ, frozen_copy, polyak_update, require_continuous
from rlgen.config import ConfigError, require_at_least, require_positive
from rlgen.data import Episodes, Transitions
from rlgen.nets import MLP
from rlgen.tasks import TaskSpec
from rlgen.train.agent import Agent


@dataclass(frozen=True)
class TD3BCConfig:
    """The ``agent:`` block of a TD3+BC recipe; defaults are the paper's.

    :param hidden: widths of the actor and critic MLPs.
    :param actor_lr: Adam learning rate of the actor.
    :param critic_lr: Adam learning rate of the critics.
    :param gamma: discount.
    :param tau: Polyak rate of the target actor and critics.
    :param policy_delay: critic steps per actor (and target) step.
    :param noise_std: std of the target policy's smoothing noise, as a fraction of the box's half-width.
    :param noise_clip: the smoothing noise is clipped to +-this fraction of the box's half-width.
    :param alpha: weight of the Q term against behaviour cloning (``lambda = alpha / mean |Q|``).
    :param normalize_observations: standardise observations with the dataset's mean and std.
    """

    hidden: tuple[int, ...] = (256, 256)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    policy_delay: int = 2
    noise_std: float = 0.2
    noise_clip: float = 0.5
    alpha: float = 2.5
    normalize_observations: bool = True

    def __post_init__(self) -> None:
        require_positive(self, "agent", "actor_lr", "critic_lr", "alpha")
        require_at_least(self, "agent", 1, "policy_delay")
        require_at_least(self, "agent", 0.0, "noise_std", "noise_clip")
        for name in ("gamma", "tau"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"agent.{name} must be in [0, 1], got {getattr(self, name)}")


class Actor(nn.Module):
    """``pi(s) = low + (tanh(MLP(s)) + 1) / 2 * (high - low)``: a deterministic action inside the box."""

    def __init__(self, obs_dim: int, hidden: tuple[int, ...], act_low: np.ndarray, act_high: np.ndarray):
        super().__init__()
        self.body = MLP(obs_dim, hidden)
        self.out = nn.Linear(self.body.out_features, len(act_low))
        self.register_buffer("low", torch.as_tensor(act_low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(act_high, dtype=torch.float32))

    def forward(self, obs: Tensor) -> Tensor:
        unit = 0.5 * (torch.tanh(self.out(self.body(obs))) + 1.0)
        return self.low + unit * (self.high - self.low)


def actor_loss(q: Tensor, pi: Tensor, actions: Tensor, alpha: float) -> tuple[Tensor, Tensor, Tensor]:
    """TD3+BC's actor loss ``-lambda * mean(q) + mean((pi - actions)^2)`` from ``q = Q(s, pi(s))``, with
    ``lambda = alpha / mean|q|`` detached; returns ``(loss, lambda, bc_loss)``."""
    lam = alpha / q.abs().mean().detach()
    bc_loss = F.mse_loss(pi, actions)
    return -lam * q.mean() + bc_loss, lam, bc_loss


class TD3BC(Agent):
    """TD3+BC (see the module docstring): a critic step per batch, an actor step every ``policy_delay``."""

    Config = TD3BCConfig
    checkpointed = ("normalizer", "actor", "actor_target", "q", "q_target", "actor_optimizer", "q_optimizer")
    data_parallel = True

    def __init__(self, config: TD3BCConfig, task: TaskSpec, act_low: np.ndarray, act_high: np.ndarray,
                 device: torch.device):  # fmt: skip
        self.config, self.device = config, device
        self.act_low, self.act_high = act_low.astype(np.float32), act_high.astype(np.float32)
        obs_dim = task.obs_dim
        self.normalizer = ObservationNormalizer(obs_dim).to(device)
        self.actor = Actor(obs_dim, config.hidden, self.act_low, self.act_high).to(device)
        self.actor_target = frozen_copy(self.actor)
        self.q = TwinQ(obs_dim, len(act_low), config.hidden).to(device)
        self.q_target = frozen_copy(self.q)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr)
        self.q_optimizer = torch.optim.Adam(self.q.parameters(), lr=config.critic_lr)
        self.half_width = torch.as_tensor((self.act_high - self.act_low) / 2.0, device=device)
        self.updates = 0
        # The last actor step's scalars, logged on every step so that means over a log window are unbiased.
        self.actor_scalars: dict[str, Tensor] = {}

    @classmethod
    def create(cls, config: TD3BCConfig, task: TaskSpec, data: Episodes | None, device: torch.device) -> TD3BC:
        require_continuous("TD3+BC", task, data)
        low, high = task.action_bounds()
        agent = cls(config, task, low, high, device)
        if data is not None and config.normalize_observations:
            agent.normalizer.fit(data.observations)
        return agent

    def update(self, batch: Transitions) -> dict[str, Tensor | float]:
        c = self.config
        obs = self.normalizer(torch.as_tensor(batch.observations, device=self.device))
        next_obs = self.normalizer(torch.as_tensor(batch.next_observations, device=self.device))
        actions = torch.as_tensor(batch.actions, device=self.device)
        rewards = torch.as_tensor(batch.rewards, device=self.device)
        terminals = torch.as_tensor(batch.terminals, device=self.device)

        # Critics: TD towards the smaller target Q at the smoothed target action.
        with torch.no_grad():
            noise = (torch.randn_like(actions) * c.noise_std).clamp(-c.noise_clip, c.noise_clip) * self.half_width
            next_actions = (self.actor_target(next_obs) + noise).clamp(self.actor.low, self.actor.high)
            td_target = rewards + c.gamma * (1.0 - terminals) * self.q_target.min(next_obs, next_actions)
        q1, q2 = self.q(obs, actions)
        q_loss = F.mse_loss(q1, td_target) + F.mse_loss(q2, td_target)
        self.q_optimizer.zero_grad(set_to_none=True)
        q_loss.backward()
        self.q_optimizer.step()

        # Actor and targets, every policy_delay critic steps.
        if self.updates % c.policy_delay == 0:
            pi = self.actor(obs)
            loss, lam, bc_loss = actor_loss(self.q.q1(obs, pi), pi, actions, c.alpha)
            self.actor_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.actor_optimizer.step()
            polyak_update(self.q_target, self.q, c.tau)
            polyak_update(self.actor_target, self.actor, c.tau)
            self.actor_scalars = {"actor_loss": loss.detach(), "bc_loss": bc_loss.detach(), "lambda": lam}
        self.updates += 1
        return {"q_loss": q_loss.detach(), "q_mean": q1.detach().mean(), **self.actor_scalars}

    @torch.no_grad()
    def act(self, observations: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """The actor's action; TD3+BC's policy is deterministic, so ``deterministic`` changes nothing."""
        obs = self.normalizer(torch.as_tensor(observations, dtype=torch.float32, device=self.device))
        return self.actor(obs).cpu().numpy()

    def trainable_modules(self) -> list[nn.Module]:
        return [self.actor, self.q]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "updates": self.updates, "actor_scalars": self.actor_scalars}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.updates = int(state["updates"])
        self.actor_scalars = dict(state["actor_scalars"])
