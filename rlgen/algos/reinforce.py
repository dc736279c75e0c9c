"""REINFORCE (Williams 1992) with reward-to-go and a learned state-value baseline.

Each trainer step plays ``episodes_per_update`` whole episodes with the current policy and takes one gradient
step on::

    G_t = sum_{k >= t} gamma^(k-t) r_k                    (reward-to-go: past rewards carry no signal)
    loss = -mean(log pi(a_t|s_t) (G_t - b(s_t))) + value_coef * mean((b(s_t) - G_t)^2)

The baseline ``b`` does not depend on the action, so it leaves the gradient unbiased and only lowers its
variance. The estimator is strictly on-policy: with ``num_envs > 1``, episodes still running when the batch is
complete are abandoned (their steps still count as environment steps) rather than finished by the next policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rlgen.algos.estimators import returns_to_go
from rlgen.algos.online import PolicyGradientAgent, PolicyGradientConfig


@dataclass(frozen=True)
class ReinforceConfig(PolicyGradientConfig):
    """The ``agent:`` block of a REINFORCE recipe (see :class:`~rlgen.algos.online.PolicyGradientConfig`).

    :param episodes_per_update: whole episodes per gradient step.
    """

    episodes_per_update: int = 4
    grad_clip: float | None = None
    normalize_advantages: bool = True


@dataclass
class EpisodeBatch:
    """The steps of whole episodes, concatenated; ``returns`` are the rewards-to-go."""

    observations: Tensor
    raw_actions: Tensor
    returns: Tensor


class Reinforce(PolicyGradientAgent):
    """REINFORCE with a learned baseline (see the module docstring)."""

    Config = ReinforceConfig
    config: ReinforceConfig

    def sample(self, batch_size: int, rng: np.random.Generator) -> EpisodeBatch:
        """Play ``episodes_per_update`` episodes; ``batch_size`` is unused (episodes set the batch)."""
        if any(self.collector.actions):  # episodes begun by an older policy: start afresh, on-policy
            self.collector.restart(rng)
        n = self.collector.num_envs
        running: list[list[tuple[np.ndarray, np.ndarray, float]]] = [[] for _ in range(n)]
        done: list[list[tuple[np.ndarray, np.ndarray, float]]] = []
        while len(done) < self.config.episodes_per_update:
            raw, env_actions = self.explore(self.collector.current(rng))
            step = self.collector.step(env_actions, rng)
            for i in range(n):
                running[i].append((step.observations[i], raw[i], float(step.rewards[i])))
                if step.dones[i]:
                    done.append(running[i])
                    running[i] = []
        episodes = done[: self.config.episodes_per_update]
        returns = [returns_to_go(np.array([r for *_, r in ep], dtype=np.float32), _last_step(len(ep)),
                                 self.config.gamma) for ep in episodes]  # fmt: skip
        return EpisodeBatch(
            observations=self.tensor(np.stack([o for ep in episodes for o, _, _ in ep])),
            raw_actions=self.tensor(np.stack([a for ep in episodes for _, a, _ in ep])),
            returns=self.tensor(np.concatenate(returns)),
        )

    def update(self, batch: EpisodeBatch) -> dict[str, Tensor | float]:
        with torch.no_grad():
            advantages = batch.returns - self.value(batch.observations)
        return self.gradient_step(batch.observations, batch.raw_actions, advantages, batch.returns)


def _last_step(length: int) -> np.ndarray:
    ends = np.zeros(length, dtype=np.float32)
    ends[-1] = 1.0
    return ends
