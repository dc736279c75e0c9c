"""Transitions ``(s, a, r, s', terminal)`` with D4RL's ``qlearning_dataset`` semantics.

Inside an episode ``next_observations[i] = observations[i + 1]``. The last step of an episode depends on
what is known about the observation after it:

* final observation unknown (a D4RL file without ``next_observations``): exactly D4RL. A step ending in a
  timeout is dropped (its next state was never recorded); a terminal step is kept, with the next row of the
  file as ``next_observations`` (never used: the terminal flag stops bootstrapping); an episode end with
  neither flag, and the very last step of the data, are dropped.
* final observation known (Minari datasets, D4RL files with ``next_observations``, generated data): every
  step is kept with its true next observation. A timeout is then an ordinary non-terminal transition, which
  is the correct target for bootstrapping past a time limit; pass ``drop_timeouts=True`` to drop them anyway
  and get D4RL's transition set.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from rlgen.data.episodes import Episodes


@dataclass(frozen=True)
class Transitions:
    """Aligned arrays, one row per transition. ``terminals`` is 1.0 where no bootstrapping is allowed."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray  # float32
    next_observations: np.ndarray
    terminals: np.ndarray  # float32, as value-learning targets use it
    timeouts: np.ndarray  # bool
    steps: np.ndarray  # int64 index of each transition's step in the episodes

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, index: np.ndarray | slice) -> Transitions:
        return Transitions(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def sample(self, batch_size: int, rng: np.random.Generator) -> Transitions:
        """``batch_size`` transitions drawn uniformly with replacement."""
        if len(self) == 0:
            raise ValueError("cannot sample from an empty set of transitions")
        return self[rng.integers(0, len(self), size=batch_size)]


def transitions(episodes: Episodes, drop_timeouts: bool | None = None) -> Transitions:
    """The transitions of ``episodes``; see the module docstring for episode ends.

    :param drop_timeouts: drop transitions that end in a timeout. Default: only when the final observation
        is unknown (then it must be, as there is no next state to use).
    """
    n = episodes.num_steps
    known = episodes.final_observations is not None
    if drop_timeouts is False and not known:
        raise ValueError(f"{episodes.source}: timeouts cannot be kept: the observation after them is not known")
    drop_timeouts = not known if drop_timeouts is None else drop_timeouts
    last = np.zeros(n, dtype=bool)
    last[episodes.episode_ends - 1] = True
    keep = np.ones(n, dtype=bool)
    if known:
        next_obs = episodes.next_observations()
    else:
        next_obs = np.empty_like(episodes.observations)
        next_obs[:-1] = episodes.observations[1:]
        keep &= ~last | episodes.terminals  # an unflagged end has no next state
        keep[-1:] = False  # nor has the last row
    if drop_timeouts:
        keep &= ~episodes.timeouts
    steps = np.flatnonzero(keep)
    return Transitions(
        observations=episodes.observations[steps],
        actions=episodes.actions[steps],
        rewards=episodes.rewards[steps].astype(np.float32),
        next_observations=next_obs[steps],
        terminals=episodes.terminals[steps].astype(np.float32),
        timeouts=episodes.timeouts[steps],
        steps=steps,
    )
