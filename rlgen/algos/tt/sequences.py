"""Trajectories as the Trajectory Transformer reads them: one row ``[s, a, r, V]`` per transition.

``V_t = sum_{k > t} discount^(k - t - 1) r_k`` is the discounted reward-to-go *after* step ``t``, computed
from the data layer's reward-to-go ``R_t`` (which includes ``r_t``) as ``(R_t - r_t) / discount``. Every
dimension of a row is one token of the sequence, so a segment of ``L`` transitions has ``L * D`` tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlgen.data import Episodes, SegmentBatch, Segments


@dataclass(frozen=True)
class TransitionLayout:
    """Where each part of a transition row sits: ``[obs_dim observations, act_dim actions, reward, value]``."""

    obs_dim: int
    act_dim: int

    @property
    def dim(self) -> int:
        """Tokens per transition, D."""
        return self.obs_dim + self.act_dim + 2

    @property
    def actions(self) -> slice:
        return slice(self.obs_dim, self.obs_dim + self.act_dim)

    @property
    def reward(self) -> int:
        return self.obs_dim + self.act_dim

    @property
    def value(self) -> int:
        return self.obs_dim + self.act_dim + 1

    def weights(self, observation: float, action: float, reward: float, value: float) -> np.ndarray:
        """``(D,)`` loss weight of every dimension of a transition."""
        return np.array([observation] * self.obs_dim + [action] * self.act_dim + [reward, value], dtype=np.float32)


def transition_rows(
    observations: np.ndarray, actions: np.ndarray, rewards: np.ndarray, returns_to_go: np.ndarray, discount: float
) -> np.ndarray:
    """``(..., D)`` float32 rows ``[s, a, r, V]`` from arrays with matching leading shapes."""
    values = (returns_to_go - rewards) / discount
    return np.concatenate([observations, actions, rewards[..., None], values[..., None]], axis=-1, dtype=np.float32)


class TransitionSequences:
    """Training batches for the Trajectory Transformer: segments of ``length`` transitions as rows.

    ``sample`` returns ``(rows (B, L, D), mask (B, L))``; steps past an episode's end are zero rows with
    ``mask`` False (their tokens carry no loss).
    """

    def __init__(self, episodes: Episodes, length: int, discount: float):
        self.segments = Segments(episodes, length, discount)
        self.discount = discount

    def all_rows(self) -> np.ndarray:
        """``(N, D)`` rows of every step of the dataset (for bounds and quantile bins)."""
        ep = self.segments.episodes
        return transition_rows(ep.observations, ep.actions, ep.rewards.astype(np.float32),
                               self.segments.returns_to_go, self.discount)  # fmt: skip

    def rows(self, batch: SegmentBatch) -> tuple[np.ndarray, np.ndarray]:
        rows = transition_rows(batch.observations, batch.actions, batch.rewards, batch.returns_to_go, self.discount)
        return np.where(batch.mask[..., None], rows, 0.0).astype(np.float32), batch.mask

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return self.rows(self.segments.sample(batch_size, rng))
