"""What observations and actions may be, as the data record it: small, gymnasium-free space descriptions.

Episodes carry an observation space (a :class:`BoxSpace`) and an action space (a :class:`BoxSpace` for continuous
actions, a :class:`DiscreteSpace` for a discrete one). Data that records no spaces gets inferred ones that say only
what the arrays show: a box of their shape whose bounds are unknown (infinite), or a discrete space whose number of
actions is unknown. Files store a space as a small tree (:func:`space_to_tree`), shaped like Minari's JSON::

    {"type": "Box", "dtype": "float32", "shape": [3], "low": array([-1., -1., -1.]), "high": array([1., 1., 1.])}
    {"type": "Discrete", "n": 2, "start": 0}

>>> BoxSpace((3,), -1.0, 1.0)          # one bound for every element, or an array of the shape
>>> BoxSpace((11,)).has_bounds          # False: an unbounded box of 11 values
>>> task_spaces(load_task("cartpole"))  # (BoxSpace((4,)), DiscreteSpace(2)): the task file's declared spaces
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from rlgen.data.errors import DatasetError
from rlgen.tasks import TaskSpec


@dataclass(frozen=True, eq=False)
class BoxSpace:
    """A box of ``shape``: element-wise ``low``/``high`` bounds (float64 arrays of ``shape``, broadcast from what is
    given; an infinite bound leaves that side open) and the ``dtype`` name the source declared.

    :raises ValueError: for a bound that is NaN, does not broadcast to ``shape``, or a low above its high.
    """

    shape: tuple[int, ...]
    low: ArrayLike = -np.inf
    high: ArrayLike = np.inf
    dtype: str = "float32"

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if any(s < 0 for s in shape):
            raise ValueError(f"box shape {shape} has a negative size")
        dtype = np.dtype(self.dtype)
        if dtype.kind not in "iuf":
            raise ValueError(f"box dtype {dtype} is not numeric; expected an integer or float dtype")
        bounds = []
        for name, value in (("low", self.low), ("high", self.high)):
            try:
                array = np.broadcast_to(np.asarray(value, dtype=np.float64), shape).copy()
            except (TypeError, ValueError) as e:
                raise ValueError(f"box {name} of shape {np.shape(value)} does not fit shape {shape}: {e}") from e
            if np.isnan(array).any():
                raise ValueError(f"box {name} has a NaN bound")
            array.setflags(write=False)
            bounds.append(array)
        if (bounds[0] > bounds[1]).any():
            raise ValueError(f"box low {bounds[0].tolist()} is above high {bounds[1].tolist()} somewhere")
        for name, value in (("shape", shape), ("low", bounds[0]), ("high", bounds[1]), ("dtype", dtype.name)):
            object.__setattr__(self, name, value)

    @property
    def has_bounds(self) -> bool:
        """False for a box open on every side: its bounds are unknown (or there are none)."""
        return bool(np.isfinite(self.low).any() or np.isfinite(self.high).any())

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)``, float64 arrays of :attr:`shape`."""
        return self.low, self.high  # type: ignore[return-value]

    def same_bounds(self, other: Space) -> bool:
        """True if ``other`` is a box of the same shape and bounds, compared as float32 (the dtype of the data)."""
        return (
            isinstance(other, BoxSpace)
            and self.shape == other.shape
            and all(
                np.array_equal(np.float32(a), np.float32(b)) for a, b in zip(self.bounds(), other.bounds(), strict=True)
            )
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, BoxSpace)
            and (self.shape, self.dtype) == (other.shape, other.dtype)
            and all(np.array_equal(a, b) for a, b in zip(self.bounds(), other.bounds(), strict=True))
        )

    def __hash__(self) -> int:
        return hash((self.shape, self.dtype, self.low.tobytes(), self.high.tobytes()))  # type: ignore[union-attr]

    def __str__(self) -> str:
        def side(bound: np.ndarray) -> str:
            return str(float(bound.flat[0])) if bound.size and (bound == bound.flat[0]).all() else str(bound.tolist())

        low, high = self.bounds()
        return f"Box({side(low)}, {side(high)}, {self.shape}, {self.dtype})"


