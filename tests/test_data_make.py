"""`rlgen data make`: deterministic generation from the CartPole recipe, episode flags, levels and the CLI."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from rlgen.cli import main
from rlgen.data import DatasetLocation, Episodes, load_dataset, locate, read_d4rl, resolve_dataset, transitions
from rlgen.rollout.behavior import switching_actions
from rlgen.rollout.generate import generate, make_dataset
from rlgen.tasks import dataset_steps, load_task, parse_sized_dataset_name, sized_dataset_name


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


def test_two_experts_is_half_each_expert():
    hopper = load_task("hopper")
    mixed = generate(hopper, "two-experts", steps=600, seed=2, num_envs=2, progress=False)
    first = generate(hopper, "expert", steps=300, seed=2, num_envs=2, progress=False)
    second = generate(hopper, "second-expert", steps=300, seed=2, num_envs=2, progress=False)
    assert mixed.identical(Episodes.concatenate([first, second], metadata=mixed.metadata))
    assert mixed.num_steps == 600 and first.num_steps == second.num_steps == 300
    files = [str(r.path.relative_to(hopper.task_dir)) for r in (hopper.expert, hopper.second_expert)]
    assert mixed.metadata["policy_files"] == files and files[0] != files[1]
    assert second.metadata["policy_files"] == files[1:]
    assert not np.allclose(first.actions[:50], second.actions[:50])  # the second half is another policy's
    assert dataset_steps("hopper-two-experts") == 1_000_000 and dataset_steps("hopper-two-experts-200k") == 200_000


class ConstantPolicy:
    """Acts with one fixed action everywhere (the attributes switching_actions checks, duck-typed)."""

    obs_dim, discrete = 11, False

    def __init__(self, value: float):
        self.value = value

    def act(self, obs, rng, deterministic=False):
        return np.full((len(obs), 3), self.value, dtype=np.float32)


def test_switching_experts_picks_one_expert_per_step_and_environment_at_random():
    hopper = load_task("hopper")
    act = switching_actions(hopper, [ConstantPolicy(-0.5), ConstantPolicy(0.5)], np.random.default_rng(0))
    actions = np.stack([act(np.zeros((8, 11), dtype=np.float32)) for _ in range(500)])  # (steps, envs, 3)
    assert set(np.unique(actions)) == {-0.5, 0.5}
    assert (actions == actions[..., :1]).all()  # a whole action comes from one expert
    share = (actions[..., 0] > 0).mean()
    assert abs(share - 0.5) < 0.03  # 4000 fair picks: 5 standard errors
    assert ((actions[:, :, 0] > 0).any(1) & (actions[:, :, 0] < 0).any(1)).mean() > 0.9  # envs pick independently
    mixed = generate(hopper, "switching-experts", steps=300, seed=2, num_envs=2, progress=False)
    files = [str(r.path.relative_to(hopper.task_dir)) for r in (hopper.expert, hopper.second_expert)]
    assert mixed.num_steps == 300 and mixed.metadata["policy_files"] == files
    assert mixed.identical(generate(hopper, "switching-experts", steps=300, seed=2, num_envs=2, progress=False))
    assert dataset_steps("hopper-switching-experts-200k") == 200_000


def test_medium_replay_rolls_out_every_snapshot(cartpole):
    episodes = generate(cartpole, "medium-replay", steps=401, seed=0, num_envs=2, progress=False)
    assert episodes.num_steps == 401
    files = episodes.metadata["policy_files"]
    assert len(cartpole.replay) >= 2
    assert files == [str(r.path.relative_to(cartpole.task_dir)) for r in cartpole.replay]
    assert_transitions_follow_the_dynamics(episodes)


def test_d4rl_format_holds_the_same_data(tmp_path, cartpole):
    minari_made = make_dataset("cartpole-medium-250", seed=1, num_envs=2, progress=False)
    d4rl_made = make_dataset("cartpole-medium-250", seed=1, num_envs=2, fmt="d4rl", progress=False)
    assert d4rl_made.path == tmp_path / "d4rl" / "cartpole-medium-250.hdf5"
    assert read_d4rl(d4rl_made.path).identical(load_dataset(minari_made.path))
    assert load_dataset("cartpole-medium-250").identical(minari_made.episodes)  # the Minari one comes first
    shutil.rmtree(minari_made.path)
    assert locate("cartpole-medium-250") == DatasetLocation("cartpole-medium-250", "d4rl", d4rl_made.path)
    assert resolve_dataset("cartpole-medium-250").path == d4rl_made.path  # the D4RL file is found by the name too


def test_the_name_fixes_the_size(tmp_path, cartpole, capsys):
    assert parse_sized_dataset_name("cartpole-medium-replay")[1:] == ("medium-replay", 1_000_000)
    assert parse_sized_dataset_name("cartpole-medium-expert")[1:] == ("medium-expert", 2_000_000)
    assert parse_sized_dataset_name("cartpole-medium-replay-200k")[1:] == ("medium-replay", 200_000)
    assert parse_sized_dataset_name("cartpole-expert-3m")[1:] == ("expert", 3_000_000)
    assert parse_sized_dataset_name("cartpole-random-2500")[1:] == ("random", 2_500)
    for bad, message in [("cartpole-medium-1m", "is cartpole-medium (1,000,000 steps): name it so"),
                         ("cartpole-medium-0", "no level 'medium-0'"), ("cartpole-medium-2g", "no level")]:  # fmt: skip
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_sized_dataset_name(bad)
    assert [sized_dataset_name(cartpole, "medium", n) for n in (1_000_000, 200_000, 2_000_000, 1_500)] == [
        "cartpole-medium", "cartpole-medium-200k", "cartpole-medium-2m", "cartpole-medium-1500"]  # fmt: skip
    # a default store holds every name at its size: another size needs its own name (or a store of one's own)
    with pytest.raises(ValueError, match="is 1,000,000 steps; for 300 steps name it cartpole-random-300"):
        make_dataset("cartpole-random", steps=300, progress=False)
    made = make_dataset("cartpole-random-300", num_envs=2)  # progress on: says what it makes first
    assert made.episodes.num_steps == 300 and made.dataset_id == "rlgen/cartpole/random-300-v0"
    printed = capsys.readouterr().out
    plan = f"cartpole-random-300: generating 300 steps of CartPole-v1 (about 0 MB, about 0 s) into {made.path}"
    assert plan in printed


def test_cli_make_info_list(capsys):
    assert main(["data", "make", "cartpole-random-200", "--envs", "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "wrote Minari dataset rlgen/cartpole/random-200-v0" in out
    assert main(["data", "make", "cartpole-random-200"]) == 2
    assert "already exists; pass --force to overwrite it" in capsys.readouterr().err
    assert main(["data", "info", "cartpole-random-200", "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    episodes = load_dataset("cartpole-random-200")
    returns = episodes.episode_returns()
    assert (info["steps"], info["episodes"], info["task"]) == (200, episodes.num_episodes, "cartpole")
    assert info["return_mean"] == pytest.approx(returns.mean())
    expected = 100 * (returns.mean() - info["ref_min_score"]) / (info["ref_max_score"] - info["ref_min_score"])
    assert info["normalized_score"] == pytest.approx(expected)
    assert main(["data", "list"]) == 0
    listing = capsys.readouterr().out
    where = Path(os.environ["MINARI_DATASETS_PATH"]) / "rlgen" / "cartpole" / "random-200-v0"
    size = sum(p.stat().st_size for p in where.rglob("*") if p.is_file()) / 1e6
    rows = [line.split() for line in listing.splitlines() if line.strip().startswith("cartpole-random-200 ")]
    assert rows == [["cartpole-random-200", "minari", "200", str(episodes.num_episodes), f"{size:.1f}", str(where)]]
    assert "cartpole-medium-expert" in listing and "2,000,000 steps, about 51 s" in listing
    assert main(["data", "info", "hopper-nothing"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["data", "info", "cartpole-random-200", "--task", "hopper"]) == 2
    err = capsys.readouterr().err
    assert (
        "rlgen/cartpole/random-200-v0: key 'observations' has shape (200, 4); task hopper (Hopper-v5) expects "
        "('N', 11)" in err
    )


def test_data_list_flags_a_dataset_whose_size_is_not_its_names(tmp_path, capsys):
    make_dataset("cartpole-random", steps=120, num_envs=2, out=os.environ["MINARI_DATASETS_PATH"], progress=False)
    assert main(["data", "list"]) == 0
    assert "(!) cartpole-random means 1,000,000 steps: remake it with --force" in capsys.readouterr().out


def test_relative_store_paths_are_resolved(monkeypatch, capsys):
    # minari joins a relative store path onto paths already built from it: both ways must work from the cwd
    assert main(["data", "make", "cartpole-random-50", "--envs", "2", "--out", "store"]) == 0
    assert main(["data", "info", "store/rlgen/cartpole/random-50-v0"]) == 0
    monkeypatch.setenv("MINARI_DATASETS_PATH", "relstore")
    made = make_dataset("cartpole-random-50", num_envs=2, progress=False)
    assert made.path == Path.cwd() / "relstore" / "rlgen" / "cartpole" / "random-50-v0" and made.path.is_dir()
    assert load_dataset("cartpole-random-50").identical(load_dataset("store/rlgen/cartpole/random-50-v0"))
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
    assert main(["data", "make", "cartpole-random-50", *args]) == 2
    assert pattern in capsys.readouterr().err
    assert not any(Path.cwd().iterdir())  # refused before anything was written


@pytest.mark.parametrize(
    ("args", "out"), [(["--format", "d4rl", "--out", "y.h5"], "y.h5"), (["--out", "y.hdf5"], "y.hdf5")]
)
def test_d4rl_output_reads_back_by_path(capsys, args, out):
    assert main(["data", "make", "cartpole-random-50", "--envs", "2", *args]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert main(["data", "info", out, "--json"]) == 0
    assert '"steps": 50' in capsys.readouterr().out
    assert read_d4rl(out).num_steps == 50
