"""The episodes container: flat per-step arrays plus episode boundaries, validated on construction.

Layout (``N`` steps in ``E`` episodes)::

    observations        (N, *obs_shape) float32      the observation each action was taken in
    actions             (N, *act_shape) float32      continuous actions, or (N,) int64 for a discrete action
    rewards             (N,)  float32 or float64     kept in the dtype the source stored, for lossless round trips
    terminals           (N,)  bool                   the MDP ended after this step (no bootstrapping)
    timeouts            (N,)  bool                   the episode was cut after this step (time limit, truncation)
    episode_ends        (E,)  int64                  exclusive end index of each episode; the last one is N
    final_observations  (E, *obs_shape) or None      the observation after each episode's last step, where known
    infos               {key: (N, ...)}              per-step extras, aligned with ``observations``
    final_infos         {key: (E, ...)}              the extra row some infos have after the last step (Minari)
    metadata            nested dict                  free-form; ``ref_min_score``/``ref_max_score``/``env_id`` are read
    observation_space   BoxSpace                     what observations may be (see :mod:`rlgen.data.spaces`)
    action_space        BoxSpace or DiscreteSpace    what actions may be

Spaces not given are inferred from the arrays, with unknown bounds. A space with unknown bounds says no more
than the arrays' shape, so it follows them (``dataclasses.replace`` with actions of another shape re-infers it);
a space with bounds must fit the arrays.

Flags may only be set on an episode's last step. An episode may end with neither flag (a D4RL episode cut
by the end of the file or a Minari episode that was stopped externally); such an episode has no valid
transition out of its last step unless its final observation is known.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from rlgen.data.errors import DatasetError
from rlgen.data.spaces import SPACE_KEYS, BoxSpace, Space, check_fits, fits, inferred_space


@dataclass(frozen=True, eq=False)
class Episodes:
    """Validated episodes; treat the arrays as read-only (views and readers share them without copying).

    :param source: where the data came from (a file or dataset id); every validation error names it.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    episode_ends: np.ndarray
    final_observations: np.ndarray | None = None
    infos: Mapping[str, np.ndarray] = field(default_factory=dict)
    final_infos: Mapping[str, np.ndarray] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<arrays>"
    # None (not given) is replaced by the inferred space on construction: consumers always see a space.
    observation_space: BoxSpace = None  # type: ignore[assignment]
    action_space: Space = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        check = _Checker(self.source)
        obs = check.real("observations", self.observations, np.float32, min_ndim=2)
        n = len(obs)
        act = check.actions(self.actions, n)
        rew = check.rewards(self.rewards, n)
        term = check.flags("terminals", self.terminals, n)
        tout = check.flags("timeouts", self.timeouts, n)
        ends = check.episode_ends(self.episode_ends, n)
        for name, flags in (("terminals", term), ("timeouts", tout)):
            inside = np.flatnonzero(flags)
            bad = inside[~np.isin(inside, ends - 1)]
            if len(bad):
                raise DatasetError(
                    f"{self.source}: key '{name}' is set at step {bad[0]}, which is not the last step of its "
                    f"episode; flags may only end an episode"
                )
        final = None
        if self.final_observations is not None:
            final = check.real("final_observations", self.final_observations, np.float32, min_ndim=2)
            check.shape("final_observations", final, (len(ends), *obs.shape[1:]), "one row per episode")
        infos = {k: check.rows(f"infos/{k}", np.asarray(v), n) for k, v in self.infos.items()}
        final_infos = {}
        for k, v in self.final_infos.items():
            if k not in infos:
                raise DatasetError(f"{self.source}: final_infos key '{k}' has no per-step 'infos/{k}'")
            v = np.asarray(v)
            check.shape(f"final_infos/{k}", v, (len(ends), *infos[k].shape[1:]), "one row per episode")
            final_infos[k] = v
        obs_space = self._space("observation_space", self.observation_space, obs, "observations")
        act_space = self._space("action_space", self.action_space, act, "actions")
        for name, value in (
            ("observations", obs), ("actions", act), ("rewards", rew), ("terminals", term), ("timeouts", tout),
            ("episode_ends", ends), ("final_observations", final), ("infos", infos), ("final_infos", final_infos),
            ("metadata", dict(self.metadata)), ("observation_space", obs_space), ("action_space", act_space),
        ):  # fmt: skip
            object.__setattr__(self, name, value)

    def _space(self, key: str, space: Any, array: np.ndarray, rows: str) -> Space:
        if space is None or (isinstance(space, Space) and not space.has_bounds and not fits(space, array)):
            return inferred_space(array)
        if key == "observation_space" and not isinstance(space, BoxSpace):
            raise DatasetError(f"{self.source}: key '{key}' is {space}; observations are a box (BoxSpace)")
        if not isinstance(space, Space):
            raise DatasetError(f"{self.source}: key '{key}' is a {type(space).__name__}; expected a BoxSpace or "
                               f"DiscreteSpace (rlgen.data.spaces)")  # fmt: skip
        check_fits(space, array, self.source, key, rows)
        return space

    # ------------------------------------------------------------------------------------------ shape

    @property
    def num_steps(self) -> int:
        return len(self.observations)

    @property
    def num_episodes(self) -> int:
        return len(self.episode_ends)

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return tuple(self.observations.shape[1:])

    @property
    def action_shape(self) -> tuple[int, ...]:
        """``()`` for a discrete action."""
        return tuple(self.actions.shape[1:])

    @property
    def discrete_actions(self) -> bool:
        return bool(np.issubdtype(self.actions.dtype, np.integer))

    @property
    def episode_starts(self) -> np.ndarray:
        return np.concatenate([[0], self.episode_ends[:-1]]).astype(np.int64)

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(self.episode_ends, prepend=0)

    def episode_index(self) -> np.ndarray:
        """``(N,)`` index of the episode each step belongs to."""
        return np.repeat(np.arange(self.num_episodes), self.episode_lengths)

    def episode_returns(self) -> np.ndarray:
        """``(E,)`` undiscounted return of each episode (float64 sums)."""
        if self.num_episodes == 0:
            return np.zeros(0)
        return np.add.reduceat(self.rewards.astype(np.float64), self.episode_starts)

    def next_observations(self) -> np.ndarray:
        """``(N, *obs_shape)``: ``observations[i + 1]`` inside an episode and the final observation at its end."""
        if self.final_observations is None:
            raise DatasetError(f"{self.source}: the final observation of each episode is not known")
        nxt = np.empty_like(self.observations)
        nxt[:-1] = self.observations[1:]
        if self.num_episodes:
            nxt[self.episode_ends - 1] = self.final_observations
        return nxt

    # ------------------------------------------------------------------------------------------ checks

    def check_shapes(
        self,
        observation_shape: Sequence[int] | None = None,
        action_shape: Sequence[int] | None = None,
        expected_by: str = "the task",
    ) -> None:
        """Raise :class:`DatasetError` naming the source, key and expected shape if the data does not fit.

        :param action_shape: ``()`` for a discrete action.
        """
        for key, got, want in (
            ("observations", self.observation_shape, observation_shape),
            ("actions", self.action_shape, action_shape),
        ):
            if want is not None and tuple(got) != tuple(want):
                raise DatasetError(
                    f"{self.source}: key '{key}' has shape {(self.num_steps, *got)}; "
                    f"{expected_by} expects {('N', *tuple(want))}"
                )

    def identical(self, other: Episodes) -> bool:
        """True if every array (dtype, shape and bytes), every info, the metadata and the spaces are the same."""

        def same(a: Any, b: Any) -> bool:
            if isinstance(a, Mapping) and isinstance(b, Mapping):
                return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
            if isinstance(a, np.ndarray | np.generic) or isinstance(b, np.ndarray | np.generic):
                if type(a) is not type(b):
                    return False
                a, b = np.asarray(a), np.asarray(b)
                return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
            if isinstance(a, list | tuple) and isinstance(b, list | tuple):
                return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
            return type(a) is type(b) and a == b

        names = [f.name for f in dataclasses.fields(self) if f.name != "source"]
        return all(same(getattr(self, n), getattr(other, n)) for n in names)

    # ------------------------------------------------------------------------------------------ building

    def select(self, episodes: Sequence[int] | np.ndarray) -> Episodes:
        """A new container with the given episodes, in the given order."""
        idx = np.asarray(episodes, dtype=np.int64).reshape(-1)
        starts, lengths = self.episode_starts[idx], self.episode_lengths[idx]
        steps = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths, strict=True)] or [[]])
        steps = steps.astype(np.int64)
        return dataclasses.replace(
            self,
            observations=self.observations[steps],
            actions=self.actions[steps],
            rewards=self.rewards[steps],
            terminals=self.terminals[steps],
            timeouts=self.timeouts[steps],
            episode_ends=np.cumsum(lengths),
            final_observations=None if self.final_observations is None else self.final_observations[idx],
            infos={k: v[steps] for k, v in self.infos.items()},
            final_infos={k: v[idx] for k, v in self.final_infos.items()},
        )

    @classmethod
    def random(
        cls, steps: int, obs_dim: int, act_dim: int, episode_length: int, seed: int = 0, **metadata: Any
    ) -> Episodes:
        """``steps`` standard-normal observations and rewards with uniform actions in ``[-1, 1]``, cut into
        episodes of ``episode_length`` steps (the last keeps the remainder), each ending in a timeout; for smoke
        tests and throughput benchmarks, where only the shapes matter. ``metadata`` is stored with them.

        >>> Episodes.random(5_000, obs_dim=11, act_dim=3, episode_length=1000).num_episodes
        5
        """
        if steps < 1 or episode_length < 1:
            raise ValueError(f"Episodes.random needs steps and episode_length >= 1, got {steps} and {episode_length}")
        rng = np.random.default_rng(seed)
        ends = np.append(np.arange(episode_length, steps, episode_length), steps)
        return cls(
            observations=rng.normal(size=(steps, obs_dim)).astype(np.float32),
            actions=rng.uniform(-1, 1, (steps, act_dim)).astype(np.float32),
            rewards=rng.normal(size=steps).astype(np.float32),
            terminals=np.zeros(steps, bool),
            timeouts=np.isin(np.arange(steps), ends - 1),
            episode_ends=ends,
            final_observations=rng.normal(size=(len(ends), obs_dim)).astype(np.float32),
            metadata=metadata,
        )

    @classmethod
    def concatenate(
        cls, parts: Sequence[Episodes], metadata: Mapping[str, Any] | None = None, source: str | None = None
    ) -> Episodes:
        """Episodes of ``parts`` one after the other; final observations and infos are kept where all have them.

        :param metadata: metadata of the result (default: the first part's).
        :raises DatasetError: if the parts declare different bounds (spaces that differ but have no bounds give
            the result inferred ones).
        """
        if not parts:
            raise ValueError("concatenate needs at least one Episodes")
        spaces: dict[str, Space | None] = {}
        for key in SPACE_KEYS:
            given = [getattr(p, key) for p in parts]
            spaces[key] = given[0] if all(s == given[0] for s in given) else None
            if spaces[key] is None and any(s.has_bounds for s in given):
                listed = ", ".join(f"{p.source}: {s}" for p, s in zip(parts, given, strict=True))
                raise DatasetError(f"cannot concatenate episodes of different {key.replace('_', ' ')}s ({listed})")
        offsets = np.cumsum([0] + [p.num_steps for p in parts[:-1]])
        finals = [p.final_observations for p in parts]
        info_keys = set.intersection(*(set(p.infos) for p in parts))
        final_info_keys = set.intersection(*(set(p.final_infos) for p in parts))
        return cls(
            observations=np.concatenate([p.observations for p in parts]),
            actions=np.concatenate([p.actions for p in parts]),
            rewards=np.concatenate([p.rewards for p in parts]),
            terminals=np.concatenate([p.terminals for p in parts]),
            timeouts=np.concatenate([p.timeouts for p in parts]),
            episode_ends=np.concatenate([p.episode_ends + o for p, o in zip(parts, offsets, strict=True)]),
            final_observations=None if any(f is None for f in finals) else np.concatenate(finals),
            infos={k: np.concatenate([p.infos[k] for p in parts]) for k in sorted(info_keys)},
            final_infos={k: np.concatenate([p.final_infos[k] for p in parts]) for k in sorted(final_info_keys)},
            metadata=dict(parts[0].metadata if metadata is None else metadata),
            source=source or " + ".join(p.source for p in parts),
            **spaces,  # type: ignore[arg-type]
        )


