"""`rlgen data make`: deterministic generation from the CartPole recipe, episode flags, levels and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlgen.cli import main
from rlgen.data import Episodes, load_dataset, read_d4rl, transitions
from rlgen.rollout.generate import generate, make_dataset
from rlgen.tasks import load_task


@pytest.fixture(autouse=True)
def stores(tmp_path, monkeypatch):
    for var, name in (("MINARI_DATASETS_PATH", "minari"), ("D4RL_DATASET_DIR", "d4rl"), ("RLGEN_CACHE_DIR", "cache")):
        monkeypatch.setenv(var, str(tmp_path / name))


@pytest.fixture(scope="module")
def cartpole():
    return load_task("cartpole")


def assert_transitions_follow_the_dynamics(episodes: Episodes) -> None:
    """Replay every transition (final ones included) in CartPole from its recorded state: no transition may
    cross an episode boundary, and terminals must be the states where the pole fell or the cart left."""
    import gymnasium as gym

    env = gym.make("CartPole-v1").unwrapped
    env.reset(seed=0)
    t = transitions(episodes)
    assert len(t) == episodes.num_steps  # final observations are known: every step is a transition
    for obs, action, nxt, terminal in zip(t.observations, t.actions, t.next_observations, t.terminals, strict=True):
        env.state, env.steps_beyond_terminated = obs.astype(np.float64), None
        predicted, _, fell, _, _ = env.step(int(action))
        np.testing.assert_allclose(predicted, nxt, atol=1e-5)
        assert fell == bool(terminal)


def test_random_level_is_deterministic_and_flags_terminals(tmp_path, cartpole):
    a = make_dataset("cartpole-random", steps=300, seed=3, num_envs=2, out=tmp_path / "a", progress=False)
    b = make_dataset("cartpole-random", steps=300, seed=3, num_envs=2, out=tmp_path / "b", progress=False)
    other = generate(cartpole, "random", steps=300, seed=4, num_envs=2, progress=False)
    first, second = load_dataset(a.path), load_dataset(b.path)
    assert first.identical(second) and first.identical(a.episodes)
    assert not np.array_equal(other.actions, first.actions)
    assert first.num_steps == 300 and first.discrete_actions and first.observation_shape == (4,)
    # random CartPole episodes fall long before the 500-step limit; only the last one is cut by the size
    assert first.terminals.sum() == first.num_episodes - 1 and first.timeouts.sum() == 1
    assert first.timeouts[-1] and not first.terminals[-1]
    assert_transitions_follow_the_dynamics(first)
    meta = first.metadata
    assert (meta["task"], meta["level"], meta["seed"], meta["steps"], meta["policy_files"]) == (
        "cartpole", "random", 3, 300, [],
    )  # fmt: skip
    assert meta["ref_min_score"] == cartpole.ref_min_score and "rlgen_version" in meta


def test_time_limit_is_recorded_as_timeout(cartpole):
    episodes = generate(cartpole, "expert", steps=1100, seed=0, num_envs=2, progress=False)
    # the expert balances until the 500-step limit: two full episodes, then the cut third
    assert episodes.episode_lengths.tolist() == [500, 500, 100]
    assert episodes.timeouts[episodes.episode_ends - 1].all() and not episodes.terminals.any()
    assert episodes.timeouts.sum() == 3
    assert_transitions_follow_the_dynamics(episodes)
    np.testing.assert_allclose(episodes.episode_returns()[:2], 500.0)
    assert episodes.metadata["policy_files"] == [str(cartpole.expert.path.relative_to(cartpole.task_dir))]


def test_medium_expert_is_medium_then_expert(cartpole):
    mixed = generate(cartpole, "medium-expert", steps=600, seed=5, num_envs=2, progress=False)
    medium = generate(cartpole, "medium", steps=300, seed=5, num_envs=2, progress=False)
    expert = generate(cartpole, "expert", steps=300, seed=5, num_envs=2, progress=False)
    both = Episodes.concatenate([medium, expert], metadata=mixed.metadata)
    assert mixed.identical(both)
    assert len(mixed.metadata["policy_files"]) == 2


def test_medium_replay_rolls_out_every_snapshot(cartpole):
    episodes = generate(cartpole, "medium-replay", steps=401, seed=0, num_envs=2, progress=False)
    assert episodes.num_steps == 401
    files = episodes.metadata["policy_files"]
    assert len(cartpole.replay) >= 2
    assert files == [str(r.path.relative_to(cartpole.task_dir)) for r in cartpole.replay]
    assert_transitions_follow_the_dynamics(episodes)


def test_d4rl_format_holds_the_same_data(tmp_path, cartpole):
    minari_made = make_dataset("cartpole-medium", steps=250, seed=1, num_envs=2, progress=False)
    d4rl_made = make_dataset("cartpole-medium", steps=250, seed=1, num_envs=2, fmt="d4rl", progress=False)
    assert d4rl_made.path.name == "cartpole-medium-rlgen.hdf5"
    assert read_d4rl(d4rl_made.path).identical(load_dataset(minari_made.path))
    assert load_dataset("cartpole-medium").identical(minari_made.episodes)  # the Minari one comes first


def test_cli_make_info_list(capsys):
    assert main(["data", "make", "cartpole-random", "--steps", "200", "--envs", "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "wrote Minari dataset rlgen/cartpole/random-v0" in out
    assert main(["data", "make", "cartpole-random", "--steps", "200"]) == 2
    assert "already exists; pass --force to overwrite it" in capsys.readouterr().err
    assert main(["data", "info", "cartpole-random", "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    episodes = load_dataset("cartpole-random")
    returns = episodes.episode_returns()
    assert (info["steps"], info["episodes"], info["task"]) == (200, episodes.num_episodes, "cartpole")
    assert info["return_mean"] == pytest.approx(returns.mean())
    expected = 100 * (returns.mean() - info["ref_min_score"]) / (info["ref_max_score"] - info["ref_min_score"])
    assert info["normalized_score"] == pytest.approx(expected)
    assert main(["data", "list"]) == 0
    listing = capsys.readouterr().out
    assert "rlgen/cartpole/random-v0" in listing and "cartpole-medium-expert" in listing
    assert main(["data", "info", "hopper-nothing"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["data", "info", "cartpole-random", "--task", "hopper"]) == 2
    err = capsys.readouterr().err
    assert (
        "rlgen/cartpole/random-v0: key 'observations' has shape (200, 4); task hopper (Hopper-v5) expects ('N', 11)"
        in err
    )


def test_relative_store_paths_are_resolved(monkeypatch, capsys):
    # minari joins a relative store path onto paths already built from it: both ways must work from the cwd
    assert main(["data", "make", "cartpole-random", "--steps", "50", "--envs", "2", "--out", "store"]) == 0
    assert main(["data", "info", "store/rlgen/cartpole/random-v0"]) == 0
    monkeypatch.setenv("MINARI_DATASETS_PATH", "relstore")
    made = make_dataset("cartpole-random", steps=50, num_envs=2, progress=False)
    assert made.path == Path.cwd() / "relstore" / "rlgen" / "cartpole" / "random-v0" and made.path.is_dir()
    assert load_dataset("cartpole-random").identical(load_dataset("store/rlgen/cartpole/random-v0"))
    assert "error" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--format", "d4rl", "--out", "y.npz"], "--out y.npz: format d4rl writes an HDF5 file, which loads back only"),
        (["--format", "d4rl", "--out", "y"], "--out y: format d4rl writes an HDF5 file"),
        (["--format", "minari", "--out", "y.hdf5"], "--out y.hdf5: format minari writes dataset folders under a"),
        (["--out", "y.npz"], "--out y.npz: format minari writes dataset folders under a store root folder, not a"),
    ],
)
def test_out_suffix_contradicting_the_format_is_refused(capsys, args, pattern):
    assert main(["data", "make", "cartpole-random", "--steps", "50", *args]) == 2
    assert pattern in capsys.readouterr().err
    assert not any(Path.cwd().iterdir())  # refused before anything was written


@pytest.mark.parametrize(
    ("args", "out"), [(["--format", "d4rl", "--out", "y.h5"], "y.h5"), (["--out", "y.hdf5"], "y.hdf5")]
)
def test_d4rl_output_reads_back_by_path(capsys, args, out):
    assert main(["data", "make", "cartpole-random", "--steps", "50", "--envs", "2", *args]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert main(["data", "info", out, "--json"]) == 0
    assert '"steps": 50' in capsys.readouterr().out
    assert read_d4rl(out).num_steps == 50