@dataclass(frozen=True)
class DiscreteSpace:
    """Actions ``start, start + 1, ..., start + n - 1``; ``n`` is ``None`` when the data does not record it."""

    n: int | None
    start: int = 0

    def __post_init__(self) -> None:
        for name, value, minimum in (("n", self.n, 1), ("start", self.start, None)):
            if value is None and name == "n":
                continue
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(f"discrete space {name} is {value!r}; expected an integer")
            if minimum is not None and value < minimum:
                raise ValueError(f"discrete space {name} is {value}; expected at least {minimum}")
            object.__setattr__(self, name, int(value))

    @property
    def has_bounds(self) -> bool:
        """False when the number of actions is unknown."""
        return self.n is not None

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(start, start + n - 1)`` as float64 scalars (the high side is infinite when ``n`` is unknown)."""
        high = np.inf if self.n is None else self.start + self.n - 1
        return np.float64(self.start), np.float64(high)  # type: ignore[return-value]

    def same_bounds(self, other: Space) -> bool:
        return isinstance(other, DiscreteSpace) and (self.n, self.start) == (other.n, other.start)

    def __str__(self) -> str:
        start = f", start={self.start}" if self.start else ""
        return f"Discrete({'n unknown' if self.n is None else self.n}{start})"


Space = BoxSpace | DiscreteSpace
SPACE_KEYS = ("observation_space", "action_space")


def inferred_space(array: np.ndarray) -> Space:
    """What ``array`` (``(N, ...)`` rows of one kind) shows of its space: a box of its row shape with unknown
    bounds, or for ``(N,)`` integers a discrete space of unknown size."""
    if array.dtype.kind in "iu" and array.ndim == 1:
        return DiscreteSpace(None)
    return BoxSpace(tuple(array.shape[1:]))


def fits(space: Space, array: np.ndarray) -> bool:
    """True if ``array`` (``(N, ...)`` rows) has the kind and row shape of ``space``."""
    discrete = array.dtype.kind in "iu" and array.ndim == 1
    if isinstance(space, DiscreteSpace):
        return discrete
    return not discrete and tuple(array.shape[1:]) == space.shape


def check_fits(space: Space, array: np.ndarray, where: str, key: str, rows: str) -> None:
    """Raise :class:`DatasetError` naming ``where`` and ``key`` if ``array`` (the data's ``rows``) does not fit."""
    if not fits(space, array):
        kind = "integers" if array.dtype.kind in "iu" else "values"
        raise DatasetError(f"{where}: key '{key}' is {space}, which does not fit the {rows} ({kind} of shape "
                           f"{('N', *array.shape[1:])})")  # fmt: skip


def check_declared(
    declared: Mapping[str, Space], observations: ArrayLike, actions: ArrayLike, where: str, prefix: str = ""
) -> None:
    """Check that the spaces a file ``declared`` (by :data:`SPACE_KEYS` key) fit its arrays, before they become
    :class:`~rlgen.data.episodes.Episodes` (which let a space without bounds follow the arrays); errors name
    ``where`` and the file's key ``prefix + key``."""
    for key, space in declared.items():
        rows, array = ("observations", observations) if key == "observation_space" else ("actions", actions)
        check_fits(space, np.asarray(array), where, prefix + key, rows)


def task_spaces(task: TaskSpec) -> tuple[BoxSpace, Space]:
    """The observation and action spaces ``task``'s file declares (observations unbounded, as the file gives no
    bounds; a continuous action box in float32, the dtype of the environments' boxes)."""
    observations = BoxSpace((task.obs_dim,))
    if task.discrete:
        return observations, DiscreteSpace(task.num_actions)
    low, high = task.action_bounds()
    return observations, BoxSpace((task.act_dim,), low, high)


# ---------------------------------------------------------------------------------------------- trees


def space_to_tree(space: Space) -> dict[str, Any]:
    """``space`` as a small tree of strings, ints and float64 arrays (see the module docstring)."""
    if isinstance(space, DiscreteSpace):
        return {"type": "Discrete", "n": space.n, "start": space.start}
    low, high = space.bounds()
    return {"type": "Box", "dtype": space.dtype, "shape": list(space.shape), "low": low.copy(), "high": high.copy()}


def space_from_tree(tree: Any, where: str, key: str) -> Space:
    """Inverse of :func:`space_to_tree`; anything else raises :class:`DatasetError` naming ``where`` and ``key``."""
    expected = {"Box": ("dtype", "high", "low", "shape", "type"), "Discrete": ("n", "start", "type")}
    kind = tree.get("type") if isinstance(tree, Mapping) else None
    if kind not in expected:
        raise DatasetError(f"{where}: key '{key}' is {_short(tree)}; expected a space: a mapping with 'type' "
                           f"Box or Discrete")  # fmt: skip
    if sorted(tree) != list(expected[kind]):
        raise DatasetError(f"{where}: key '{key}' has keys {sorted(tree)}; a {kind} space has "
                           f"{', '.join(expected[kind])}")  # fmt: skip
    try:
        if kind == "Discrete":
            return DiscreteSpace(tree["n"], tree["start"])
        shape = tree["shape"]
        if not isinstance(shape, list | tuple | np.ndarray) or not all(
            isinstance(s, int | np.integer) and not isinstance(s, bool) for s in shape
        ):
            raise ValueError(f"shape {shape!r} is not a list of integers")
        bounds = [np.asarray(tree[side]) for side in ("low", "high")]
        if any(b.dtype.kind not in "iuf" or b.shape != tuple(shape) for b in bounds):
            raise ValueError(f"low and high must be numbers of shape {tuple(shape)}")
        if not isinstance(tree["dtype"], str):
            raise ValueError(f"dtype {tree['dtype']!r} is not a dtype name")
        return BoxSpace(tuple(shape), bounds[0], bounds[1], tree["dtype"])
    except (TypeError, ValueError) as e:
        raise DatasetError(f"{where}: key '{key}' is not a valid {kind} space: {e}") from e


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
