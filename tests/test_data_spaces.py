"""Episodes carry their spaces: round trips through every format, inference for files without them, the
launcher's comparison with the task's declared spaces, and malformed space records named by file and key."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from rlgen.cli import main
from rlgen.data import (
    BoxSpace,
    DatasetError,
    DiscreteSpace,
    Episodes,
    check_actions_in_box,
    load_dataset,
    read_d4rl,
    read_minari_api,
    read_minari_hdf5,
    read_npz,
    task_spaces,
    write_d4rl,
    write_minari,
    write_npz,
)
from rlgen.data.hdf5 import write_tree
from rlgen.rollout.generate import generate
from rlgen.runs import load_training_data
from rlgen.tasks import load_task

PENDULUM_BOX = BoxSpace((1,), -3.0, 3.0)  # InvertedPendulum's action box, as its task file declares it


def pendulum_episodes(action_space: BoxSpace | None = None, scale: float = 2.0, **spaces: object) -> Episodes:
    """Two InvertedPendulum-shaped episodes (4 + 3 steps) with actions in ``[-scale, scale]``."""
    rng = np.random.default_rng(0)
    n = 7
    return Episodes(
        observations=rng.normal(size=(n, 4)).astype(np.float32),
        actions=rng.uniform(-scale, scale, (n, 1)).astype(np.float32),
        rewards=np.ones(n, np.float32),
        terminals=np.r_[np.zeros(3, bool), [True], np.zeros(3, bool)],
        timeouts=np.r_[np.zeros(6, bool), [True]],
        episode_ends=np.array([4, 7]),
        final_observations=rng.normal(size=(2, 4)).astype(np.float32),
        metadata={"task": "invertedpendulum", "env_id": "InvertedPendulum-v5"},
        source="pendulum",
        action_space=action_space,
        **spaces,  # type: ignore[arg-type]
    )


def discrete_episodes(action_space: DiscreteSpace | None = None, top: int = 1) -> Episodes:
    """CartPole-shaped episodes whose actions run up to ``top``."""
    actions = np.array([0, 1, top, 0, 1], np.int64)
    return dataclasses.replace(pendulum_episodes(), observations=np.zeros((5, 4), np.float32), actions=actions,
                               rewards=np.ones(5, np.float32), terminals=np.zeros(5, bool),
                               timeouts=np.r_[np.zeros(4, bool), [True]], episode_ends=np.array([5]),
                               final_observations=None, metadata={}, action_space=action_space)  # fmt: skip


# ------------------------------------------------------------------------------------------------ the spaces


def test_spaces_validate_compare_and_print():
    box = BoxSpace((2,), [-1, 0], 2.5)
    assert box.low.tolist() == [-1.0, 0.0] and box.high.tolist() == [2.5, 2.5] and box.has_bounds
    assert box == BoxSpace((2,), np.array([-1.0, 0.0]), [2.5, 2.5]) and box != BoxSpace((2,), [-1, 0], 2.5, "float64")
    assert len({box, BoxSpace((2,), [-1, 0], 2.5)}) == 1
    assert str(box) == "Box([-1.0, 0.0], 2.5, (2,), float32)" and str(PENDULUM_BOX) == "Box(-3.0, 3.0, (1,), float32)"
    assert not BoxSpace((3,)).has_bounds and BoxSpace((3,), 0.0).has_bounds  # one finite side is a bound
    assert str(DiscreteSpace(None)) == "Discrete(n unknown)"
    assert str(DiscreteSpace(3, start=1)) == "Discrete(3, start=1)"
    assert DiscreteSpace(3, 1).bounds() == (1, 3) and not DiscreteSpace(None).has_bounds
    for bad, message in [
        (lambda: BoxSpace((2,), [0, 1, 2]), "does not fit shape"),
        (lambda: BoxSpace((1,), np.nan), "NaN"),
        (lambda: BoxSpace((1,), 1, -1), "above high"),
        (lambda: DiscreteSpace(0), "at least 1"),
        (lambda: DiscreteSpace(2.5), "expected an integer"),  # type: ignore[arg-type]
    ]:
        with pytest.raises(ValueError, match=message):
            bad()


def test_declared_spaces_of_the_task_files():
    assert task_spaces(load_task("invertedpendulum")) == (BoxSpace((4,)), PENDULUM_BOX)
    assert task_spaces(load_task("cartpole")) == (BoxSpace((4,)), DiscreteSpace(2))


def test_episodes_infer_spaces_and_check_given_ones():
    episodes = pendulum_episodes()
    assert episodes.observation_space == BoxSpace((4,)) and episodes.action_space == BoxSpace((1,))
    assert discrete_episodes().action_space == DiscreteSpace(None)
    # a space without bounds says no more than the arrays: it follows them through dataclasses.replace
    assert dataclasses.replace(episodes, actions=np.zeros((7, 2), np.float32)).action_space == BoxSpace((2,))
    unfit = r"pendulum: key 'action_space' is Box\(-3.0, 3.0, \(1,\), float32\), which does not fit the actions"
    with pytest.raises(DatasetError, match=unfit + r" \(values of shape \('N', 2\)\)"):
        dataclasses.replace(pendulum_episodes(PENDULUM_BOX), actions=np.zeros((7, 2), np.float32))
    with pytest.raises(DatasetError, match="key 'action_space' is Discrete\\(2\\), which does not fit"):
        pendulum_episodes(DiscreteSpace(2))  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="key 'observation_space' is Discrete\\(2\\); observations are a box"):
        pendulum_episodes(observation_space=DiscreteSpace(2))
    kept = pendulum_episodes(PENDULUM_BOX)
    assert kept.select([1]).action_space == PENDULUM_BOX
    assert Episodes.concatenate([kept, kept]).action_space == PENDULUM_BOX
    with pytest.raises(DatasetError, match="different action spaces .*Box\\(-2.0, 2.0"):
        Episodes.concatenate([kept, pendulum_episodes(BoxSpace((1,), -2.0, 2.0))])


def test_check_actions_in_box_takes_the_box_from_the_episodes():
    check_actions_in_box(pendulum_episodes(PENDULUM_BOX))
    check_actions_in_box(pendulum_episodes(scale=100.0))  # unknown bounds: every action fits
    with pytest.raises(DatasetError, match=r"outside the action box \[-1.0, 1.0\]"):
        check_actions_in_box(pendulum_episodes(BoxSpace((1,), -1.0, 1.0)))
    with pytest.raises(DatasetError, match=r"value 2 at episode 0, step 2 .*outside the action box \[0.0, 1.0\]"):
        check_actions_in_box(discrete_episodes(DiscreteSpace(2), top=2))


# ------------------------------------------------------------------------------------------------ round trips


@pytest.fixture
def declared() -> Episodes:
    """Episodes declaring an action box and an observation box bounded on some sides only."""
    return pendulum_episodes(
        BoxSpace((1,), -3.0, 3.0), observation_space=BoxSpace((4,), [-np.inf, -1.0, 0.0, -np.inf], np.inf)
    )


def test_spaces_round_trip_through_every_format(declared, tmp_path):
    for episodes in (declared, discrete_episodes(DiscreteSpace(3, start=0))):
        write_minari(episodes, "test/spaces/x-v0", force=True)
        read_back = [
            read_minari_hdf5("test/spaces/x-v0"),
            read_minari_api("test/spaces/x-v0"),
            load_dataset("test/spaces/x-v0"),  # through the npz cache
            read_d4rl(write_d4rl(episodes, tmp_path / "x.hdf5", force=True)),
            read_npz(write_npz(episodes, tmp_path / "x.npz", force=True)),
        ]
        for back in read_back:
            assert back.identical(episodes), back.source
            assert (back.observation_space, back.action_space) == (episodes.observation_space, episodes.action_space)
    # an unknown number of actions is written to Minari (which needs one) as the largest action + 1
    write_minari(discrete_episodes(top=2), "test/spaces/d-v0")
    assert read_minari_hdf5("test/spaces/d-v0").action_space == DiscreteSpace(3)


def test_d4rl_files_keep_spaces_in_metadata_only_when_they_say_more_than_the_arrays(declared, tmp_path):
    with h5py.File(write_d4rl(declared, tmp_path / "x.hdf5"), "r") as f:
        assert f["metadata/action_space/low"][()].tolist() == [-3.0]
        assert f["metadata/observation_space/type"][()] == b"Box"
    inferred = dataclasses.replace(declared, observation_space=None, action_space=None)
    with h5py.File(write_d4rl(inferred, tmp_path / "plain.hdf5"), "r") as f:
        assert sorted(f["metadata"]) == ["env_id", "task"]
    assert "action_space" not in read_d4rl(tmp_path / "x.hdf5").metadata
    with pytest.raises(ValueError, match="metadata key 'action_space' is where D4RL files keep"):
        write_d4rl(dataclasses.replace(declared, metadata={"action_space": "mine"}), tmp_path / "y.hdf5")


def test_files_without_spaces_load_with_inferred_ones(declared, tmp_path):
    # a D4RL file as D4RL writes it
    path = tmp_path / "bare.hdf5"
    with h5py.File(path, "w") as f:
        for key in ("observations", "actions", "rewards", "terminals", "timeouts"):
            f.create_dataset(key, data=getattr(declared, key))
    episodes = read_d4rl(path)
    assert (episodes.observation_space, episodes.action_space) == (BoxSpace((4,)), BoxSpace((1,)))
    assert not episodes.action_space.has_bounds
    # an npz of format version 1 (before spaces)
    npz = write_npz(declared, tmp_path / "old.npz")
    with np.load(npz) as data:
        arrays = dict(data)
    header = json.loads(str(arrays.pop("__header__")))
    header = {"format": header["format"], "version": 1, "metadata": header["metadata"]}
    np.savez(npz, __header__=np.array(json.dumps(header)), **arrays)
    old = read_npz(npz)
    assert old.action_space == BoxSpace((1,)) and old.metadata == declared.metadata
    # a Minari dataset whose metadata.json records no spaces (written before minari stored them)
    folder = write_minari(declared, "test/spaces/old-v0")
    meta_file = folder / "data" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    del meta["observation_space"], meta["action_space"]
    meta_file.write_text(json.dumps(meta))
    for back in (read_minari_hdf5(folder), read_minari_api(folder)):
        assert (back.observation_space, back.action_space) == (BoxSpace((4,)), BoxSpace((1,)))


# ------------------------------------------------------------------------------------------------ bad records


def _d4rl_with_space(tmp_path: Path, key: str, tree: dict) -> Path:
    path = write_d4rl(pendulum_episodes(), tmp_path / f"{key}.hdf5", force=True)
    with h5py.File(path, "a") as f:
        write_tree(f["metadata"].create_group(key), tree)
    return path


BOX = {"type": "Box", "dtype": "float32", "shape": [1], "low": np.array([-3.0]), "high": np.array([3.0])}


@pytest.mark.parametrize(
    ("key", "tree", "message"),
    [
        ("action_space", {"type": "Cube"}, "expected a space: a mapping with 'type' Box or Discrete"),
        ("action_space", {**BOX, "extra": 1}, "has keys .*; a Box space has dtype, high, low, shape, type"),
        ("action_space", {**BOX, "low": np.array([-3.0, 0.0])}, "not a valid Box space: low and high must be"),
        ("action_space", {**BOX, "low": np.array([4.0])}, "not a valid Box space: box low .* is above high"),
        ("action_space", {**BOX, "dtype": "nonsense"}, "not a valid Box space"),
        ("action_space", {"type": "Discrete", "n": -1, "start": 0}, "not a valid Discrete space: .*at least 1"),
        ("action_space", {**BOX, "shape": [2], "low": np.zeros(2), "high": np.ones(2)},
         r"is Box\(0.0, 1.0, \(2,\), float32\), which does not fit the actions"),
        ("observation_space", {**BOX}, "which does not fit the observations"),
    ],
)  # fmt: skip
def test_malformed_d4rl_space_is_named_with_file_and_key(tmp_path, key, tree, message):
    path = _d4rl_with_space(tmp_path, key, tree)
    with pytest.raises(DatasetError, match=f"^{path}: key 'metadata/{key}' .*{message}"):
        read_d4rl(path)


def test_malformed_npz_space_is_named_with_file_and_key(tmp_path):
    npz = write_npz(pendulum_episodes(), tmp_path / "x.npz")
    with np.load(npz) as data:
        arrays = dict(data)
    header = json.loads(str(arrays.pop("__header__")))
    header["action_space"] = {"type": "Discrete", "n": "two", "start": 0}
    np.savez(npz, __header__=np.array(json.dumps(header)), **arrays)
    with pytest.raises(DatasetError, match=f"^{npz}: key '__header__/action_space' is not a valid Discrete space"):
        read_npz(npz)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"type": "Box", "dtype": "float32", "shape": [1], "low": [1.0], "high": [-1.0]}, "is not a"),
        ({"type": "Box", "dtype": "float32", "shape": [3], "low": [-1.0] * 3, "high": [1.0] * 3},
         r"is Box\(-1.0, 1.0, \(3,\), float32\), which does not fit the actions"),
    ],
)  # fmt: skip
def test_malformed_minari_space_is_named_with_file_and_key(space, message):
    folder = write_minari(pendulum_episodes(), "test/spaces/bad-v0")
    meta_file = folder / "data" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    meta["action_space"] = json.dumps(space)
    meta_file.write_text(json.dumps(meta))
    for read in (read_minari_hdf5, read_minari_api):
        with pytest.raises(DatasetError, match=f"^{meta_file}: key 'action_space' {message}"):
            read(folder)


# ------------------------------------------------------------------------------------------------ consumers


def test_dataset_whose_action_box_differs_from_the_tasks_is_refused(tmp_path):
    task = load_task("invertedpendulum")
    narrow = write_d4rl(pendulum_episodes(BoxSpace((1,), -2.0, 2.0)), tmp_path / "narrow.hdf5")
    with pytest.raises(DatasetError) as error:
        load_training_data(task, narrow)
    assert str(error.value) == (
        f"{narrow}: key 'action_space' is Box(-2.0, 2.0, (1,), float32), but task invertedpendulum "
        "(InvertedPendulum-v5) declares Box(-3.0, 3.0, (1,), float32); give data recorded with the task's action space"
    )
    assert load_training_data(task, write_d4rl(pendulum_episodes(PENDULUM_BOX), tmp_path / "same.hdf5")).num_steps == 7
    # unknown bounds: the actions themselves are checked against the task's box, as before spaces were recorded
    assert load_training_data(task, write_d4rl(pendulum_episodes(), tmp_path / "bare.hdf5")).num_steps == 7
    with pytest.raises(DatasetError, match=r"outside the action box \[-3.0, 3.0\]"):
        load_training_data(task, write_d4rl(pendulum_episodes(scale=5.0), tmp_path / "wide.hdf5"))


def test_discrete_dataset_is_compared_with_the_tasks_number_of_actions(tmp_path):
    cartpole = load_task("cartpole")
    three = write_d4rl(discrete_episodes(DiscreteSpace(3)), tmp_path / "three.hdf5")
    with pytest.raises(DatasetError, match=r"is Discrete\(3\), but task cartpole \(CartPole-v1\) declares Discrete"):
        load_training_data(cartpole, three)
    with pytest.raises(DatasetError, match=r"value 2 at .*outside the action box \[0.0, 1.0\]"):
        load_training_data(cartpole, write_d4rl(discrete_episodes(top=2), tmp_path / "unknown.hdf5"))
    assert load_training_data(cartpole, write_d4rl(discrete_episodes(), tmp_path / "ok.hdf5")).num_steps == 5


def test_generated_data_carries_the_tasks_spaces():
    cartpole = load_task("cartpole")
    episodes = generate(cartpole, "random", steps=40, seed=0, num_envs=2, progress=False)
    assert (episodes.observation_space, episodes.action_space) == task_spaces(cartpole)


def test_data_info_shows_the_spaces(declared, tmp_path, capsys):
    path = write_d4rl(declared, tmp_path / "x.hdf5")
    assert main(["data", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["action_space"] == "Box(-3.0, 3.0, (1,), float32)"
    assert info["observation_space"] == "Box([-inf, -1.0, 0.0, -inf], inf, (4,), float32)"
    assert main(["data", "info", str(path)]) == 0
    assert "action_space               Box(-3.0, 3.0, (1,), float32)" in capsys.readouterr().out
