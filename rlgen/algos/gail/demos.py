"""Expert demonstrations for imitation: a few trajectories from a dataset, subsampled to a few pairs each.

Long trajectories are thinned (source 004, sec. 2.6), so the learner sees where the expert goes without seeing
every step. A trajectory of ``T`` steps keeps ``P`` pairs at ``floor(o + k T / P)``, ``k = 0 .. P-1``, with one
random offset ``o`` in ``[0, T / P)``: evenly spread over the whole trajectory and never two at the same step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlgen.data import Episodes


@dataclass(frozen=True)
class Demonstrations:
    """Expert state-action pairs, one row each, and how each pair's trajectory ended.

    :param observations: ``(M, obs_dim)`` float32.
    :param actions: ``(M, act_dim)`` float32.
    :param episodes: ``(M,)`` index, in the source dataset, of the episode each pair came from.
    :param trajectory_lengths: ``(M,)`` steps in the source episode of each pair; default: its number of pairs
        here (every step kept).
    :param terminated: ``(M,)`` whether that episode ended by a true termination (not a time limit); default:
        none did.
    """

    observations: np.ndarray
    actions: np.ndarray
    episodes: np.ndarray
    trajectory_lengths: np.ndarray = None  # type: ignore[assignment]  # None: filled in on construction
    terminated: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.trajectory_lengths is None:
            _, owner, counts = np.unique(self.episodes, return_inverse=True, return_counts=True)
            object.__setattr__(self, "trajectory_lengths", counts[owner.reshape(-1)].astype(np.int64))
        if self.terminated is None:
            object.__setattr__(self, "terminated", np.zeros(len(self.episodes), dtype=bool))
        rows = [len(getattr(self, name)) for name in ("observations", "actions", "episodes", "trajectory_lengths",
                                                       "terminated")]  # fmt: skip
        if len(set(rows)) != 1:
            raise ValueError(f"demonstrations need one row per pair, got {rows[0]} observations, {rows[1]} actions, "
                             f"{rows[2]} episode indices, {rows[3]} trajectory lengths and {rows[4]} termination "
                             "flags")  # fmt: skip

    def __len__(self) -> int:
        return len(self.observations)

    @property
    def num_trajectories(self) -> int:
        return len(np.unique(self.episodes))

    def __getitem__(self, index: np.ndarray | slice) -> Demonstrations:
        return Demonstrations(self.observations[index], self.actions[index], self.episodes[index],
                              self.trajectory_lengths[index], self.terminated[index])  # fmt: skip


def subsample_demonstrations(episodes: Episodes, trajectories: int, pairs_per_trajectory: int | None,
                             rng: np.random.Generator) -> Demonstrations:  # fmt: skip
    """Pick ``trajectories`` distinct episodes of ``episodes`` at random and thin each (module docstring).

    :param pairs_per_trajectory: pairs kept per trajectory (all of a shorter one); ``None`` keeps every pair.
    :raises ValueError: for discrete actions, a non-positive count or more trajectories than the dataset has.
    """
    if episodes.discrete_actions:
        raise ValueError(f"{episodes.source}: demonstrations need continuous actions, the dataset's are discrete")
    if trajectories < 1:
        raise ValueError(f"trajectories must be >= 1, got {trajectories}")
    if trajectories > episodes.num_episodes:
        raise ValueError(f"{episodes.source}: asked for {trajectories} trajectories, the dataset has only "
                         f"{episodes.num_episodes} episodes")  # fmt: skip
    if pairs_per_trajectory is not None and pairs_per_trajectory < 1:
        raise ValueError(f"pairs_per_trajectory must be >= 1 (or null for every pair), got {pairs_per_trajectory}")
    chosen = np.sort(rng.choice(episodes.num_episodes, size=trajectories, replace=False))
    starts, lengths = episodes.episode_starts[chosen], episodes.episode_lengths[chosen]
    rows, owners = [], []
    for episode, start, length in zip(chosen, starts, lengths, strict=True):
        if pairs_per_trajectory is None or pairs_per_trajectory >= length:
            offsets = np.arange(length)
        else:
            stride = length / pairs_per_trajectory
            offsets = np.floor(rng.uniform(0.0, stride) + stride * np.arange(pairs_per_trajectory)).astype(np.int64)
        rows.append(start + offsets)
        owners.append(np.full(len(offsets), episode, dtype=np.int64))
    index = np.concatenate(rows)
    owner = np.concatenate(owners)
    last_steps = episodes.episode_starts[owner] + episodes.episode_lengths[owner] - 1
    return Demonstrations(episodes.observations[index].astype(np.float32),
                          episodes.actions[index].reshape(len(index), -1).astype(np.float32), owner,
                          episodes.episode_lengths[owner].astype(np.int64),
                          episodes.terminals[last_steps].astype(bool))  # fmt: skip
