"""Behaviour-policy files: SB3 equivalence, sampling, save/load round trip, bad files, shipped policies."""

from __future__ import annotations

import json
import types
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from helpers import import_script
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from rlgen.rollout import make_vector_env
from rlgen.rollout.behavior import BehaviorPolicy, BehaviorPolicyError, episode_returns, measure_returns
from rlgen.tasks import ReturnStats, list_tasks, load_task, tasks_root


@pytest.fixture(autouse=True)
def _tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # MuJoCo may write MUJOCO_LOG.TXT into the working directory


def tiny_ppo(env_id: str, normalize: bool, activation: type[torch.nn.Module]) -> tuple[PPO, VecNormalize | None]:
    """A freshly built PPO whose outputs are pushed past the action bounds and whose VecNormalize stats are
    non-trivial, so equality with SB3 exercises the normalisation, the observation clip and the action clip."""
    torch.manual_seed(0)
    venv = DummyVecEnv([lambda: gym.make(env_id)])
    vec_norm = VecNormalize(venv, norm_obs=True, clip_obs=3.0) if normalize else None
    model = PPO(
        "MlpPolicy", vec_norm or venv, n_steps=64, batch_size=64, device="cpu", seed=0,
        policy_kwargs={"activation_fn": activation, "net_arch": {"pi": [16, 8], "vf": [8]}},
    )  # fmt: skip
    rng = np.random.default_rng(0)
    if vec_norm is not None:
        dim = venv.observation_space.shape[0]
        vec_norm.obs_rms.mean = rng.normal(size=dim)
        vec_norm.obs_rms.var = rng.uniform(0.1, 4.0, size=dim)
    with torch.no_grad():
        model.policy.action_net.weight.mul_(300.0)
        if hasattr(model.policy, "log_std"):
            model.policy.log_std.fill_(-1.0)
    return model, vec_norm


def sb3_predict(model: PPO, vec_norm: VecNormalize | None, obs: np.ndarray) -> np.ndarray:
    return model.predict(vec_norm.normalize_obs(obs) if vec_norm else obs, deterministic=True)[0]


@pytest.mark.parametrize(
    ("env_id", "normalize", "activation"),
    [("InvertedPendulum-v5", True, torch.nn.Tanh), ("Pendulum-v1", False, torch.nn.ReLU),
     ("CartPole-v1", False, torch.nn.Tanh), ("CartPole-v1", True, torch.nn.ReLU)],
)  # fmt: skip
def test_deterministic_actions_equal_sb3_predict(env_id: str, normalize: bool, activation: type) -> None:
    model, vec_norm = tiny_ppo(env_id, normalize, activation)
    policy = BehaviorPolicy.from_sb3(model, vec_norm)
    obs = np.random.default_rng(1).normal(scale=3.0, size=(257, model.observation_space.shape[0]))
    expected = sb3_predict(model, vec_norm, obs)
    actions = policy.act(obs, np.random.default_rng(0), deterministic=True)
    assert actions.dtype == expected.dtype and actions.shape == expected.shape
    np.testing.assert_array_equal(actions, expected)
    if not policy.discrete:  # the test must actually exercise the action clip
        space = model.action_space
        clipped = (actions == space.low) | (actions == space.high)
        assert clipped.any() and not clipped.all()


def test_gaussian_sampling_uses_the_learned_log_std() -> None:
    model, vec_norm = tiny_ppo("Pendulum-v1", False, torch.nn.Tanh)
    with torch.no_grad():
        model.policy.action_net.weight.zero_()  # mean 0.1 well inside [-2, 2]: no clipping
        model.policy.action_net.bias.fill_(0.1)
    policy = BehaviorPolicy.from_sb3(model, vec_norm)
    obs = np.zeros((20_000, 3))
    a = policy.act(obs, np.random.default_rng(0))
    assert a.shape == (20_000, 1) and a.dtype == np.float32
    assert a.mean() == pytest.approx(0.1, abs=0.01) and a.std() == pytest.approx(np.exp(-1.0), rel=0.02)
    np.testing.assert_array_equal(a, policy.act(obs, np.random.default_rng(0)))  # rng-determined
    assert not np.array_equal(a, policy.act(obs, np.random.default_rng(1)))