def episode_ends_from_flags(done: np.ndarray) -> np.ndarray:
    """Episode ends for a flat stream whose episodes end where ``done`` is set (and at the end of the stream)."""
    ends = np.flatnonzero(done) + 1
    if len(done) and (len(ends) == 0 or ends[-1] != len(done)):
        ends = np.append(ends, len(done))
    return ends.astype(np.int64)


def check_finite(source: str, key: str, array: np.ndarray) -> None:
    """Raise :class:`DatasetError` naming ``source``, ``key`` and the first index of a NaN or inf."""
    if array.dtype.kind != "f":
        return
    ok = np.isfinite(array)
    if not ok.all():
        first = np.unravel_index(int(np.argmin(ok.reshape(-1))), array.shape)
        index = tuple(int(i) for i in first)
        raise DatasetError(f"{source}: key '{key}' has a non-finite value ({array[first]}) at index {index}")


def check_actions_in_box(
    episodes: Episodes,
    low: ArrayLike | None = None,
    high: ArrayLike | None = None,
    *,
    source: str | None = None,
    rtol: float = 1e-6,
) -> None:
    """Raise :class:`DatasetError` naming the source, episode, step and value of the first action outside a box.

    :param low: the box's lower bounds (e.g. a gymnasium ``Box``'s ``low``), broadcast to one action; an
        infinite bound leaves that side open. Likewise ``high``. Both default to the bounds of
        ``episodes.action_space`` (a discrete space's are its first and last action).
    :param source: names the data in the error (default ``episodes.source``).
    :param rtol: tolerance relative to the box's width in each dimension, for float rounding: data stored in
        float32, bounds compared in float64.
    """
    source = episodes.source if source is None else source
    if low is None or high is None:
        own = episodes.action_space.bounds()
        low, high = own[0] if low is None else low, own[1] if high is None else high
    shape = episodes.action_shape
    try:
        lo = np.broadcast_to(np.asarray(low, dtype=np.float64), shape)
        hi = np.broadcast_to(np.asarray(high, dtype=np.float64), shape)
    except ValueError as e:
        raise ValueError(
            f"{source}: action box bounds of shapes {np.shape(low)} and {np.shape(high)} do not fit "
            f"actions of shape {shape}"
        ) from e
    if np.isnan(lo).any() or np.isnan(hi).any() or (lo > hi).any():
        raise ValueError(f"{source}: action box [{lo}, {hi}] is not a box (NaN bounds or low > high)")
    width = hi - lo
    tol = rtol * np.where(np.isfinite(width), width, 0.0)  # an open side needs none
    outside = (episodes.actions < lo - tol) | (episodes.actions > hi + tol)
    rows = outside.reshape(episodes.num_steps, -1).any(axis=1)
    if not rows.any():
        return
    step = int(np.argmax(rows))
    dim = np.unravel_index(int(np.argmax(outside[step].reshape(-1))), shape)
    episode = int(np.searchsorted(episodes.episode_ends, step, side="right"))
    at = f"dimension {', '.join(str(int(d)) for d in dim)}, " if shape else ""
    raise DatasetError(
        f"{source}: key 'actions' has value {episodes.actions[(step, *dim)]} at episode {episode}, step "
        f"{step - int(episodes.episode_starts[episode])} (row {step}), {at}outside the action box "
        f"[{lo[dim]}, {hi[dim]}]; {int(rows.sum())} of {episodes.num_steps} steps are outside"
    )


