"""The Detour task: geometry, rewards, crashes and the shortest path that shapes its reward."""

from __future__ import annotations

import numpy as np
import pytest

from rlgen.rollout import detour, make_env
from rlgen.tasks import load_task


def test_path_length_is_direct_in_sight_of_the_goal_and_goes_round_the_wall_otherwise() -> None:
    assert detour.path_length(np.array([0.3, 0.5])) == pytest.approx(np.hypot(0.3, 0.5))
    corner = np.array([detour.WALL_HALF_WIDTH, detour.WALL_HALF_THICKNESS])
    below = np.array([0.0, -1.0])
    expected = (
        np.linalg.norm(below - corner * [1, -1]) + 2 * detour.WALL_HALF_THICKNESS + np.linalg.norm(detour.GOAL - corner)
    )
    assert detour.path_length(below) == pytest.approx(expected)
    # Mirror-symmetric: neither side is shorter.
    for p in np.random.default_rng(0).uniform(-1.4, 1.4, size=(50, 2)):
        if abs(p[0]) <= detour.WALL_HALF_WIDTH and abs(p[1]) <= detour.WALL_HALF_THICKNESS:
            continue
        assert detour.path_length(p) == pytest.approx(detour.path_length(p * [-1, 1]))
    # Never shorter than the straight line.
    assert detour.path_length(below) > np.linalg.norm(detour.GOAL - below)


def test_a_move_through_the_wall_crashes_even_if_it_jumps_over_it() -> None:
    assert detour.segment_hits_wall(np.array([0.0, -0.06]), np.array([0.0, 0.06]))  # over the whole thickness
    assert not detour.segment_hits_wall(np.array([-2.0, -0.06]), np.array([-1.5, 0.06]))
    env = make_env(load_task("detour"))
    obs, _ = env.reset(seed=0)
    done, total = False, 0.0
    while not done:  # straight up: into the wall
        obs, reward, terminated, truncated, info = env.step(np.array([0.0, 1.0], dtype=np.float32))
        total += reward
        done = terminated or truncated
    assert info.get("crashed") and terminated and total < 0


def test_going_round_reaches_the_goal_and_the_return_telescopes() -> None:
    env = make_env(load_task("detour"))
    for side in (-1.0, 1.0):
        obs, _ = env.reset(seed=3)
        start = obs.astype(np.float64)
        total, done = 0.0, False
        while not done:
            p = obs.astype(np.float64)
            clear = detour.WALL_HALF_WIDTH + 0.15  # waypoints beside the wall's corners, then the goal
            if abs(p[0]) < clear - 0.05 and p[1] < 0:
                target = np.array([side * clear, -detour.WALL_HALF_THICKNESS - 0.1])
            elif p[1] < detour.WALL_HALF_THICKNESS + 0.1:
                target = np.array([side * clear, detour.WALL_HALF_THICKNESS + 0.2])
            else:
                target = detour.GOAL
            direction = target - p
            obs, reward, terminated, truncated, info = env.step(
                (direction / np.abs(direction).max()).astype(np.float32)
            )
            total += reward
            done = terminated or truncated
        assert info["reached"] and not truncated
        end = obs.astype(np.float64)
        expected = detour.path_length(start) - detour.path_length(end) + detour.GOAL_BONUS
        assert total == pytest.approx(expected, abs=1e-5)


def test_passing_side_reads_which_way_round_the_wall_a_path_went() -> None:
    up = np.linspace(-1.0, 1.0, 21)
    for side in (-1, 1):
        path = np.stack([side * 1.2 * np.sin(np.pi * (up + 1.0) / 2.0), up], -1)  # a bow round one end of the wall
        assert detour.passing_side(path) == side
    assert detour.passing_side(np.stack([np.zeros(5), np.linspace(-1.0, -0.1, 5)], -1)) == 0  # stuck below it
    # The side is where the path first gets beyond the wall, not where it ends.
    assert detour.passing_side(np.array([[0.0, -1.0], [-1.1, 0.0], [-1.1, 0.2], [0.5, 0.9]])) == -1
