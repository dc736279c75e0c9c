"""Return and advantage estimators of the online agents: reward-to-go (REINFORCE) and GAE (A2C, GAIL)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


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
