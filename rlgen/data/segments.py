"""Fixed-length segments of episodes for sequence models (Trajectory Transformer, Decision Transformer).

A segment starts at any step and covers ``length`` consecutive steps of the same episode; steps past the
episode's end are zero-padded and marked ``mask = False``. Each step carries its discounted reward-to-go
``R_t = sum_{k >= t} discount^(k - t) r_k``, summed to the end of its episode (no bootstrapping past a
timeout). Trajectory Transformer's value target excludes the current reward: ``V_t = (R_t - r_t) / discount``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlgen.data.episodes import Episodes


def reward_to_go(rewards: np.ndarray, episode_ends: np.ndarray, discount: float) -> np.ndarray:
    """``(N,)`` float64 discounted reward-to-go of every step, within its episode.

    Vectorised across episodes: one pass per position counted from the episode end (as many passes as the
    longest episode has steps), each updating that position of every episode at once.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    out = np.zeros_like(rewards)
    ends = np.asarray(episode_ends, dtype=np.int64)
    lengths = np.diff(ends, prepend=0)
    for k in range(int(lengths.max(initial=0))):
        idx = ends[lengths > k] - 1 - k
        out[idx] = rewards[idx] + (discount * out[idx + 1] if k else 0.0)
    return out


@dataclass(frozen=True)
class SegmentBatch:
    """A batch of ``B`` segments of ``L`` steps; padded steps are zero with ``mask`` False."""

    observations: np.ndarray  # (B, L, *obs_shape) float32
    actions: np.ndarray  # (B, L, *act_shape)
    rewards: np.ndarray  # (B, L) float32
    returns_to_go: np.ndarray  # (B, L) float32
    terminals: np.ndarray  # (B, L) bool
    timesteps: np.ndarray  # (B, L) int64 step index within the episode
    mask: np.ndarray  # (B, L) bool, True on real steps


class Segments:
    """All segments of ``length`` steps of ``episodes``, one starting at every step, gathered on demand.

    :param discount: discount of the reward-to-go.
    """

    def __init__(self, episodes: Episodes, length: int, discount: float = 0.99) -> None:
        if length < 1:
            raise ValueError(f"segment length must be >= 1, got {length}")
        self.episodes, self.length, self.discount = episodes, length, discount
        self.returns_to_go = reward_to_go(episodes.rewards, episodes.episode_ends, discount).astype(np.float32)
        lengths = episodes.episode_lengths
        self._episode_start = np.repeat(episodes.episode_starts, lengths)
        self._episode_end = np.repeat(episodes.episode_ends, lengths)

    def __len__(self) -> int:
        return self.episodes.num_steps

    def get(self, starts: np.ndarray) -> SegmentBatch:
        """The segments starting at the given step indices."""
        starts = np.asarray(starts, dtype=np.int64)
        idx = starts[:, None] + np.arange(self.length)
        mask = idx < self._episode_end[starts][:, None]
        idx = np.where(mask, idx, starts[:, None])  # any in-range row; zeroed below

        def gather(array: np.ndarray) -> np.ndarray:
            out = array[idx]
            out[~mask] = 0
            return out

        ep = self.episodes
        return SegmentBatch(
            observations=gather(ep.observations),
            actions=gather(ep.actions),
            rewards=gather(ep.rewards).astype(np.float32),
            returns_to_go=gather(self.returns_to_go),
            terminals=gather(ep.terminals),
            timesteps=np.where(mask, idx - self._episode_start[starts][:, None], 0),
            mask=mask,
        )

    def sample(self, batch_size: int, rng: np.random.Generator) -> SegmentBatch:
        """``batch_size`` segments with uniformly drawn start steps."""
        return self.get(rng.integers(0, len(self), size=batch_size))
