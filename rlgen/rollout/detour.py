"""Detour: a point in the plane must reach a goal behind a wall, passing it on the left or on the right.

The two ways round are equally good (the task is mirror-symmetric), so demonstrations that take both make the
action distribution bimodal *in the same states*: at the start, half the demonstrations head left and half head
right. A policy that averages the two heads straight into the wall. This is the textbook case for an expressive
action head, in the smallest continuous-control form: 2-D position, 2-D velocity action, no physics engine.

Geometry (all fixed): start ``(0, -1)`` plus a uniform offset of at most ``START_NOISE`` per coordinate, goal
``(0, 1)`` (reached within ``GOAL_RADIUS``), a wall ``|x| <= WALL_HALF_WIDTH, |y| <= WALL_HALF_THICKNESS`` in
between, and an arena ``[-ARENA, ARENA]^2`` that positions are clipped to.

Each step moves the point by ``STEP * clip(action, -1, 1)``. Reward: the decrease of the shortest-path distance
to the goal around the wall (:func:`path_length`; the straight-line distance would reward driving up to the wall
and waiting there), plus ``GOAL_BONUS`` on reaching it (the episode ends); a move whose segment touches the wall
ends the episode with ``CRASH_PENALTY`` instead (the point does not move). So a return telescopes to
``L(start) - L(end)`` plus the bonus or the penalty: about 3.2 for a policy that goes round, about -0.4 for one
that drives into the wall. Both sides shorten the path equally, so the reward does not prefer either.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

START = np.array([0.0, -1.0])
GOAL = np.array([0.0, 1.0])
START_NOISE = 0.05
GOAL_RADIUS = 0.1
WALL_HALF_WIDTH = 1.0
WALL_HALF_THICKNESS = 0.05
ARENA = 1.5
STEP = 0.1
GOAL_BONUS = 1.0
CRASH_PENALTY = -1.0
MAX_EPISODE_STEPS = 100


def segment_hits_wall(p: np.ndarray, q: np.ndarray, margin: float = 0.0) -> bool:
    """Whether the segment ``p -> q`` meets the wall rectangle, closed, or shrunk by ``margin`` on every side (a
    small margin lets a segment run along the wall's sides); Liang-Barsky clipping of the segment."""
    d = q - p
    t0, t1 = 0.0, 1.0
    half = (WALL_HALF_WIDTH - margin, WALL_HALF_THICKNESS - margin)
    for axis in range(2):
        if d[axis] == 0.0:
            if abs(p[axis]) > half[axis]:
                return False
            continue
        a = (-half[axis] - p[axis]) / d[axis]
        b = (half[axis] - p[axis]) / d[axis]
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
        if t0 > t1:
            return False
    return True


_CORNERS = np.array([[sx * WALL_HALF_WIDTH, sy * WALL_HALF_THICKNESS] for sx in (-1, 1) for sy in (-1, 1)])
_SIDE_MARGIN = 1e-9


def _visible(p: np.ndarray, q: np.ndarray) -> bool:
    return not segment_hits_wall(p, q, _SIDE_MARGIN)


def _corner_path_lengths() -> np.ndarray:
    """Shortest path length from each wall corner to the goal (Floyd-Warshall on the corners and the goal)."""
    nodes = np.vstack([_CORNERS, GOAL])
    n = len(nodes)
    dist = np.full((n, n), np.inf)
    for i in range(n):
        for j in range(n):
            if i == j or _visible(nodes[i], nodes[j]):
                dist[i, j] = np.linalg.norm(nodes[i] - nodes[j])
    for k in range(n):
        dist = np.minimum(dist, dist[:, k : k + 1] + dist[k : k + 1, :])
    return dist[:-1, -1]


_CORNER_TO_GOAL = _corner_path_lengths()


def path_length(p: np.ndarray) -> float:
    """Length of the shortest path from ``p`` to the goal that does not cross the wall.

    A shortest path round a convex obstacle runs straight to the goal or to a corner it can see, then along the
    corners: so it is the direct distance if the goal is visible, else the best visible corner's distance plus
    that corner's (precomputed) path length.
    """
    if _visible(p, GOAL):
        return float(np.linalg.norm(GOAL - p))
    via_corners = [
        float(np.linalg.norm(c - p)) + rest for c, rest in zip(_CORNERS, _CORNER_TO_GOAL, strict=True) if _visible(p, c)
    ]
    if not via_corners:
        raise ValueError(f"Detour: position {p.tolist()} is inside the wall")
    return min(via_corners)


class DetourEnv(gym.Env):
    """See the module docstring. Observation: the position ``(x, y)``; action: a velocity in ``[-1, 1]^2``."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-ARENA, ARENA, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._position = START.copy()
        self._path_length = path_length(self._position)  # of the current position: each step's reward needs it

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._position = START + self.np_random.uniform(-START_NOISE, START_NOISE, size=2)
        self._path_length = path_length(self._position)
        return self._position.astype(np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        move = STEP * np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        if not np.isfinite(move).all():
            raise ValueError(f"Detour: action must be finite, got {action!r}")
        old = self._position
        new = np.clip(old + move, -ARENA, ARENA)
        if segment_hits_wall(old, new):
            return old.astype(np.float32), CRASH_PENALTY, True, False, {"crashed": True}
        remaining = path_length(new)
        reward = self._path_length - remaining
        self._position, self._path_length = new, remaining
        reached = float(np.linalg.norm(new - GOAL)) < GOAL_RADIUS
        if reached:
            reward += GOAL_BONUS
        return new.astype(np.float32), reward, reached, False, {"reached": reached}


def passing_side(positions: np.ndarray) -> int:
    """Which way round the wall a path went: ``-1`` left, ``+1`` right, by the sign of ``x`` at its first
    position beyond the wall (``y`` above it); ``0`` if it never got there.

    :param positions: the path's positions in order, shape ``(T, 2)``.
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    beyond = np.flatnonzero(positions[:, 1] > WALL_HALF_THICKNESS)
    return 0 if len(beyond) == 0 else int(np.sign(positions[beyond[0], 0]))
