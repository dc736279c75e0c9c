"""rlgen.data on disk: D4RL and Minari round trips, minari's own API, name resolution, caching, bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import gymnasium as gym
import h5py
import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer

from rlgen.data import (
    DatasetError,
    list_local_datasets,
    load_dataset,
    locate,
    read_d4rl,
    read_minari_api,
    read_minari_hdf5,
    read_npz,
    write_d4rl,
    write_minari,
    write_npz,
)
from rlgen.data.cache import cache_dir


@pytest.fixture(autouse=True)
def stores(tmp_path, monkeypatch) -> Path:
    """Private Minari store, D4RL folder and cache for every test."""
    for var, name in (("MINARI_DATASETS_PATH", "minari"), ("D4RL_DATASET_DIR", "d4rl"), ("RLGEN_CACHE_DIR", "cache")):
        monkeypatch.setenv(var, str(tmp_path / name))
    return tmp_path


def write_d4rl_file(path: Path, with_next: bool = True, drop: str | None = None, **override) -> Path:
    """A D4RL-layout file as D4RL's own scripts write it: 3 episodes (timeout, terminal, unflagged cut by the
    end of the buffer), float32 arrays, per-step infos and nested metadata with bytes and arrays."""
    rng = np.random.default_rng(0)
    lengths, n, d = [6, 4, 5], 15, 3
    obs_ep = [rng.normal(size=(k + 1, d)).astype(np.float32) for k in lengths]  # each episode's N + 1 rows
    arrays = {
        "observations": np.concatenate([o[:-1] for o in obs_ep]),
        "actions": rng.uniform(-1, 1, (n, 2)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": np.zeros(n, bool),
    }
    arrays["timeouts"][5] = True
    arrays["terminals"][9] = True
    if with_next:
        arrays["next_observations"] = np.concatenate([o[1:] for o in obs_ep])
    arrays.update(override)
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            if key != drop:
                f.create_dataset(key, data=value)
        f.create_dataset("infos/qpos", data=rng.normal(size=(n, 4)))
        f.create_dataset("infos/action_log_probs", data=rng.normal(size=n).astype(np.float32))
        f.create_dataset("metadata/algorithm", data=np.bytes_("SAC"))
        f.create_dataset("metadata/iteration", data=np.int64(1000))
        f.create_dataset("metadata/policy/fc0/weight", data=rng.normal(size=(4, 3)).astype(np.float32))
        f.create_dataset("metadata/note", data="utf-8 text", dtype=h5py.string_dtype("utf-8"))
    return path


def hdf5_contents(path: Path) -> dict[str, tuple[str, tuple, bytes]]:
    """Every dataset of an HDF5 file as (dtype, shape, raw bytes), for bit-identical comparisons."""
    out = {}
    with h5py.File(path, "r") as f:

        def visit(name, node):
            if isinstance(node, h5py.Dataset):
                value = node[()]
                raw = value if isinstance(value, bytes) else np.asarray(value).tobytes()
                out[name] = (str(node.dtype), node.shape, raw)

        f.visititems(visit)
    return out


# ------------------------------------------------------------------------------------------------ D4RL


def test_d4rl_reader_finds_episodes_flags_and_final_observations(tmp_path):
    ep = read_d4rl(write_d4rl_file(tmp_path / "x.hdf5"))
    assert ep.episode_ends.tolist() == [6, 10, 15]  # third episode: no flag, and the file ends
    assert ep.timeouts.tolist().index(True) == 5 and ep.terminals.tolist().index(True) == 9
    assert ep.final_observations is not None and ep.infos.keys() == {"qpos", "action_log_probs"}
    assert ep.metadata["algorithm"] == np.bytes_(b"SAC") and ep.metadata["policy"]["fc0"]["weight"].shape == (4, 3)
    with h5py.File(tmp_path / "x.hdf5", "r") as f:
        np.testing.assert_array_equal(ep.next_observations(), f["next_observations"][()])


def test_step_both_terminal_and_timeout_is_written_as_terminal_as_d4rl_does(tmp_path):
    both = read_d4rl(write_d4rl_file(tmp_path / "x.hdf5"))
    both.timeouts[9] = True  # gymnasium: the episode ends terminated and truncated at once
    path = write_d4rl(both, tmp_path / "both.hdf5")
    with h5py.File(path, "r") as f:
        terminals, timeouts = f["terminals"][()], f["timeouts"][()]
    assert not np.any(terminals & timeouts) and terminals[9] and timeouts[5]
    assert read_d4rl(path).episode_ends.tolist() == both.episode_ends.tolist()


def test_d4rl_unflagged_cut_is_found_from_next_observations(tmp_path):
    obs = np.arange(12, dtype=np.float32).reshape(6, 2)
    nxt = np.concatenate([obs[1:], obs[:1]])
    nxt[2] = [99, 99]  # step 2's next state is not step 3's observation: a buffer cut without flags
    path = write_d4rl_file(
        tmp_path / "cut.hdf5", observations=obs, next_observations=nxt, actions=np.zeros((6, 1), np.float32),
        rewards=np.zeros(6, np.float32), terminals=np.zeros(6, bool), timeouts=np.zeros(6, bool),
    )  # fmt: skip
    with h5py.File(path, "a") as f:
        del f["infos"]
    ep = read_d4rl(path)
    assert ep.episode_ends.tolist() == [3, 6]
    np.testing.assert_array_equal(ep.final_observations, [[99, 99], [0, 1]])


@pytest.mark.parametrize("next_observations", [True, False])
def test_round_trip_d4rl_rlgen_minari_rlgen_d4rl_is_bit_identical(tmp_path, next_observations):
    original = write_d4rl_file(tmp_path / "orig.hdf5", with_next=next_observations)
    episodes = read_d4rl(original)
    folder = write_minari(episodes, "test/hop/orig-v0")
    for back in (read_minari_hdf5(folder), read_minari_api("test/hop/orig-v0"), load_dataset("test/hop/orig-v0")):
        assert back.identical(episodes)
        assert (back.final_observations is None) == (not next_observations)
    again = write_d4rl(read_minari_hdf5(folder), tmp_path / "again.hdf5")
    assert hdf5_contents(again) == hdf5_contents(original)


def test_minari_files_written_by_rlgen_are_plain_minari(tmp_path):
    episodes = read_d4rl(write_d4rl_file(tmp_path / "orig.hdf5"))
    write_minari(episodes, "test/hop/plain-v0", ref_min_score=-20.0, ref_max_score=3000.0)
    dataset = minari.load_dataset("test/hop/plain-v0")
    assert dataset.total_episodes == 3 and dataset.total_steps == 15
    first = next(dataset.iterate_episodes())
    np.testing.assert_array_equal(first.observations[:-1], episodes.observations[:6])
    np.testing.assert_array_equal(first.observations[-1], episodes.final_observations[0])
    assert first.truncations[-1] and not first.terminations.any()
    score = minari.get_normalized_score(dataset, np.array([1490.0]))
    np.testing.assert_allclose(score, [0.5])
    assert "test/hop/plain-v0" in minari.list_local_datasets()


def minari_own_dataset(dataset_id: str, obs_dtype: type, discrete: bool) -> list[EpisodeBuffer]:
    """A dataset written by minari's own API the way its DataCollector lays it out: N + 1 observations and
    N + 1 info rows (the reset info first), float64 rewards."""
    rng = np.random.default_rng(1)
    buffers = []
    for j, n in enumerate([5, 8, 3]):
        buffers.append(
            EpisodeBuffer(
                observations=rng.normal(size=(n + 1, 4)).astype(obs_dtype),
                actions=rng.integers(0, 2, n) if discrete else rng.uniform(-3, 3, (n, 1)).astype(np.float32),
                rewards=rng.normal(size=n),
                terminations=np.r_[np.zeros(n - 1, bool), [j == 0]],
                truncations=np.r_[np.zeros(n - 1, bool), [j == 1]],
                infos={"x_position": rng.normal(size=n + 1), "sub": {"flag": rng.integers(0, 2, n + 1).astype(bool)}},
            )
        )
    env = "CartPole-v1" if discrete else "InvertedPendulum-v5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        minari.create_dataset_from_buffers(dataset_id, buffers, env=env, algorithm_name="test", author="rlgen tests")
    return buffers


@pytest.mark.parametrize(("obs_dtype", "discrete"), [(np.float32, True), (np.float64, False)])
def test_dataset_written_by_minari_itself_loads_identically(obs_dtype, discrete):
    minari_own_dataset("test/own/data-v0", obs_dtype, discrete)
    reference = list(minari.load_dataset("test/own/data-v0").iterate_episodes())
    for episodes in (load_dataset("test/own/data-v0"), read_minari_api("test/own/data-v0")):
        assert episodes.episode_lengths.tolist() == [len(e) for e in reference]
        assert episodes.metadata["env_id"] == ("CartPole-v1" if discrete else "InvertedPendulum-v5")
        for j, (ref, start, end) in enumerate(
            zip(reference, episodes.episode_starts, episodes.episode_ends, strict=True)
        ):
            # observations become float32 by design; everything else keeps minari's dtype and bits
            expected_obs = ref.observations.astype(np.float32)
            assert np.array_equal(episodes.observations[start:end], expected_obs[:-1])
            assert np.array_equal(episodes.final_observations[j], expected_obs[-1])
            for mine, theirs in (
                (episodes.actions[start:end], ref.actions),
                (episodes.rewards[start:end], ref.rewards),
                (episodes.terminals[start:end], ref.terminations),
                (episodes.timeouts[start:end], ref.truncations),
                (episodes.infos["x_position"][start:end], ref.infos["x_position"][:-1]),
                (episodes.final_infos["sub/flag"][j], ref.infos["sub"]["flag"][-1]),
            ):
                assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs)
    assert read_minari_hdf5("test/own/data-v0").identical(read_minari_api("test/own/data-v0"))


def test_npz_format_and_cache(stores):
    episodes = read_d4rl(write_d4rl_file(stores / "orig.hdf5"))
    assert read_npz(write_npz(episodes, stores / "x.npz")).identical(episodes)
    assert load_dataset(stores / "x.npz").identical(episodes)
    folder = write_minari(episodes, "test/hop/cached-v0")
    assert not cache_dir().exists()
    first = load_dataset("test/hop/cached-v0")
    cached = list(cache_dir().glob("*.npz"))
    assert len(cached) == 1 and first.identical(episodes)
    assert load_dataset("test/hop/cached-v0").identical(episodes)  # served from the cache
    assert load_dataset("test/hop/cached-v0", cache=False).identical(episodes)
    # a rewritten dataset invalidates (and replaces) its cache entry
    changed = episodes.select([2, 0, 1])
    write_minari(changed, "test/hop/cached-v0", force=True)
    assert load_dataset(folder).identical(changed)
    assert len(list(cache_dir().glob("*.npz"))) == 1 and list(cache_dir().glob("*.npz")) != cached
    # a damaged cache entry is rebuilt, never trusted
    entry = next(cache_dir().glob("*.npz"))
    entry.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="rebuilding"):
        assert load_dataset(folder).identical(changed)


def test_load_dataset_resolves_paths_ids_and_names(stores):
    d4rl_dir = stores / "d4rl"
    d4rl_dir.mkdir()
    episodes = read_d4rl(write_d4rl_file(d4rl_dir / "hopper_medium-v2.hdf5"))
    write_d4rl(episodes, d4rl_dir / "toy-expert.hdf5")
    folder = write_minari(episodes, "rlgen/toy/medium-replay-v0")
    for name, fmt in [
        ("hopper-medium-v2", "d4rl"),  # D4RL's download file name
        (str(d4rl_dir / "hopper_medium-v2.hdf5"), "d4rl"),
        ("toy-expert", "d4rl"),  # rlgen name, D4RL format
        ("toy-medium-replay", "minari"),  # rlgen name, Minari store
        ("rlgen/toy/medium-replay-v0", "minari"),
        (str(folder), "minari"),
        (str(folder / "data"), "minari"),
        (str(folder / "data" / "main_data.hdf5"), "minari"),
    ]:
        assert locate(name).format == fmt, name
        assert load_dataset(name).identical(episodes), name
    listed = {(d.name, d.format) for d in list_local_datasets()}
    assert {("rlgen/toy/medium-replay-v0", "minari"), ("hopper_medium-v2", "d4rl")} <= listed
    with pytest.raises(FileNotFoundError, match="toy-nothing.*tried"):
        load_dataset("toy-nothing")


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("key", ["observations", "actions", "rewards", "terminals"])
def test_missing_key_is_named(tmp_path, key):
    path = write_d4rl_file(tmp_path / "bad.hdf5", drop=key)
    with pytest.raises(DatasetError, match=rf"bad.hdf5: missing key '{key}' \(expected \(N,"):
        load_dataset(path)


def test_file_without_timeouts_loads_with_a_warning(tmp_path):
    path = write_d4rl_file(tmp_path / "old.hdf5", drop="timeouts", with_next=False)
    with pytest.warns(UserWarning, match="no 'timeouts'"):
        episodes = read_d4rl(path)
    assert episodes.episode_ends.tolist() == [10, 15] and not episodes.timeouts.any()


def test_truncated_and_corrupt_files_are_named(tmp_path):
    path = write_d4rl_file(tmp_path / "cut.hdf5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="cut.hdf5.*(truncated or corrupt)"):
        load_dataset(path)
    junk = tmp_path / "junk.hdf5"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(DatasetError, match="junk.hdf5: not a readable HDF5 file"):
        load_dataset(junk)
    folder = write_minari(read_d4rl(write_d4rl_file(tmp_path / "ok.hdf5")), "test/t/cut-v0")
    main = folder / "data" / "main_data.hdf5"
    main.write_bytes(main.read_bytes()[:2000])
    with pytest.raises(DatasetError, match="main_data.hdf5"):
        load_dataset("test/t/cut-v0")


def test_minari_episodes_missing_from_the_file_are_named(tmp_path, capsys):
    from rlgen.cli import main

    folder = write_minari(read_d4rl(write_d4rl_file(tmp_path / "ok.hdf5")), "test/t/short-v0")
    data = folder / "data"
    meta = json.loads((data / "metadata.json").read_text())
    meta["total_episodes"] += 1  # one more than main_data.hdf5 holds (3 episodes)
    (data / "metadata.json").write_text(json.dumps(meta))
    file = re.escape(str(data / "main_data.hdf5"))
    with pytest.raises(DatasetError, match=rf"{file}: missing key 'episode_3' \(metadata.json says total_episodes=4\)"):
        read_minari_hdf5(folder)
    assert main(["data", "info", str(folder)]) == 2
    assert f"{data / 'main_data.hdf5'}: missing key 'episode_3'" in capsys.readouterr().err
    meta["total_episodes"] -= 1
    (data / "metadata.json").write_text(json.dumps(meta))
    with h5py.File(data / "main_data.hdf5", "a") as f:
        del f["episode_1/rewards"]
        del f["episode_2"]
        f["episode_2"] = np.zeros(3)  # a dataset where a group belongs
    with pytest.raises(DatasetError, match=rf"{file}: missing key 'episode_1/rewards'"):
        read_minari_hdf5(folder)
    with h5py.File(data / "main_data.hdf5", "a") as f:
        f["episode_1/rewards"] = np.zeros(4)
    with pytest.raises(DatasetError, match=rf"{file}: key 'episode_2' cannot be opened as a group"):
        read_minari_hdf5(folder)


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ({"actions": np.zeros((14, 2), np.float32)}, r"key 'actions' has shape \(14, 2\); expected 15 rows"),
        ({"rewards": np.zeros(16, np.float32)}, r"key 'rewards' has shape \(16,\); expected 15 rows"),
        (
            {"next_observations": np.zeros((15, 4), np.float32)},
            r"key 'next_observations' has shape \(15, 4\); expected \(15, 3\)",
        ),
    ],
)
def test_mismatched_lengths_are_named(tmp_path, override, pattern):
    with pytest.raises(DatasetError, match=rf"bad.hdf5: {pattern}"):
        load_dataset(write_d4rl_file(tmp_path / "bad.hdf5", **override))


@pytest.mark.parametrize("key", ["observations", "rewards", "next_observations"])
def test_nan_is_named_with_file_key_and_index(tmp_path, key):
    with h5py.File(write_d4rl_file(tmp_path / "ok.hdf5"), "r") as f:
        array = f[key][()]
    array[7] = np.nan
    path = write_d4rl_file(tmp_path / "nan.hdf5", **{key: array})
    with pytest.raises(DatasetError, match=rf"nan.hdf5: key '{key}' has a non-finite value \(nan\) at index \(7"):
        load_dataset(path)


def test_observation_size_not_matching_the_task(tmp_path):
    path = write_d4rl_file(tmp_path / "small.hdf5")
    with pytest.raises(DatasetError, match=r"small.hdf5: key 'observations' has shape \(15, 3\); task hopper "
                                           r"expects \('N', 11\)"):  # fmt: skip
        load_dataset(path, observation_shape=(11,), expected_by="task hopper")
    with pytest.raises(DatasetError, match=r"key 'observations'.*environment Hopper-v5 expects \('N', 11\)"):
        write_minari(read_d4rl(path), "test/t/wrong-v0", env="Hopper-v5")
    assert not (Path(os.environ["MINARI_DATASETS_PATH"]) / "test/t/wrong-v0").exists()


def test_existing_datasets_are_not_overwritten_without_force(tmp_path):
    episodes = read_d4rl(write_d4rl_file(tmp_path / "x.hdf5"))
    path = write_d4rl(episodes, tmp_path / "out.hdf5")
    with pytest.raises(FileExistsError, match="out.hdf5 already exists.*force"):
        write_d4rl(episodes.select([0]), path)
    assert read_d4rl(path).identical(episodes)
    write_d4rl(episodes.select([0]), path, force=True)
    assert read_d4rl(path).num_episodes == 1
    write_minari(episodes, "test/t/keep-v0")
    with pytest.raises(FileExistsError, match="keep-v0 already exists"):
        write_minari(episodes.select([1]), "test/t/keep-v0")
    write_minari(episodes.select([1]), "test/t/keep-v0", force=True)
    assert load_dataset("test/t/keep-v0").num_episodes == 1


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    episodes = read_d4rl(write_d4rl_file(tmp_path / "x.hdf5"))
    from rlgen.data import minari_io

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(minari_io, "_write_episodes", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        write_minari(episodes, "test/t/broken-v0")
    root = Path(os.environ["MINARI_DATASETS_PATH"])
    assert not (root / "test/t/broken-v0").exists()
    assert [p for p in root.rglob("*") if p.name.startswith(".")] == []  # the staging folder is gone too
    assert list_local_datasets() == []


def test_killed_write_leaves_no_dataset(tmp_path):
    """SIGKILL a process in the middle of writing a Minari dataset: no dataset appears, nothing lists or loads."""
    marker = tmp_path / "writing"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from rlgen.data import minari_io, read_d4rl, write_minari
        original = minari_io._write_rows
        def slow(*args, **kwargs):
            original(*args, **kwargs)
            Path({str(marker)!r}).touch()
            time.sleep(60)
        minari_io._write_rows = slow
        write_minari(read_d4rl({str(write_d4rl_file(tmp_path / "x.hdf5"))!r}), "test/t/killed-v0")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "writer never started"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (Path(os.environ["MINARI_DATASETS_PATH"]) / "test/t/killed-v0").exists()
    assert list_local_datasets() == []
    with pytest.raises(FileNotFoundError):
        load_dataset("test/t/killed-v0")
    assert "test/t/killed-v0" not in minari.list_local_datasets()


def test_minari_reader_rejects_unsupported_spaces():
    buffers = [
        EpisodeBuffer(
            observations={"a": np.zeros((3, 2), np.float32)},
            actions=np.zeros((2, 1), np.float32),
            rewards=np.zeros(2),
            terminations=np.zeros(2, bool),
            truncations=np.array([0, 1], bool),
        )
    ]
    obs_space = gym.spaces.Dict({"a": gym.spaces.Box(-1, 1, (2,))})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        minari.create_dataset_from_buffers(
            "test/t/dict-v0", buffers, observation_space=obs_space, action_space=gym.spaces.Box(-1, 1, (1,))
        )
    with pytest.raises(DatasetError, match="'observation_space' is Dict.*Box spaces only"):
        load_dataset("test/t/dict-v0")
