"""rlgen.rollout.envs: environments from task files, declared spaces checked, vector envs and their resets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from rlgen.rollout import MujocoWarning, make_env, make_vector_env
from rlgen.rollout.envs import reset_envs
from rlgen.tasks import TaskFileError, TaskSpec, list_tasks, load_task


def changed(name: str, **fields: object) -> TaskSpec:
    """A shipped task with some recipe fields replaced (as if its task.yaml said so)."""
    return dataclasses.replace(load_task(name, allow_untrained=True), **fields)


@pytest.mark.parametrize("name", list_tasks())
def test_every_shipped_recipe_declares_the_spaces_of_its_real_env(name: str) -> None:
    spec = load_task(name, allow_untrained=True)
    env = make_env(spec)  # raises if any declared space disagrees; checked explicitly below as well
    try:
        assert env.spec.max_episode_steps == spec.max_episode_steps
        assert env.observation_space.shape == (spec.obs_dim,)
        if spec.discrete:
            assert env.action_space == gym.spaces.Discrete(spec.num_actions)
        else:
            low, high = spec.action_bounds()
            assert env.action_space.shape == (spec.act_dim,)
            np.testing.assert_array_equal(env.action_space.low, low)
            np.testing.assert_array_equal(env.action_space.high, high)
    finally:
        env.close()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (changed("cartpole", obs_dim=5), "declares obs_dim=5, num_actions=2"),
        (changed("cartpole", num_actions=3), "num_actions=3"),
        (changed("invertedpendulum", act_dim=2), "act_dim=2"),
        (changed("invertedpendulum", action_high=(1.0,)), "action_high=[1.0]"),
        (changed("invertedpendulum", discrete=True, num_actions=2), "num_actions=2"),
    ],
    ids=["obs_dim", "num_actions", "act_dim", "action_high", "discrete"],
)
def test_a_declared_space_that_disagrees_with_the_env_names_the_recipe(spec: TaskSpec, message: str) -> None:
    with pytest.raises(TaskFileError, match=r"envs/\w+/task.yaml: .* but the recipe declares") as info:
        make_env(spec)
    assert message in str(info.value)


def test_env_kwargs_and_overrides_reach_the_env() -> None:
    spec = changed("invertedpendulum", env_kwargs={"reset_noise_scale": 0.5})
    env = make_env(spec)
    assert env.unwrapped._reset_noise_scale == 0.5
    env.close()
    env = make_env(spec, reset_noise_scale=0.25)
    assert env.unwrapped._reset_noise_scale == 0.25
    env.close()


def test_vector_env_autoresets_in_the_same_step() -> None:
    env = make_vector_env(changed("cartpole", max_episode_steps=5), 3)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, _, terminated, truncated, info = env.step(np.zeros(3, dtype=np.int64))
    done = terminated | truncated
    assert done.all() and truncated[~terminated].all()  # every env ended by step 5 (time limit at the latest)
    assert "final_obs" in info and info["final_obs"].shape == (3,) and info["final_obs"][0].shape == (4,)
    # SAME_STEP: the returned observations already start the next episodes.
    assert not np.array_equal(obs, np.stack(info["final_obs"]))
    env.close()
    with pytest.raises(ValueError, match="num_envs must be >= 1"):
        make_vector_env(load_task("cartpole"), 0)


def test_reset_envs_resets_only_the_masked_envs_with_their_seeds() -> None:
    spec = load_task("cartpole")
    env = make_vector_env(spec, 3, autoreset_mode="Disabled")
    first = reset_envs(env, np.ones(3, dtype=bool), [10, 11, 12])
    single = make_env(spec)
    for i, seed in enumerate((10, 11, 12)):
        np.testing.assert_array_equal(first[i], single.reset(seed=seed)[0])
    moved, *_ = env.step(np.ones(3, dtype=np.int64))
    again = reset_envs(env, np.array([False, True, False]), [None, 10, None])
    np.testing.assert_array_equal(again[1], first[0])  # env 1 restarted from seed 10
    np.testing.assert_array_equal(again[[0, 2]], moved[[0, 2]])  # the others kept their state
    env.close()
    single.close()


def test_mujoco_warnings_become_python_warnings_not_log_files(tmp_path: Path) -> None:
    # HalfCheetah's XML uses a deprecated attribute: MuJoCo's default handler would write MUJOCO_LOG.TXT here.
    with pytest.warns(MujocoWarning, match="settotalmass"):
        make_env(load_task("halfcheetah")).close()
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