def check_action_space(
    episodes: Episodes, expected: Space, *, source: str | None = None, expected_by: str = "the task"
) -> None:
    """Refuse ``episodes`` whose action space has other bounds than ``expected`` (naming both), then check every
    action against ``expected``'s bounds with :func:`check_actions_in_box`. Episodes whose action bounds are
    unknown are checked by their actions alone.

    :raises DatasetError: naming ``source`` (default ``episodes.source``) and ``expected_by``.
    """
    source = episodes.source if source is None else source
    own = episodes.action_space
    if own.has_bounds and not own.same_bounds(expected):
        raise DatasetError(f"{source}: key 'action_space' is {own}, but {expected_by} declares {expected}; give "
                           f"data recorded with the task's action space")  # fmt: skip
    check_actions_in_box(episodes, *expected.bounds(), source=source)


class _Checker:
    """Dtype / shape / finiteness checks whose errors name the source and the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> DatasetError:
        return DatasetError(f"{self.source}: key '{key}' {message}")

    def array(self, key: str, value: Any) -> np.ndarray:
        array = np.asarray(value)
        if array.dtype.hasobject or array.dtype.kind not in "biuf":
            raise self.fail(key, f"has dtype {array.dtype}; expected a numeric array")
        return array

    def shape(self, key: str, array: np.ndarray, expected: tuple[int, ...], why: str) -> None:
        if array.shape != expected:
            raise self.fail(key, f"has shape {array.shape}; expected {expected} ({why})")

    def rows(self, key: str, array: np.ndarray, n: int) -> np.ndarray:
        if array.ndim == 0 or len(array) != n:
            rows = "a scalar" if array.ndim == 0 else f"{len(array)} rows"
            raise self.fail(key, f"has {rows}; expected {n} (one per step, like 'observations')")
        return array

    def finite(self, key: str, array: np.ndarray) -> None:
        check_finite(self.source, key, array)

    def real(self, key: str, value: Any, dtype: type, min_ndim: int) -> np.ndarray:
        array = self.array(key, value)
        if array.dtype.kind == "b" or array.ndim < min_ndim:
            raise self.fail(key, f"has dtype {array.dtype} and shape {array.shape}; expected real values "
                                 f"with at least {min_ndim} dimensions")  # fmt: skip
        self.finite(key, array)
        with np.errstate(over="ignore"):  # an overflow becomes inf, reported by the check below
            out = np.asarray(array, dtype=dtype)
        self.finite(key, out)
        return out

    def actions(self, value: Any, n: int) -> np.ndarray:
        array = self.rows("actions", self.array("actions", value), n)
        if array.dtype.kind in "iu":
            if array.ndim != 1:
                raise self.fail("actions", f"are integers of shape {array.shape}; a discrete action is (N,)")
            return array.astype(np.int64, copy=False)
        return self.real("actions", array, np.float32, min_ndim=1)

    def rewards(self, value: Any, n: int) -> np.ndarray:
        array = self.rows("rewards", self.array("rewards", value), n)
        if array.ndim != 1:
            raise self.fail("rewards", f"has shape {array.shape}; expected ({n},)")
        if array.dtype.kind != "f":
            array = array.astype(np.float32)
        self.finite("rewards", array)
        return array

    def flags(self, key: str, value: Any, n: int) -> np.ndarray:
        array = self.rows(key, self.array(key, value), n)
        if array.ndim != 1:
            raise self.fail(key, f"has shape {array.shape}; expected ({n},)")
        if array.dtype.kind != "b":
            bad = np.flatnonzero((array != 0) & (array != 1))
            if len(bad):
                raise self.fail(key, f"has value {array[bad[0]]} at index {bad[0]}; expected 0/1 or booleans")
            array = array.astype(bool)
        return array

    def episode_ends(self, value: Any, n: int) -> np.ndarray:
        array = self.array("episode_ends", value)
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise self.fail("episode_ends", f"has dtype {array.dtype} and shape {array.shape}; expected (E,) ints")
        array = array.astype(np.int64, copy=False)
        if n == 0:
            if len(array):
                raise self.fail("episode_ends", "must be empty when there are no steps")
            return array
        if len(array) == 0 or array[-1] != n:
            raise self.fail("episode_ends", f"must end with the number of steps {n}")
        if np.any(np.diff(array, prepend=0) <= 0):
            raise self.fail("episode_ends", "must be strictly increasing and positive (no empty episodes)")
        return array
