"""Online agents: the maths (returns-to-go, GAE, Double-DQN targets, ε schedule), the categorical head, the env
collector's exact restore, and kill-and-resume of online runs through the shared training loop."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rlgen.algos.actor_critic import Rollout
from rlgen.algos.dqn import linear_schedule, td_targets
from rlgen.algos.estimators import gae, returns_to_go
from rlgen.algos.networks import policy_head
from rlgen.config import ConfigError, build
from rlgen.heads import Categorical, CategoricalHead, DLMLHeadConfig
from rlgen.rollout import make_env
from rlgen.rollout.collector import VectorCollector
from rlgen.runs import get_algo, load_agent, load_recipe, resume_run, start_run
from rlgen.tasks import load_task
from rlgen.train import load_checkpoint

# ------------------------------------------------------------------------------------------------ maths


def test_returns_to_go_restart_where_episodes_end() -> None:
    rewards = np.array([1.0, 2.0, 3.0, 4.0, 5.0], dtype=np.float32)
    ends = np.array([0, 0, 1, 0, 1], dtype=np.float32)
    g = 0.5
    expected = [1 + g * 2 + g * g * 3, 2 + g * 3, 3, 4 + g * 5, 5]
    np.testing.assert_allclose(returns_to_go(rewards, ends, g), expected, rtol=1e-6)


def _gae_direct(rewards, values, next_values, ends, gamma, lam):
    """``A_t = sum_k (gamma lam)^k delta_{t+k}`` summed explicitly up to the episode's end or the rollout's."""
    deltas = rewards + gamma * next_values - values
    T, N = rewards.shape
    out = np.zeros_like(rewards)
    for n in range(N):
        for t in range(T):
            total, weight = 0.0, 1.0
            for k in range(t, T):
                total += weight * deltas[k, n]
                if ends[k, n]:
                    break
                weight *= gamma * lam
            out[t, n] = total
    return out


@pytest.mark.parametrize("lam", [0.0, 0.95, 1.0])
def test_gae_matches_the_direct_sum(lam: float) -> None:
    rng = np.random.default_rng(0)
    T, N, gamma = 7, 3, 0.9
    rewards, values, next_values = (rng.normal(size=(T, N)).astype(np.float32) for _ in range(3))
    ends = (rng.random((T, N)) < 0.3).astype(np.float32)
    got = gae(*(torch.as_tensor(x) for x in (rewards, values, next_values, ends)), gamma, lam)
    np.testing.assert_allclose(got.numpy(), _gae_direct(rewards, values, next_values, ends, gamma, lam), rtol=1e-5,
                               atol=1e-6)  # fmt: skip


def test_gae_with_lambda_one_is_the_discounted_return_minus_value() -> None:
    rewards = torch.tensor([[1.0], [1.0], [1.0]])
    values = torch.tensor([[0.5], [0.2], [0.1]])
    bootstrap = 10.0  # V of the state after the rollout
    next_values = torch.tensor([[0.2], [0.1], [bootstrap]])
    ends = torch.zeros(3, 1)
    adv = gae(rewards, values, next_values, ends, 0.9, 1.0)
    expected_return0 = 1 + 0.9 + 0.81 + 0.729 * bootstrap
    assert adv[0, 0].item() == pytest.approx(expected_return0 - 0.5, rel=1e-6)


def test_double_dqn_target_scores_the_online_choice_with_the_target_net() -> None:
    rewards, terminals = torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0])
    next_target = torch.tensor([[5.0, 1.0], [5.0, 1.0]])
    next_online = torch.tensor([[0.0, 3.0], [0.0, 3.0]])  # online net prefers action 1, target net action 0
    plain = td_targets(rewards, terminals, next_target, None, 0.5)
    double = td_targets(rewards, terminals, next_target, next_online, 0.5)
    torch.testing.assert_close(plain, torch.tensor([1.0 + 0.5 * 5.0, 1.0]))
    torch.testing.assert_close(double, torch.tensor([1.0 + 0.5 * 1.0, 1.0]))  # terminal: no bootstrap


def test_epsilon_schedule_is_linear_then_flat() -> None:
    assert linear_schedule(1.0, 0.1, 100, 0) == 1.0
    assert linear_schedule(1.0, 0.1, 100, 50) == pytest.approx(0.55)
    assert linear_schedule(1.0, 0.1, 100, 100) == pytest.approx(0.1)
    assert linear_schedule(1.0, 0.1, 100, 10_000) == pytest.approx(0.1)
    assert linear_schedule(1.0, 0.1, 0, 0) == 0.1


# ------------------------------------------------------------------------------------------------ categorical head


def test_categorical_head_log_prob_sample_mode_entropy() -> None:
    head = CategoricalHead(8, 2, num_classes=3)
    dist = head(torch.randn(5, 8))
    assert isinstance(dist, Categorical)
    probs = dist.probs
    torch.testing.assert_close(probs.sum(-1), torch.ones(5, 2))
    x = torch.tensor([[0, 2]] * 5)
    expected = probs[:, 0, 0].log() + probs[:, 1, 2].log()
    torch.testing.assert_close(dist.log_prob(x), expected)
    assert dist.sample().shape == (5, 2) and dist.sample().dtype == torch.int64
    torch.testing.assert_close(dist.mode(), probs.argmax(-1))
    torch.testing.assert_close(dist.entropy(), -(probs * probs.log()).sum((-1, -2)))
    torch.testing.assert_close(dist.mean, (probs * torch.arange(3.0)).sum(-1))


def test_categorical_samples_follow_the_probabilities() -> None:
    dist = Categorical(torch.log(torch.tensor([[[0.2, 0.5, 0.3]]])).expand(20_000, 1, 3))
    counts = torch.bincount(dist.sample().flatten(), minlength=3) / 20_000
    torch.testing.assert_close(counts, torch.tensor([0.2, 0.5, 0.3]), atol=0.015, rtol=0)


def test_categorical_rejects_bad_actions() -> None:
    dist = CategoricalHead(4, 1, num_classes=2)(torch.randn(3, 4))
    with pytest.raises(ValueError, match="outside the head's box"):
        dist.log_prob(torch.tensor([[0], [1], [2]]))
    with pytest.raises(ValueError, match="whole numbers"):
        dist.log_prob(torch.tensor([[0.5], [1.0], [0.0]]))
    with pytest.raises(ValueError, match="num_classes"):
        CategoricalHead(4, 1, num_classes=1)


def test_discrete_tasks_use_a_categorical_but_still_refuse_an_unknown_head() -> None:
    task = load_task("cartpole")
    assert isinstance(policy_head(task, 8, DLMLHeadConfig()), CategoricalHead)
    with pytest.raises(ConfigError, match="agent.head.type must be one of .*got 'bogus'"):
        build(get_algo("a2c").Config, {"head": "bogus"}, "agent")


# ------------------------------------------------------------------------------------------------ collector and runs


def test_collector_restores_mid_episode_environments_exactly() -> None:
    task = load_task("cartpole")
    rng = np.random.default_rng(3)
    actions = np.random.default_rng(4).integers(0, 2, size=(60, 3))
    a = VectorCollector(task, 3)
    for t in range(30):
        a.step(actions[t], rng)
    state, rng_state = a.state_dict(), rng.bit_generator.state
    b = VectorCollector(task, 3)
    b.load_state_dict(state)
    rng_b = np.random.default_rng()
    rng_b.bit_generator.state = rng_state
    np.testing.assert_array_equal(a.observations, b.observations)
    for t in range(30, 60):  # episodes end and restart in both with the same seeds
        sa, sb = a.step(actions[t], rng), b.step(actions[t], rng_b)
        np.testing.assert_array_equal(sa.next_observations, sb.next_observations)
        np.testing.assert_array_equal(sa.terminals, sb.terminals)
    assert a.episodes == b.episodes > 0 and a.env_steps == b.env_steps == 180


FAST = {
    "dqn": [
        "agent.learning_starts=50",
        "agent.buffer_size=500",
        "agent.hidden=[16]",
        "agent.epsilon_steps=200",
        "agent.target_update_interval=5",
        "agent.train_frequency=4",
        "agent.gradient_steps=2",
    ],
    "a2c": ["agent.hidden=[16]", "agent.num_envs=2", "agent.gae_lambda=0.9"],
    "reinforce": ["agent.hidden=[16]", "agent.episodes_per_update=1", "agent.num_envs=2"],
}


def _overrides(algo: str, steps: int) -> list[str]:
    return [f"train.steps={steps}", "train.checkpoint_every=75", "train.log_every=25", "train.eval_every=75",
            "train.eval_episodes=2", "train.eval_envs=2", "train.batch_size=16", *FAST[algo]]  # fmt: skip


@pytest.mark.parametrize("algo", ["dqn", "a2c", "reinforce"])
def test_kill_and_resume_of_an_online_run_matches_an_uninterrupted_one(tmp_path, algo: str) -> None:
    whole, full = start_run(algo, "cartpole", _overrides(algo, 300), run_dir=tmp_path / "whole", device="cpu",
                            progress=False)  # fmt: skip
    # The "killed" run stops after the first update that reaches 150 env steps; resuming it trains the rest.
    half, _ = start_run(algo, "cartpole", _overrides(algo, 150), run_dir=tmp_path / "half", device="cpu",
                        progress=False)  # fmt: skip
    _, result = resume_run(half.path, ["train.steps=300"], device="cpu", progress=False)
    assert 150 <= result.start_step < 300 <= result.step == full.step
    a = load_checkpoint(whole.checkpoints / f"step_{full.step:08d}.pt")
    b = load_checkpoint(half.checkpoints / f"step_{full.step:08d}.pt")
    for net in ("q", "target") if algo == "dqn" else ("policy", "value"):
        for key, value in a["agent"][net].items():
            torch.testing.assert_close(value, b["agent"][net][key], rtol=0, atol=0, msg=f"{net}.{key}")
    assert a["agent"]["collector"]["env_steps"] == b["agent"]["collector"]["env_steps"] >= 300
    assert (whole.path / "metrics.jsonl").read_text() == (half.path / "metrics.jsonl").read_text()


@pytest.mark.parametrize("algo", ["a2c", "reinforce"])
def test_online_agents_count_train_steps_in_env_steps(tmp_path, algo: str) -> None:
    run, result = start_run(algo, "cartpole", _overrides(algo, 100), run_dir=tmp_path / "run", device="cpu",
                            progress=False)  # fmt: skip
    env_steps = result.last_scalars["progress/env_steps"]
    assert result.step == env_steps >= 100
    checkpoint = load_checkpoint(run.checkpoints / f"step_{result.step:08d}.pt")
    updates = checkpoint["trainer"]["updates"]
    if algo == "a2c":  # 2 envs x 5 steps per update: the first update at or past 100 env steps is the 10th
        assert (updates, env_steps) == (10, 100)
    else:  # whole episodes per update: the last update crossed 100
        assert env_steps - 100 < 2 * 500
    steps = [row["step"] for row in run.read_metrics() if "eval/return" in row]
    assert steps == sorted(steps) and steps[-1] == result.step and len(steps) == 2  # past 75, then the end


def test_online_run_logs_env_steps_and_loads_for_evaluation(tmp_path) -> None:
    run, result = start_run("dqn", "cartpole", _overrides("dqn", 82), run_dir=tmp_path / "run", device="cpu",
                            progress=False)  # fmt: skip
    # warm-up, then 4 env steps before each pair of updates: 8 rounds (16 updates) reach 50 + 4 * 8 = 82
    assert result.last_scalars["progress/env_steps"] == 50 + 4 * 8 == result.step
    assert load_checkpoint(run.checkpoints / "step_00000082.pt")["trainer"]["updates"] == 16
    agent, task, config, step = load_agent(run.path, device="cpu")
    assert step == 82 and config.dataset is None
    actions = agent.act(np.zeros((3, task.obs_dim), dtype=np.float32))
    assert actions.shape == (3,) and actions.dtype == np.int64


def test_dqn_stops_at_the_end_of_the_round_that_reaches_its_budget(tmp_path) -> None:
    _, result = start_run("dqn", "cartpole", _overrides("dqn", 80), run_dir=tmp_path / "run", device="cpu",
                          progress=False)  # fmt: skip
    assert result.step == result.last_scalars["progress/env_steps"] == 82  # round 8 ends at 82, not 80


def test_online_agents_refuse_what_they_cannot_learn_from() -> None:
    with pytest.raises(ValueError, match="discrete action space"):
        get_algo("dqn").create(get_algo("dqn").Config(), load_task("invertedpendulum"), None, torch.device("cpu"))


@pytest.mark.parametrize("head", ["gaussian", "dlml", "adacat"])
def test_a2c_steps_a_continuous_task_with_any_head(tmp_path, head: str) -> None:
    options = ["agent.head.squash=false", "agent.head.state_dependent_std=false"] if head == "gaussian" else []
    overrides = [*_overrides("a2c", 40), "train.eval_every=0", "train.eval_episodes=1", "train.eval_envs=1",
                 f"agent.head={head}", *options]  # fmt: skip
    run, result = start_run("a2c", "invertedpendulum", overrides, run_dir=tmp_path / "ip", device="cpu",
                            progress=False)  # fmt: skip
    assert result.last_scalars["progress/env_steps"] == 4 * 5 * 2
    assert all(np.isfinite(result.last_scalars[f"train/{k}"]) for k in ("policy_loss", "value_loss", "entropy"))
    agent, task, *_ = load_agent(run.path, device="cpu")
    actions = agent.act(np.zeros((2, task.obs_dim), dtype=np.float32))
    assert actions.shape == (2, task.act_dim) and np.all(np.abs(actions) <= 3.0)


def test_orthogonal_init_gives_scaled_orthogonal_layers_and_a_near_uniform_policy() -> None:
    torch.manual_seed(0)
    config = get_algo("a2c").Config()
    agent = get_algo("a2c").create(config, load_task("cartpole"), None, torch.device("cpu"))
    first = agent.policy.body.net[0]  # (64, 4): orthonormal columns scaled by sqrt(2)
    assert torch.allclose(first.weight.T @ first.weight, 2.0 * torch.eye(first.in_features), atol=1e-5)
    assert torch.count_nonzero(first.bias) == 0
    out = agent.value.out.weight  # (1, 64): a unit row vector (gain 1)
    assert torch.allclose(out.norm(), torch.tensor(1.0), atol=1e-5)
    # The 0.01-gain output layer makes both CartPole actions nearly equally likely for any observation.
    probs = agent.policy(torch.randn(256, 4) * 3).log_prob_per_dim(torch.zeros(256, 1)).exp()
    assert torch.allclose(probs, torch.full_like(probs, 0.5), atol=0.02)


# ------------------------------------------------------------------------------------------------ SB3 parity


def _copy_sb3_weights(policy: torch.nn.Module, value: torch.nn.Module, sb3_policy: torch.nn.Module) -> None:
    """SB3's separate 64-64 actor and critic into rlgen's policy and value nets (same layer order)."""
    pairs = [
        (policy.body, sb3_policy.mlp_extractor.policy_net),
        (policy.head.proj, sb3_policy.action_net),
        (value.body, sb3_policy.mlp_extractor.value_net),
        (value.out, sb3_policy.value_net),
    ]
    with torch.no_grad():
        for ours, theirs in pairs:
            ours_linear = [m for m in ours.modules() if isinstance(m, torch.nn.Linear)]
            theirs_linear = [m for m in theirs.modules() if isinstance(m, torch.nn.Linear)]
            assert len(ours_linear) == len(theirs_linear)
            for a, b in zip(ours_linear, theirs_linear, strict=True):
                a.weight.copy_(b.weight)
                a.bias.copy_(b.bias)
        if hasattr(sb3_policy, "log_std"):
            policy.head.log_std.copy_(sb3_policy.log_std)


@pytest.mark.parametrize("task_name", ["cartpole", "invertedpendulum"])
def test_a2c_update_equals_sb3_a2c_update_from_the_same_weights_and_rollout(task_name: str) -> None:
    """One A2C gradient step with the shipped recipe, from SB3's initial weights, on a rollout with terminations
    and time-limit truncations, lands on the same weights as SB3's ``A2C.train`` (its defaults)."""
    from stable_baselines3 import A2C as SB3A2C
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import Logger

    task = load_task(task_name)
    recipe = load_recipe("a2c").agent
    n_envs, n_steps, gamma = recipe.num_envs, recipe.n_steps, recipe.gamma
    sb3 = SB3A2C("MlpPolicy", make_vec_env(lambda: make_env(task), n_envs=n_envs, seed=0), learning_rate=recipe.lr,
                 n_steps=n_steps, gamma=gamma, gae_lambda=recipe.gae_lambda, ent_coef=recipe.entropy_coef,
                 vf_coef=recipe.value_coef, max_grad_norm=recipe.grad_clip, seed=0, device="cpu")  # fmt: skip
    sb3.set_logger(Logger(folder=None, output_formats=[]))
    agent = get_algo("a2c").create(recipe, task, None, torch.device("cpu"))
    _copy_sb3_weights(agent.policy, agent.value, sb3.policy)

    # A made-up rollout: each env's next observation is the following step's, except where an episode ended
    # (terminated or truncated), which gets its own final observation and a fresh start.
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(n_steps + 1, n_envs, task.obs_dim, generator=g)
    final_obs = torch.randn(n_steps, n_envs, task.obs_dim, generator=g)
    terminals = torch.rand(n_steps, n_envs, generator=g) < 0.15
    truncations = ~terminals & (torch.rand(n_steps, n_envs, generator=g) < 0.15)
    ends = terminals | truncations
    rewards = torch.rand(n_steps, n_envs, generator=g)
    with torch.no_grad():
        raw_actions = sb3.policy.get_distribution(obs[:-1].flatten(0, 1)).sample().view(n_steps, n_envs, -1)
    next_obs = torch.where(ends.unsqueeze(-1), final_obs, obs[1:])
    rollout = Rollout(obs[:-1], raw_actions.float(), rewards, next_obs, terminals.float(), ends.float())

    buffer = sb3.rollout_buffer
    buffer.reset()
    with torch.no_grad():
        for t in range(n_steps):
            sb3_actions = raw_actions[t].numpy()
            values = sb3.policy.predict_values(obs[t])
            log_probs = sb3.policy.evaluate_actions(obs[t], raw_actions[t].squeeze(-1) if task.discrete
                                                    else raw_actions[t])[1]  # fmt: skip
            # SB3 bootstraps a truncated episode by adding gamma V(final observation) to its last reward.
            bootstrapped = rewards[t] + gamma * sb3.policy.predict_values(final_obs[t]).squeeze(-1) * truncations[t]
            starts = np.ones(n_envs) if t == 0 else ends[t - 1].numpy()
            buffer.add(obs[t].numpy(), sb3_actions, bootstrapped.numpy(), starts, values, log_probs)
        buffer.compute_returns_and_advantage(sb3.policy.predict_values(obs[-1]), ends[-1].numpy())
    sb3.train()
    agent.update(rollout)

    expected_policy, expected_value = copy.deepcopy(agent.policy), copy.deepcopy(agent.value)
    _copy_sb3_weights(expected_policy, expected_value, sb3.policy)  # SB3's updated weights in rlgen's layout
    for ours, theirs in [(agent.policy, expected_policy), (agent.value, expected_value)]:
        for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize(
    ("recipe", "override", "message"),
    [
        ("a2c", "agent.gamma=1.5", r"agent.gamma must be in \[0, 1\], got 1.5"),
        ("reinforce", "agent.lr=-1", "agent.lr must be > 0, got -1"),
        ("a2c", "agent.gae_lambda=2", r"agent.gae_lambda must be in \[0, 1\]"),
        ("dqn", "agent.epsilon_end=-0.1", r"agent.epsilon_end must be in \[0, 1\]"),
        ("dqn", "agent.tau=0", r"agent.tau must be in \(0, 1\]"),
    ],
)
def test_out_of_range_online_settings_are_config_errors(recipe: str, override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_recipe(recipe).with_overrides([override])