def test_categorical_sampling_matches_softmax() -> None:
    model, _ = tiny_ppo("CartPole-v1", False, torch.nn.Tanh)
    policy = BehaviorPolicy.from_sb3(model)
    obs = np.tile(np.array([[0.1, 0.2, 0.05, -0.3]]), (40_000, 1))
    with torch.no_grad():
        probs = model.policy.get_distribution(torch.as_tensor(obs[:1]).float()).distribution.probs.numpy()[0]
    a = policy.act(obs, np.random.default_rng(0))
    assert a.shape == (40_000,) and a.dtype == np.int64 and set(np.unique(a)) <= {0, 1}
    np.testing.assert_allclose(np.bincount(a, minlength=2) / len(a), probs, atol=0.01)


def test_save_load_round_trip_is_bit_identical(tmp_path: Path) -> None:
    model, vec_norm = tiny_ppo("InvertedPendulum-v5", True, torch.nn.Tanh)
    policy = BehaviorPolicy.from_sb3(model, vec_norm, info={"env_id": "InvertedPendulum-v5", "train_steps": 7})
    path = policy.save(tmp_path / "sub" / "p.npz")
    assert sorted(p.name for p in path.parent.iterdir()) == ["p.npz"]  # no temporary file left behind
    loaded = BehaviorPolicy.load(path)
    for name in ("out_weight", "out_bias", "log_std", "action_low", "action_high", "obs_mean", "obs_var"):
        a, b = getattr(policy, name), getattr(loaded, name)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
    for (w1, b1), (w2, b2) in zip(policy.hidden, loaded.hidden, strict=True):
        assert w1.tobytes() == w2.tobytes() and b1.tobytes() == b2.tobytes()
    assert (loaded.activation, loaded.discrete, loaded.clip_obs, loaded.epsilon, loaded.info) == (
        "tanh",
        False,
        3.0,
        vec_norm.epsilon,
        {"env_id": "InvertedPendulum-v5", "train_steps": 7},
    )
    obs = np.random.default_rng(2).normal(size=(64, 4))
    np.testing.assert_array_equal(loaded.act(obs, np.random.default_rng(3)), policy.act(obs, np.random.default_rng(3)))
    assert path.stat().st_size < 20_000


