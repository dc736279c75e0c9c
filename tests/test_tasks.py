"""Task files: loading, validation errors, declared spaces, normalised scores, dataset names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from rlgen.tasks import (
    ENVS_DIR_VAR,
    KNOWN_LEVELS,
    SECOND_EXPERT_LEVELS,
    TaskFileError,
    list_tasks,
    load_task,
    parse_dataset_name,
    tasks_root,
)

SHIPPED = ["cartpole", "halfcheetah", "hopper", "invertedpendulum", "walker2d"]
D4RL_REFS = {  # d4rl/infos.py REF_MIN_SCORE / REF_MAX_SCORE
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
}
MINIMAL = {
    "name": "toy",
    "env_id": "CartPole-v1",
    "max_episode_steps": 50,
    "discrete": True,
    "obs_dim": 4,
    "num_actions": 2,
    "reference": {"source": "d4rl", "min_score": 0.0, "max_score": 100.0},
    "levels": ["random"],
}


def write_recipe(root: Path, recipe: dict, name: str = "toy") -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "task.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture
def recipes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "recipes"
    root.mkdir()
    monkeypatch.setenv(ENVS_DIR_VAR, str(root))
    return root


def test_shipped_recipes_load() -> None:
    assert set(SHIPPED) <= set(list_tasks())
    for name in SHIPPED:
        spec = load_task(name, allow_untrained=True)
        assert spec.name == name and spec.task_dir == tasks_root() / name
        assert set(KNOWN_LEVELS) - set(SECOND_EXPERT_LEVELS) <= set(spec.levels) <= set(KNOWN_LEVELS)
        # (tests/test_envs.py checks every declared space against the real environment)
    assert set(load_task("hopper").levels) == set(KNOWN_LEVELS)  # the one task with a second expert so far


def test_shipped_action_bounds() -> None:
    assert load_task("hopper").action_bounds()[1].tolist() == [1.0, 1.0, 1.0]
    assert load_task("invertedpendulum").action_bounds()[0].tolist() == [-3.0]
    with pytest.raises(TaskFileError, match="discrete action space"):
        load_task("cartpole").action_bounds()


def test_action_box_is_declared_as_a_scalar_or_a_list(recipes: Path) -> None:
    box = {**MINIMAL, "env_id": "Pendulum-v1", "discrete": False, "obs_dim": 3, "act_dim": 2}
    write_recipe(recipes, {**box, "action_low": -2, "action_high": [1.0, 2.5]})
    low, high = load_task("toy").action_bounds()
    assert low.dtype == high.dtype == np.float32
    assert low.tolist() == [-2.0, -2.0] and high.tolist() == [1.0, 2.5]
    for change, message in [
        ({"action_high": [1.0]}, "action_high must be a finite number or a list of 2 finite numbers"),
        ({"action_low": float("inf")}, "action_low must be a finite number"),
        ({"action_low": True}, "action_low must be"),
        ({"action_low": [0, 3]}, "every low bound must be below its high bound"),
        ({"action_high": None}, "a continuous task needs action_high"),
    ]:
        recipe = {k: v for k, v in {**box, "action_low": -2, "action_high": [1.0, 2.5], **change}.items()
                  if v is not None}  # fmt: skip
        path = write_recipe(recipes, recipe)
        with pytest.raises(TaskFileError, match=message) as info:
            load_task("toy")
        assert str(path) in str(info.value)


@pytest.mark.parametrize("name", sorted(D4RL_REFS))
def test_normalized_score_uses_d4rl_constants(name: str) -> None:
    spec = load_task(name, allow_untrained=True)
    lo, hi = D4RL_REFS[name]
    assert (spec.ref_min_score, spec.ref_max_score, spec.reference_source) == (lo, hi, "d4rl")
    np.testing.assert_allclose(spec.normalized_score([lo, hi]), [0.0, 100.0], atol=1e-9)
    returns = np.array([1000.0, -50.0, 5000.0])
    np.testing.assert_allclose(spec.normalized_score(returns), 100 * (returns - lo) / (hi - lo))
    assert spec.normalized_score(1000.0).shape == ()


def test_measured_reference_comes_from_the_behavior_block() -> None:
    for name in ("cartpole", "invertedpendulum"):
        spec = load_task(name, allow_untrained=True)
        assert spec.reference_source == "measured"
        if spec.expert is None:
            with pytest.raises(TaskFileError, match="not trained yet"):
                spec.normalized_score(1.0)
            continue
        assert spec.random_return is not None
        assert spec.ref_min_score == spec.random_return.mean
        assert spec.ref_max_score == spec.expert.deterministic.mean
        assert spec.normalized_score(spec.expert.deterministic.mean) == pytest.approx(100.0)


def test_parse_dataset_name() -> None:
    spec, level = parse_dataset_name("hopper-medium-replay")
    assert (spec.name, level) == ("hopper", "medium-replay")
    spec, level = parse_dataset_name("halfcheetah-medium-expert")
    assert (spec.name, level) == ("halfcheetah", "medium-expert")
    assert parse_dataset_name("cartpole-random")[1] == "random"
    with pytest.raises(ValueError, match="no level 'bogus'.*medium-replay"):
        parse_dataset_name("hopper-bogus")
    with pytest.raises(ValueError, match="not <task>-<level>.*walker2d"):
        parse_dataset_name("ant-medium")
    assert parse_dataset_name("hopper-medium-replay-200k")[1] == "medium-replay"  # a size names no other level
    assert parse_dataset_name("hopper-two-experts-200k")[1] == "two-experts"
    assert parse_dataset_name("hopper-second-expert")[1] == "second-expert"


def test_task_files_record_their_generation_speed() -> None:
    assert load_task("hopper").generation_steps_per_second == 5500
    assert [load_task(t).level_steps("medium-expert") for t in ("hopper", "cartpole")] == [2_000_000, 2_000_000]


def test_termination_says_whether_episodes_end_at_a_goal() -> None:
    assert load_task("detour").termination == "goal"
    assert {load_task(t, allow_untrained=True).termination for t in SHIPPED} == {"failure"}  # the default


def test_unknown_task_lists_valid_names() -> None:
    with pytest.raises(KeyError, match="hopper"):
        load_task("antmaze")


def test_tasks_root_from_environment(recipes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_recipe(recipes, MINIMAL)
    assert tasks_root() == recipes and list_tasks() == ["toy"]
    spec = load_task("toy")
    assert (spec.discrete, spec.num_actions, spec.act_dim, spec.max_episode_steps) == (True, 2, 1, 50)
    monkeypatch.setenv(ENVS_DIR_VAR, str(recipes / "missing"))
    with pytest.raises(FileNotFoundError, match=ENVS_DIR_VAR):
        tasks_root()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"env_id": ""}, "env_id must be a non-empty string"),
        ({"env_id": None}, "missing key(s) env_id"),
        ({"max_episode_steps": 0}, "max_episode_steps must be >= 1, got 0"),
        ({"levels": ["random", "medium-rare"]}, "levels must be distinct names out of random, medium"),
        ({"discrete": "yes"}, "discrete must be true or false"),
        ({"num_actions": None}, "a discrete task needs num_actions"),
        ({"name": "other"}, "name is 'other' but the task folder is 'toy'"),
        ({"reference": {"source": "paper"}}, "reference.source must be one of ['d4rl', 'measured'], got 'paper'"),
        ({"reference": {"source": "d4rl", "min_score": 1.0}}, "reference: source d4rl needs min_score and max_score"),
        ({"reference": {"source": "d4rl", "min_score": 5, "max_score": 1}}, "must exceed min score"),
        ({"reference": {"source": "measured"}}, "needs the generated 'behavior' block"),
        ({"training": [1, 2]}, "training must be a mapping"),
        ({"behavior": {"random": {"mean": 1.0}}}, "missing key(s) behavior.expert, behavior.medium, behavior.replay"),
        ({"colour": "red"}, "unknown key(s) colour"),
        ({"datasets": {"steps_per_second": 0}}, "datasets: steps_per_second must be > 0, got 0"),
        ({"datasets": {"steps": {"medium": 5}}}, "unknown key(s) datasets.steps"),
        ({"termination": "success"}, "termination must be one of ['failure', 'goal'], got 'success'"),
    ],
)
def test_recipe_validation_names_file_and_field(recipes: Path, change: dict, message: str) -> None:
    recipe = {**MINIMAL, **change}
    recipe = {k: v for k, v in recipe.items() if v is not None}
    path = write_recipe(recipes, recipe)
    with pytest.raises(TaskFileError) as info:
        load_task("toy")
    assert str(path) in str(info.value) and message in str(info.value)


def test_behavior_block_is_checked(recipes: Path) -> None:
    stats = {"mean": 1.0, "std": 0.0, "episodes": 10, "seed": 0}

    def record(file: str) -> dict:
        return {"file": file, "train_steps": 0, "deterministic": stats, "stochastic": stats}

    folder = write_recipe(recipes, MINIMAL).parent
    (folder / "a.npz").write_bytes(b"")
    (folder / "b.npz").write_bytes(b"")
    behavior = {"random": stats, "expert": record("b.npz"), "medium": record("a.npz"), "replay": [record("a.npz")]}
    levels = list(KNOWN_LEVELS)
    write_recipe(recipes, {**MINIMAL, "levels": levels, "behavior": behavior})
    spec = load_task("toy")
    assert spec.expert is not None and spec.expert.path == folder / "b.npz"
    assert spec.policies_for_level("medium-expert") == (spec.medium, spec.expert)
    assert spec.policies_for_level("medium-replay") == spec.replay
    assert spec.policies_for_level("random") == ()
    write_recipe(recipes, {**MINIMAL, "behavior": behavior})
    with pytest.raises(ValueError, match="no level 'expert'"):  # MINIMAL only offers 'random'
        load_task("toy").policies_for_level("expert")

    assert spec.second_expert is None
    with pytest.raises(TaskFileError, match="no trained behaviour policy for level 'two-experts'.*--second-expert"):
        spec.policies_for_level("two-experts")
    (folder / "c.npz").write_bytes(b"")
    second = {"algo": "ppo", "seed": 1, "expert": record("c.npz")}
    write_recipe(recipes, {**MINIMAL, "levels": levels, "behavior": behavior, "second_expert": second})
    spec = load_task("toy")
    assert spec.second_expert is not None and spec.second_expert.path == folder / "c.npz"
    assert spec.policies_for_level("two-experts") == (spec.expert, spec.second_expert)
    assert spec.policies_for_level("switching-experts") == (spec.expert, spec.second_expert)
    assert spec.policies_for_level("second-expert") == (spec.second_expert,)
    assert spec.level_steps("two-experts") == 1_000_000
    write_recipe(recipes, {**MINIMAL, "behavior": behavior, "second_expert": {**second, "seed": 0}})
    with pytest.raises(TaskFileError, match="second_expert.seed 0 is behavior.seed"):
        load_task("toy")
    write_recipe(recipes, {**MINIMAL, "second_expert": second})
    with pytest.raises(TaskFileError, match="second_expert needs the behavior block"):
        load_task("toy")

    write_recipe(recipes, {**MINIMAL, "behavior": {**behavior, "replay": [record("b.npz")]}})
    with pytest.raises(TaskFileError, match="must end with the medium policy a.npz"):
        load_task("toy")
    write_recipe(recipes, {**MINIMAL, "behavior": {**behavior, "expert": record("gone.npz")}})
    with pytest.raises(TaskFileError, match="behavior.expert.file names .*gone.npz, which does not exist"):
        load_task("toy")


def test_untrained_levels_explain_how_to_train(recipes: Path) -> None:
    write_recipe(recipes, {**MINIMAL, "levels": list(KNOWN_LEVELS)})
    with pytest.raises(TaskFileError, match="train_behavior.py toy"):
        load_task("toy").policies_for_level("medium")


def test_malformed_yaml(recipes: Path) -> None:
    path = write_recipe(recipes, MINIMAL)
    path.write_text("name: toy\nlevels: [random\n")
    with pytest.raises(TaskFileError, match=f"{path}: cannot read task file"):
        load_task("toy")
