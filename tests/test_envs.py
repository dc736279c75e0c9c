"""rlgen.rollout.envs: environments from task recipes, declared spaces checked, vector envs and their resets."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

from rlgen.rollout import MujocoWarning, make_env, make_vector_env
from rlgen.rollout.envs import reset_envs
from rlgen.tasks import ENVS_DIR_VAR, RecipeError, list_tasks, load_task

TOY = {
    "name": "toy",
    "env_id": "CartPole-v1",
    "max_episode_steps": 50,
    "discrete": True,
    "obs_dim": 4,
    "num_actions": 2,
    "reference": {"source": "d4rl", "min_score": 0.0, "max_score": 100.0},
    "levels": ["random"],
}
PENDULUM = {**TOY, "env_id": "Pendulum-v1", "discrete": False, "obs_dim": 3, "act_dim": 1, "action_low": -2.0,
            "action_high": 2.0}  # fmt: skip


@pytest.fixture(autouse=True)
def _tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # MuJoCo may write MUJOCO_LOG.TXT into the working directory


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """``toy(recipe)`` writes ``recipes/toy/task.yaml`` under ``$RLGEN_ENVS_DIR`` and loads it."""
    monkeypatch.setenv(ENVS_DIR_VAR, str(tmp_path / "recipes"))

    def write(recipe: dict):  # noqa: ANN202
        folder = tmp_path / "recipes" / "toy"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "task.yaml").write_text(yaml.safe_dump(recipe))
        return load_task("toy")

    return write


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
    ("recipe", "message"),
    [
        ({**TOY, "obs_dim": 5}, "declares obs_dim=5, num_actions=2"),
        ({**TOY, "num_actions": 3}, "num_actions=3"),
        ({**PENDULUM, "act_dim": 2}, "act_dim=2"),
        ({**PENDULUM, "action_high": 1.0}, "action_high=[1.0]"),
        ({**PENDULUM, "discrete": True, "num_actions": 2}, "num_actions=2"),
    ],
)
def test_a_declared_space_that_disagrees_with_the_env_names_the_recipe(toy, recipe: dict, message: str) -> None:
    spec = toy(recipe)
    with pytest.raises(RecipeError, match=r"toy/task.yaml: .* but the recipe declares") as info:
        make_env(spec)
    assert message in str(info.value)


def test_env_kwargs_and_overrides_reach_the_env(toy) -> None:
    spec = toy({**PENDULUM, "env_kwargs": {"g": 3.0}})
    env = make_env(spec)
    assert env.unwrapped.g == 3.0
    env.close()
    env = make_env(spec, g=5.0)
    assert env.unwrapped.g == 5.0
    env.close()


def test_vector_env_autoresets_in_the_same_step(toy) -> None:
    env = make_vector_env(toy({**TOY, "max_episode_steps": 5}), 3)
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
        make_vector_env(toy(TOY), 0)


def test_reset_envs_resets_only_the_masked_envs_with_their_seeds(toy) -> None:
    spec = toy(TOY)
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