def test_bad_files_raise_errors_naming_the_file(tmp_path: Path) -> None:
    model, _ = tiny_ppo("CartPole-v1", False, torch.nn.Tanh)
    good = BehaviorPolicy.from_sb3(model).save(tmp_path / "good.npz")

    missing = tmp_path / "missing.npz"
    with pytest.raises(BehaviorPolicyError, match=f"{missing}: behaviour-policy file not found"):
        BehaviorPolicy.load(missing)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(BehaviorPolicyError, match=f"{garbage}: not a readable"):
        BehaviorPolicy.load(garbage)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(BehaviorPolicyError, match=str(truncated)):
        BehaviorPolicy.load(truncated)

    def rewrite(name: str, **changes: np.ndarray) -> Path:
        with np.load(good) as npz:
            arrays = {k: npz[k] for k in npz.files if k not in changes or changes[k] is not None}
        arrays.update({k: v for k, v in changes.items() if v is not None})
        path = tmp_path / name
        np.savez(path, **arrays)
        return path

    no_out = rewrite("no_out.npz", w_out=None)
    with pytest.raises(BehaviorPolicyError, match=f"{no_out}: missing entry 'w_out'"):
        BehaviorPolicy.load(no_out)
    nan = rewrite("nan.npz", w0=np.full((16, 4), np.nan, dtype=np.float32))
    with pytest.raises(BehaviorPolicyError, match=f"{nan}: .*hidden layer 0: weights contain NaN"):
        BehaviorPolicy.load(nan)
    shape = rewrite("shape.npz", b1=np.zeros(3, dtype=np.float32))
    with pytest.raises(BehaviorPolicyError, match=f"{shape}: .*hidden layer 1.*shapes do not match"):
        BehaviorPolicy.load(shape)
    other = rewrite("other.npz", meta=np.array('{"format": "something-else", "version": 1}'))
    with pytest.raises(BehaviorPolicyError, match=f"{other}: expected format 'rlgen.behavior'"):
        BehaviorPolicy.load(other)
    with zipfile.ZipFile(tmp_path / "pickled.npz", "w") as zf:  # object arrays need pickle: refused
        with zf.open("meta.npy", "w") as fh:
            np.lib.format.write_array(fh, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(BehaviorPolicyError, match="pickled.npz"):
        BehaviorPolicy.load(tmp_path / "pickled.npz")


def test_unsupported_sb3_policies_are_refused() -> None:
    env = DummyVecEnv([lambda: gym.make("Pendulum-v1")])
    sde = PPO("MlpPolicy", env, use_sde=True, n_steps=64, batch_size=64, device="cpu")
    with pytest.raises(ValueError, match="gSDE"):
        BehaviorPolicy.from_sb3(sde)
    elu = PPO("MlpPolicy", env, n_steps=64, batch_size=64, device="cpu", policy_kwargs={"activation_fn": torch.nn.ELU})
    with pytest.raises(ValueError, match="unsupported activation ELU"):
        BehaviorPolicy.from_sb3(elu)


def test_random_returns_are_repeatable() -> None:
    spec = load_task("cartpole", allow_untrained=True)
    a = episode_returns(spec, None, 8, seed=3)
    np.testing.assert_array_equal(a, episode_returns(spec, None, 8, seed=3))
    assert a.shape == (8,) and np.all((a >= 1) & (a <= spec.max_episode_steps))
    stats = measure_returns(spec, None, 8, seed=3)
    assert (stats.mean, stats.episodes, stats.seed) == (pytest.approx(a.mean()), 8, 3)


def shipped_policies() -> list[tuple[str, Path]]:
    out = []
    for name in list_tasks():
        spec = load_task(name, allow_untrained=True)
        records = [r for r in (spec.expert, spec.medium, *spec.replay) if r is not None]
        out += [(name, p) for p in sorted({r.path for r in records})]
    return out


@pytest.mark.parametrize(("task", "path"), shipped_policies(), ids=lambda x: getattr(x, "name", x))
def test_shipped_policies_act_within_bounds(task: str, path: Path) -> None:
    spec = load_task(task)
    policy = BehaviorPolicy.load(path)
    assert path.stat().st_size < 400_000 and policy.info["env_id"] == spec.env_id
    env = make_vector_env(spec, 4)
    obs, _ = env.reset(seed=0)
    for deterministic in (True, False):
        a = policy.act(obs, np.random.default_rng(0), deterministic)
        assert env.action_space.contains(a.astype(env.action_space.dtype))
        assert a.shape == ((4,) if spec.discrete else (4, spec.act_dim))
        env.step(a)
    env.close()


def test_tasks_with_policies_ship_them() -> None:
    # Every locomotion/demo recipe that has a generated block must list files that exist and load.
    for name in list_tasks():
        spec = load_task(name, allow_untrained=True)
        if spec.expert is not None:
            assert spec.medium is not None and spec.replay[-1] == spec.medium
            assert spec.expert.stochastic.mean > spec.medium.stochastic.mean


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """scripts/train_behavior.py imported as a module (it is a script, not part of the package)."""
    return import_script("train_behavior", monkeypatch)


def test_trainer_resumes_and_ships_expert_medium_and_replay(
    script: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipes = tmp_path / "recipes"
    (recipes / "cartpole").mkdir(parents=True)
    recipe = yaml.safe_load((tasks_root() / "cartpole" / "task.yaml").read_text())
    recipe.pop("behavior", None)
    recipe["training"].update(snapshot_every=1024, dense_snapshots={"every": 512, "until": 1024})
    recipe["training"]["ppo"].update(n_epochs=2)
    (recipes / "cartpole" / "task.yaml").write_text("# hand-written part\n" + yaml.safe_dump(recipe))
    monkeypatch.setenv("RLGEN_ENVS_DIR", str(recipes))
    run = ["cartpole", "--run-dir", str(tmp_path / "run"), "--final-episodes", "3"]

    # A few thousand steps learn little, so this tests the bookkeeping with returns fixed by training steps
    # (snapshot return = steps / 10); the random-action return is set per phase.
    random_return = {"mean": 1000.0}

    def fake_measure(task, policy, episodes, seed, deterministic=False):  # noqa: ANN001, ANN202
        mean = random_return["mean"] if policy is None else policy.info["train_steps"] / 10
        return ReturnStats(mean=mean, std=0.0, episodes=episodes, seed=seed)

    monkeypatch.setattr(script, "measure_returns", fake_measure)
    script.main([*run, "--total-steps", "1024", "--no-finalize"])
    with pytest.raises(SystemExit, match="--resume"):  # never silently restarts over a checkpoint
        script.main([*run, "--total-steps", "2048"])
    with pytest.raises(SystemExit, match="does not beat random actions"):  # finalizing refuses...
        script.main([*run, "--total-steps", "2048", "--resume"])
    assert script.GENERATED_MARK not in (recipes / "cartpole" / "task.yaml").read_text()  # ...and writes nothing
    assert not (recipes / "cartpole" / "policies").exists()
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert [s["train_steps"] for s in state["snapshots"]] == [0, 512, 1024, 2048]

    random_return["mean"] = -1.0
    script.main([*run, "--finalize"])
    spec = load_task("cartpole")
    text = (recipes / "cartpole" / "task.yaml").read_text()
    assert text.startswith("# hand-written part\n") and text.count(script.GENERATED_MARK) == 1
    assert "&id" not in text  # plain YAML a person can read, no anchors/aliases
    # expert = best (2048 -> 204.8); medium = earlier snapshot closest to 204.8 / 3 (512 -> 51.2)
    assert (spec.expert.train_steps, spec.medium.train_steps) == (2048, 512)
    assert [r.train_steps for r in spec.replay] == [0, 512] and spec.replay[-1] == spec.medium
    assert spec.expert.deterministic == ReturnStats(204.8, 0.0, 3, script.FINAL_SEED)  # held-out episodes
    assert spec.replay[0].deterministic == ReturnStats(0.0, 0.0, 10, script.SNAPSHOT_SEED)
    assert (spec.ref_min_score, spec.ref_max_score) == (-1.0, 204.8)
    shipped = sorted(p.name for p in (recipes / "cartpole" / "policies").iterdir())
    assert shipped == ["step_00000000.npz", "step_00000512.npz", "step_00002048.npz"]
    for record in (spec.expert, *spec.replay):  # shipped files are the snapshots of those training steps
        assert BehaviorPolicy.load(record.path).info["train_steps"] == record.train_steps

    script.main([*run, "--finalize"])  # re-selecting rewrites the generated block, never duplicates it
    assert (recipes / "cartpole" / "task.yaml").read_text().count(script.GENERATED_MARK) == 1

    # A second expert: another seed in its own run folder, shipped beside the first; the behavior block stays.
    with pytest.raises(SystemExit, match="another seed"):
        script.main(["cartpole", "--second-expert", "--seed", "0"])
    behavior = yaml.safe_load((recipes / "cartpole" / "task.yaml").read_text())["behavior"]
    second_run = ["cartpole", "--second-expert", "--seed", "1", "--run-dir", str(tmp_path / "run1"),
                  "--final-episodes", "3"]  # fmt: skip
    script.main([*second_run, "--total-steps", "1024"])
    spec = load_task("cartpole")
    assert spec.second_expert is not None and spec.second_expert.train_steps == 1024
    assert spec.second_expert.path.parent == recipes / "cartpole" / "policies" / script.SECOND_EXPERT_DIR
    assert spec.second_expert.stochastic == ReturnStats(102.4, 0.0, 3, script.FINAL_SEED)
    assert BehaviorPolicy.load(spec.second_expert.path).info["train_steps"] == 1024
    assert yaml.safe_load((recipes / "cartpole" / "task.yaml").read_text())["behavior"] == behavior
    assert sorted(p.name for p in (recipes / "cartpole" / "policies").glob("*.npz")) == shipped
    script.main([*run, "--finalize"])  # re-selecting the first expert keeps the second
    assert load_task("cartpole").second_expert == spec.second_expert
