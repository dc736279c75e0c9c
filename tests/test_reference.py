"""A dataset named once: the one rule of :func:`rlgen.data.resolve_dataset`, reading metadata only."""

from __future__ import annotations

from dataclasses import replace

import pytest
from helpers import minari_store

from rlgen.data import DatasetRef, load_dataset, resolve_dataset, store, write_d4rl, write_npz


@pytest.fixture(scope="module")
def minari(tmp_path_factory):
    return minari_store(tmp_path_factory, {"cartpole-random": 50}, num_envs=2)


@pytest.fixture(autouse=True)
def _local_store(minari, monkeypatch, tmp_path):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari))
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))


def test_a_task_name_means_its_default_level_or_no_dataset() -> None:
    assert resolve_dataset("hopper") == DatasetRef("hopper-medium", "hopper", "medium")
    assert resolve_dataset("hopper", default_level="expert").name == "hopper-expert"
    assert resolve_dataset("hopper", default_level=None) == DatasetRef(None, "hopper")
    with pytest.raises(ValueError, match="'hopper' is a task, but --task cartpole was given"):
        resolve_dataset("hopper", "cartpole")


def test_a_dataset_name_gives_task_level_and_where_it_is(minari) -> None:
    made = resolve_dataset("cartpole-random")
    assert (made.task, made.level, made.format) == ("cartpole", "random", "minari")
    assert made.path == (minari / "rlgen" / "cartpole" / "random-v0").resolve()
    missing = resolve_dataset("hopper-medium-replay")
    assert (missing.task, missing.level, missing.path) == ("hopper", "medium-replay", None)
    with pytest.raises(FileNotFoundError, match="rlgen data make"):
        missing.require_path()


@pytest.mark.parametrize(
    ("metadata", "task"),
    [({"task": "cartpole"}, "cartpole"), ({"env_id": "CartPole-v1"}, "cartpole"), ({}, None)],
)
def test_a_path_takes_its_task_from_the_metadata_alone(metadata, task, minari, tmp_path, monkeypatch) -> None:
    episodes = load_dataset(minari / "rlgen" / "cartpole" / "random-v0")
    d4rl, npz = tmp_path / "x.hdf5", tmp_path / "x.npz"
    write_d4rl(replace(episodes, metadata=metadata), d4rl)
    write_npz(replace(episodes, metadata=metadata), npz)
    for reader in ("read_d4rl", "read_npz", "read_minari_hdf5"):  # the steps are never read
        monkeypatch.setattr(store, reader, None)
    for path, fmt in ((d4rl, "d4rl"), (npz, "npz")):
        ref = resolve_dataset(str(path))
        assert (ref.name, ref.task, ref.level, ref.path, ref.format) == (str(path), task, None, path, fmt)
        assert resolve_dataset(str(path), "hopper").task == "hopper"  # --task wins; loading checks the records
    if task is None:
        with pytest.raises(ValueError, match="does not record its task; pass --task"):
            resolve_dataset(str(d4rl)).require_task()


def test_a_minari_id_resolves_and_a_bad_name_lists_what_was_tried(monkeypatch) -> None:
    monkeypatch.setattr(store, "read_minari_hdf5", None)
    assert resolve_dataset("rlgen/cartpole/random-v0").task == "cartpole"
    with pytest.raises(ValueError, match="dataset 'hopper-nothing' not found: it is neither a task") as error:
        resolve_dataset("hopper-nothing")
    assert "task 'hopper' has no level 'nothing'" in str(error.value) and "tried:" in str(error.value)
    assert resolve_dataset("hopper-nothing", "hopper") == DatasetRef("hopper-nothing", "hopper")
