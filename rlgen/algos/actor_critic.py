"""Advantage actor-critic (A2C, Mnih et al. 2016, synchronous): a policy on an rlgen head and a learned value,
updated from short rollouts of several environments stepped together.

Each trainer step collects ``n_steps`` steps from each of ``num_envs`` environments, then takes one gradient
step on::

    A_t = GAE(gamma, lam)          (lam = 1: the n-step advantage bootstrapped from V at the rollout's end)
    loss = -mean(log pi(a_t|s_t) A_t) + value_coef * mean((V(s_t) - (A_t + V(s_t)))^2) - entropy_coef * H

The critic replaces REINFORCE's Monte Carlo return by bootstrapping (chapter 10.3 of the source notes):
biased, much lower variance, and no need to wait for an episode to end. Discrete tasks use a categorical
policy; continuous ones any rlgen head (Gaussian by default; DLML and AdaCat also have log_prob and entropy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rlgen.algos.estimators import gae
from rlgen.algos.online import PolicyGradientAgent, PolicyGradientConfig
from rlgen.config import ConfigError


@dataclass(frozen=True)
class A2CConfig(PolicyGradientConfig):
    """The ``agent:`` block of an A2C recipe (see :class:`~rlgen.algos.online.PolicyGradientConfig`).

    :param n_steps: steps per environment in each rollout (one gradient step per rollout).
    :param gae_lambda: GAE's lambda (1: n-step returns; SB3's A2C default).
    """

    n_steps: int = 5
    gae_lambda: float = 1.0
    num_envs: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise ConfigError(f"agent.gae_lambda must be in [0, 1], got {self.gae_lambda}")


@dataclass
class Rollout:
    """``n_steps x num_envs`` transitions; ``raw_actions`` are the head's samples (before any clipping)."""

    observations: Tensor
    raw_actions: Tensor
    rewards: Tensor
    next_observations: Tensor
    terminals: Tensor
    dones: Tensor


class A2C(PolicyGradientAgent):
    """Synchronous advantage actor-critic (see the module docstring)."""

    Config = A2CConfig
    config: A2CConfig

    def sample(self, batch_size: int, rng: np.random.Generator) -> Rollout:
        """One rollout; ``batch_size`` is unused (the batch is ``n_steps * num_envs`` transitions)."""
        raws, steps = [], []
        for _ in range(self.config.n_steps):
            raw, env_actions = self.explore(self.collector.current(rng))
            raws.append(raw)
            steps.append(self.collector.step(env_actions, rng))

        def stacked(name: str) -> Tensor:
            return self.tensor(np.stack([getattr(step, name) for step in steps]))

        return Rollout(stacked("observations"), self.tensor(np.stack(raws)), stacked("rewards"),
                       stacked("next_observations"), stacked("terminals"), stacked("dones"))  # fmt: skip

    def update(self, batch: Rollout) -> dict[str, Tensor | float]:
        c = self.config
        with torch.no_grad():
            values = self.value(batch.observations)
            next_values = self.value(batch.next_observations) * (1.0 - batch.terminals)
            advantages = gae(batch.rewards, values, next_values, batch.dones, c.gamma, c.gae_lambda)
            returns = advantages + values
        return self.gradient_step(batch.observations.flatten(0, 1), batch.raw_actions.flatten(0, 1),
                                  advantages.flatten(), returns.flatten())  # fmt: skip
