"""GAIL: the TRPO step's maths (conjugate gradient, KL bound, surrogate gain), the discriminator, demonstration
subsampling, behaviour cloning with early stopping, bad input, the CLI, kill-and-resume, and (slow) imitation
that beats a random policy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import minari_store
from torch import Tensor, nn

from rlgen.algos.gail import (
    GAIL,
    CloneSettings,
    Demonstrations,
    Discriminator,
    GAILConfig,
    TRPOSettings,
    behaviour_clone,
    conjugate_gradient,
    discriminator_loss,
    discriminator_step,
    imitation_reward,
    subsample_demonstrations,
    trpo_step,
)
from rlgen.algos.gail.agent import EpisodeRollout
from rlgen.algos.gail.moments import RunningMoments
from rlgen.cli import main
from rlgen.config import ConfigError, apply_overrides
from rlgen.data import Episodes, load_dataset
from rlgen.heads import box_kl, head_config, make_head
from rlgen.rollout import evaluate
from rlgen.runs import load_agent, resume_run, start_run
from rlgen.tasks import load_task
from rlgen.train import load_checkpoint

# ------------------------------------------------------------------------------------------------ TRPO


def test_conjugate_gradient_solves_a_known_spd_system() -> None:
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, generator=gen, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iterations=6)  # exact in n steps (up to round-off)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-8, atol=1e-8)
    # fewer iterations: an approximation whose residual is still smaller than the starting one (x = 0)
    partial = conjugate_gradient(lambda v: a @ v, b, iterations=2)
    assert torch.linalg.norm(a @ partial - b) < torch.linalg.norm(b)


class _ToyPolicy(nn.Module):
    """A linear map of the observation into any rlgen head over [-1, 1]^2."""

    def __init__(self, head: str):
        super().__init__()
        self.head = make_head(head, 3, 2, -1.0, 1.0)

    def forward(self, obs: torch.Tensor):
        return self.head(obs)


def _toy_batch(policy: nn.Module, n: int = 128):
    gen = torch.Generator().manual_seed(1)
    obs = torch.randn(n, 3, generator=gen)
    with torch.no_grad():
        actions = policy(obs).sample()
    advantages = actions[:, 0] - actions[:, 1]  # reward pushing the first coordinate up, the second down
    return obs, actions, advantages


@pytest.mark.parametrize(("head", "max_kl"), [("gaussian", 0.01), ("gaussian", 1e-3), ("dlml", 0.01),
                                              ("adacat", 1e-3)])  # fmt: skip
def test_trpo_step_stays_within_the_kl_bound_and_improves_the_surrogate(head: str, max_kl: float) -> None:
    policy = _ToyPolicy(head)
    obs, actions, advantages = _toy_batch(policy)
    with torch.no_grad():
        old = policy(obs)
        old_log_prob = old.log_prob(actions)
    result = trpo_step(policy, obs, actions, advantages, TRPOSettings(max_kl=max_kl))
    with torch.no_grad():
        new = policy(obs)
        kl = float(box_kl(old, new).mean())
        gain = float(((new.log_prob(actions) - old_log_prob).exp() * advantages).mean() - advantages.mean())
    assert result.step_fraction > 0
    assert kl == pytest.approx(result.kl, rel=1e-4) and kl <= max_kl
    # the natural step is scaled to the edge of the trust region: not a timid one far inside it
    assert kl > 0.1 * max_kl
    assert gain == pytest.approx(result.improvement, rel=1e-3) and gain > 0


@pytest.mark.parametrize("head", ["gaussian", "adacat"])
def test_a_trpo_step_on_a_spread_policy_takes_its_full_step_near_the_kl_bound(head: str) -> None:
    # An SB3-sized policy (64 tanh features) starting spread, 32 AdaCat bins: the conjugate gradient solves the
    # damped Fisher system and the full natural step is accepted at a good share of the bound, not a sliver of it.
    torch.manual_seed(0)
    options = {"num_bins": 32} if head == "adacat" else {}
    policy = nn.Sequential(nn.Linear(3, 64), nn.Tanh(), make_head(head, 64, 1, -1.0, 1.0, **options))
    policy[2].spread_init()
    obs = torch.randn(1024, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        actions = policy(obs).sample()
    advantages = actions[:, 0] * obs[:, 0]
    result = trpo_step(policy, obs, actions, (advantages - advantages.mean()) / advantages.std(), TRPOSettings())
    assert result.step_fraction == 1.0 and 0.5 * 0.01 < result.kl <= 0.01, result
    assert result.improvement == pytest.approx(result.expected_improvement, rel=0.2)


def test_trpo_step_moves_the_mean_towards_advantageous_actions() -> None:
    policy = _ToyPolicy("gaussian")
    obs, actions, advantages = _toy_batch(policy, n=1024)
    before = policy(obs).mean.detach()
    for _ in range(5):
        trpo_step(policy, obs, actions, advantages, TRPOSettings(max_kl=0.01))
    shift = (policy(obs).mean.detach() - before).mean(0)
    assert shift[0] > 0.02 and shift[1] < -0.02, shift


def test_trpo_step_without_signal_leaves_the_policy_unchanged() -> None:
    policy = _ToyPolicy("gaussian")
    obs, actions, _ = _toy_batch(policy)
    before = [p.detach().clone() for p in policy.parameters()]
    result = trpo_step(policy, obs, actions, torch.zeros(len(obs)), TRPOSettings())
    assert result.step_fraction == 0 and result.kl == 0
    for p, q in zip(policy.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), q, rtol=0, atol=0)


def test_trpo_refuses_bad_input() -> None:
    policy = _ToyPolicy("gaussian")
    obs, actions, advantages = _toy_batch(policy)
    with pytest.raises(ValueError, match="one row per sample"):
        trpo_step(policy, obs, actions, advantages[:-1], TRPOSettings())
    with pytest.raises(ValueError, match="max_kl"):
        TRPOSettings(max_kl=0.0)
    with pytest.raises(ValueError, match="backtrack_ratio"):
        TRPOSettings(backtrack_ratio=1.0)


# ------------------------------------------------------------------------------------------------ discriminator


def test_discriminator_loss_is_the_negated_objective_of_eq_2_26() -> None:
    policy_logits, expert_logits = torch.randn(7), torch.randn(5)
    d_policy, d_expert = torch.sigmoid(policy_logits), torch.sigmoid(expert_logits)
    expected = -(d_policy.log().mean() + (1 - d_expert).log().mean())
    torch.testing.assert_close(discriminator_loss(policy_logits, expert_logits), expected)
    torch.testing.assert_close(imitation_reward(policy_logits), -d_policy.log())


def test_discriminator_learns_to_separate_two_distributions() -> None:
    gen = torch.Generator().manual_seed(0)
    shift = torch.tensor([1.0, -1.0, 0.5])

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(n, 3, generator=gen) + shift, torch.randn(n // 4, 3, generator=gen) - shift

    disc = Discriminator(3, (32, 32), "tanh")
    optimizer = torch.optim.Adam(disc.parameters(), lr=1e-2)
    first = discriminator_step(disc, optimizer, *draw(512))
    for _ in range(200):
        discriminator_step(disc, optimizer, *draw(512))
    policy_test, expert_test = draw(4000)
    with torch.no_grad():
        policy_logits, expert_logits = disc(policy_test), disc(expert_test)
    # Bayes accuracy for these two Gaussians is ~0.93 per class
    assert (policy_logits > 0).float().mean() > 0.85 and (expert_logits < 0).float().mean() > 0.85
    last = discriminator_step(disc, optimizer, *draw(512))
    assert last.loss < first.loss - 0.5
    # the policy's reward -log D is higher where the expert is
    assert imitation_reward(expert_logits).mean() > imitation_reward(policy_logits).mean() + 1.0


def test_discriminator_refuses_mismatched_inputs() -> None:
    disc = Discriminator(3, (8,), "tanh")
    with pytest.raises(ValueError, match="same features"):
        discriminator_step(disc, torch.optim.Adam(disc.parameters()), torch.zeros(4, 3), torch.zeros(4, 2))


# ------------------------------------------------------------------------------------------------ demonstrations


def _episodes(lengths: list[int], discrete: bool = False) -> Episodes:
    n = sum(lengths)
    ends = np.cumsum(lengths)
    timeouts = np.zeros(n, dtype=bool)
    timeouts[ends - 1] = True
    actions = np.zeros(n, dtype=np.int64) if discrete else np.arange(n, dtype=np.float32)[:, None]
    return Episodes(observations=np.arange(n, dtype=np.float32)[:, None].repeat(2, 1), actions=actions,
                    rewards=np.zeros(n, dtype=np.float32), terminals=np.zeros(n, dtype=bool), timeouts=timeouts,
                    episode_ends=ends)  # fmt: skip


def test_subsampling_keeps_evenly_spread_pairs_of_distinct_trajectories() -> None:
    lengths = [1000, 120, 30, 1000, 400]
    data = _episodes(lengths)
    demos = subsample_demonstrations(data, 4, 50, np.random.default_rng(0))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    chosen = np.unique(demos.episodes)
    assert demos.num_trajectories == len(chosen) == 4
    assert len(demos) == sum(min(lengths[e], 50) for e in chosen)
    for e in chosen:
        rows = demos.observations[demos.episodes == e, 0].astype(np.int64) - starts[e]
        assert np.all(np.diff(rows) > 0) and rows.min() >= 0 and rows.max() < lengths[e]
        if lengths[e] > 50:  # thinned: gaps of floor/ceil of the stride, covering the whole trajectory
            stride = lengths[e] / 50
            assert set(np.diff(rows)) <= {int(np.floor(stride)), int(np.ceil(stride))}
            assert rows.max() >= lengths[e] - np.ceil(stride)
    # actions stay paired with their observations; the same seed picks the same pairs
    np.testing.assert_array_equal(demos.actions[:, 0], demos.observations[:, 0])
    again = subsample_demonstrations(data, 4, 50, np.random.default_rng(0))
    np.testing.assert_array_equal(again.observations, demos.observations)
    every = subsample_demonstrations(data, 5, None, np.random.default_rng(0))
    assert len(every) == sum(lengths)


def test_subsampling_refuses_bad_requests() -> None:
    data = _episodes([100, 100])
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="only 2 episodes"):
        subsample_demonstrations(data, 3, 50, rng)
    with pytest.raises(ValueError, match="trajectories must be >= 1"):
        subsample_demonstrations(data, 0, 50, rng)
    with pytest.raises(ValueError, match="pairs_per_trajectory"):
        subsample_demonstrations(data, 1, 0, rng)
    with pytest.raises(ValueError, match="discrete"):
        subsample_demonstrations(_episodes([10], discrete=True), 1, 5, rng)
    with pytest.raises(ValueError, match="one row per pair"):
        Demonstrations(np.zeros((3, 2)), np.zeros((2, 1)), np.zeros(3))


def test_running_moments_match_the_moments_of_all_rows() -> None:
    rows = np.random.default_rng(0).normal(3.0, 2.0, size=(1000, 4))
    moments = RunningMoments(4)
    for chunk in np.array_split(rows, [10, 11, 400]):
        moments.update(chunk)
    np.testing.assert_allclose(moments.mean, rows.mean(0), rtol=1e-12)
    np.testing.assert_allclose(moments.var, rows.var(0), rtol=1e-10)
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        moments.update(np.zeros((3, 5)))


def test_gail_needs_a_hidden_layer() -> None:
    with pytest.raises(ConfigError, match=r"agent.hidden must list one or more layer widths.*got \[\]"):
        GAILConfig(hidden=())


# ------------------------------------------------------------------------------------------------ runs


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A Minari store holding a small invertedpendulum-expert dataset (4 episodes of 1000 steps)."""
    return minari_store(tmp_path_factory, {"invertedpendulum-expert": 4000})


def test_behaviour_cloning_stops_early_and_keeps_its_best_weights(store) -> None:
    task = load_task("invertedpendulum")
    demos = subsample_demonstrations(load_dataset(store / "rlgen/invertedpendulum/expert-v0"), 4, 50,
                                     np.random.default_rng(0))  # fmt: skip
    agent = GAIL.create(GAILConfig(hidden=(32, 32), num_envs=1), task, None, torch.device("cpu"))
    agent.set_demonstrations(demos)
    policy = agent.policy
    settings = CloneSettings(max_epochs=500, patience=20)
    held_out = np.random.default_rng(5).permutation(len(demos))[: int(np.ceil(0.3 * len(demos)))]
    obs, actions = torch.as_tensor(demos.observations[held_out]), torch.as_tensor(demos.actions[held_out])

    def validation() -> float:
        with torch.no_grad():
            return float(policy.head.loss(policy.features(obs), actions))

    before = validation()
    result = behaviour_clone(policy, demos, settings, np.random.default_rng(5))
    assert result.epochs < settings.max_epochs and result.epochs - result.best_epoch == settings.patience
    assert validation() == pytest.approx(result.validation_loss, rel=1e-6) and result.validation_loss < before - 0.5
    with pytest.raises(ValueError, match="too few"):
        behaviour_clone(policy, demos[:1], settings, np.random.default_rng(0))


FAST = ["train.steps={steps}", "train.checkpoint_every=96", "train.log_every=32", "train.eval_every=96",
        "train.eval_episodes=2", "train.eval_envs=2", "agent.hidden=[16]", "agent.num_envs=2", "agent.n_steps=16",
        "agent.trajectories=2", "agent.pairs_per_trajectory=10", "agent.entropy_weight=0.01",
        "agent.bc_warm_start=true", "agent.bc.max_epochs=5"]  # fmt: skip


def _fast(iterations: int) -> list[str]:
    """Fast settings for ``iterations`` iterations of 2 envs x 16 steps (``train.steps`` counts env steps)."""
    return [o.format(steps=32 * iterations) for o in FAST]


def test_kill_and_resume_of_a_gail_run_matches_an_uninterrupted_one(in_store, tmp_path) -> None:
    whole, _ = start_run("gail-trpo", "invertedpendulum-expert", _fast(6), run_dir=tmp_path / "whole", device="cpu",
                         progress=False)  # fmt: skip
    half, _ = start_run("gail-trpo", "invertedpendulum-expert", _fast(3), run_dir=tmp_path / "half", device="cpu",
                        progress=False)  # fmt: skip
    _, result = resume_run(half.path, ["train.steps=192"], device="cpu", progress=False)
    assert result.start_step == 96 and result.step == 192
    a = load_checkpoint(whole.checkpoints / "step_00000192.pt")["agent"]
    b = load_checkpoint(half.checkpoints / "step_00000192.pt")["agent"]
    for net in ("policy", "value", "discriminator"):
        for key, value in a[net].items():
            torch.testing.assert_close(value, b[net][key], rtol=0, atol=0, msg=f"{net}.{key}")
    assert a["collector"]["env_steps"] == b["collector"]["env_steps"] == 6 * 2 * 16
    assert a["moments"] == b["moments"] and a["iterations"] == b["iterations"] == 6
    metrics = (whole.path / "metrics.jsonl").read_text()
    assert metrics == (half.path / "metrics.jsonl").read_text()
    logged = [json.loads(line) for line in metrics.splitlines()]
    for name in ("disc_accuracy_policy", "disc_accuracy_expert", "kl", "entropy", "episode_return"):
        assert any(f"train/{name}" in row for row in logged), name
    assert "train/bc_validation_nll" in logged[0]  # the warm start ran once, before the first rollout
    # the checkpoint alone rebuilds the agent, demonstrations included
    agent, task, config, step = load_agent(whole.path, device="cpu")
    assert step == 192 and config.dataset == "invertedpendulum-expert" and isinstance(agent, GAIL)
    assert agent.demos is not None and len(agent.demos) == 2 * 10 and agent.demos.num_trajectories == 2
    actions = agent.act(np.zeros((3, task.obs_dim), dtype=np.float32))
    assert actions.shape == (3, 1) and np.all(np.abs(actions) <= 3.0)


def test_imitate_cli_runs_gail_on_the_expert_dataset(in_store, tmp_path, capsys) -> None:
    overrides = [o for o in _fast(3) if not o.startswith("agent.trajectories")]
    code = main(["imitate", "gail", "invertedpendulum", "--trajectories", "3", "--run-dir", str(tmp_path / "run"),
                 "--device", "cpu", "--no-progress", "--set", *overrides])  # fmt: skip
    assert code == 0 and "normalised score" in capsys.readouterr().out
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "dataset: invertedpendulum-expert" in config and "trajectories: 3" in config
    assert main(["imitate", "gail", "invertedpendulum", "--trajectories", "9"]) == 2
    assert "only 4 episodes" in capsys.readouterr().err
    assert main(["imitate", "--resume", str(tmp_path / "run"), "--trajectories", "2"]) == 2
    assert "drop --trajectories" in capsys.readouterr().err


def test_gail_refuses_what_it_cannot_imitate() -> None:
    cpu = torch.device("cpu")
    with pytest.raises(ValueError, match="discrete"):
        GAIL.create(GAILConfig(), load_task("cartpole"), None, cpu)
    agent = GAIL.create(GAILConfig(hidden=(8,), num_envs=1), load_task("invertedpendulum"), None, cpu)
    with pytest.raises(ValueError, match="expert demonstrations"):
        agent.sampler(None)
    with pytest.raises(ValueError, match="do not fit task"):
        agent.set_demonstrations(Demonstrations(np.zeros((2, 3), np.float32), np.zeros((2, 1), np.float32),
                                                np.zeros(2, np.int64)))  # fmt: skip
    with pytest.raises(ConfigError, match="agent.n_steps"):
        GAILConfig(n_steps=0)


# ------------------------------------------------------------------------------------------------ absorbing states

GAMMA = 0.99


def _ended_episodes() -> Episodes:
    """Three 2-D episodes of 5, 8 and 4 steps: the first and the last terminate, the middle one is truncated."""
    ends = np.cumsum([5, 8, 4])
    steps = np.arange(ends[-1])
    rng = np.random.default_rng(0)
    return Episodes(observations=rng.uniform(-1, 1, (ends[-1], 2)).astype(np.float32),
                    actions=rng.uniform(-1, 1, (ends[-1], 2)).astype(np.float32),
                    rewards=np.zeros(ends[-1], np.float32), terminals=np.isin(steps, ends[[0, 2]] - 1),
                    timeouts=steps == ends[1] - 1, episode_ends=ends)  # fmt: skip


def _detour_gail(absorbing: bool | str, **options) -> GAIL:
    """GAIL on detour imitating 2 pairs of each of :func:`_ended_episodes`."""
    config = GAILConfig(trajectories=3, pairs_per_trajectory=2, hidden=(8,), num_envs=2, gamma=GAMMA,
                        absorbing=absorbing, **options)  # fmt: skip
    return GAIL.create(config, load_task("detour"), _ended_episodes(), torch.device("cpu"))


def _rollout() -> EpisodeRollout:
    """3 steps x 2 envs: env 0's episode terminates at step 1, its 7th step; env 1's is truncated at step 2."""
    gen = torch.Generator().manual_seed(0)
    terminals, dones = torch.zeros(3, 2), torch.zeros(3, 2)
    terminals[1, 0] = dones[1, 0] = dones[2, 1] = 1.0
    return EpisodeRollout(torch.rand(3, 2, 2, generator=gen), torch.rand(3, 2, 2, generator=gen) * 2 - 1,
                          torch.zeros(3, 2), torch.rand(3, 2, 2, generator=gen), terminals, dones,
                          torch.tensor([[6, 98], [7, 99], [1, 100]]))  # fmt: skip


def test_demonstrations_record_how_their_trajectories_ended() -> None:
    demos = subsample_demonstrations(_ended_episodes(), 3, 2, np.random.default_rng(0))
    assert demos.episodes.tolist() == [0, 0, 1, 1, 2, 2]
    assert demos.trajectory_lengths.tolist() == [5, 5, 8, 8, 4, 4]
    assert demos.terminated.tolist() == [True, True, False, False, True, True]
    assert demos[2:4].terminated.tolist() == [False, False] and demos[2:4].trajectory_lengths.tolist() == [8, 8]
    bare = Demonstrations(demos.observations, demos.actions, demos.episodes)  # endings unknown: none terminated
    assert bare.trajectory_lengths.tolist() == [2] * 6 and not bare.terminated.any()


def test_absorbing_states_follow_gail_config_and_task() -> None:
    assert _detour_gail("auto").absorbing and not _detour_gail(False).absorbing
    cpu = torch.device("cpu")
    assert not GAIL.create(GAILConfig(hidden=(8,), num_envs=1), load_task("invertedpendulum"), None, cpu).absorbing
    assert GAIL.create(GAILConfig(hidden=(8,), num_envs=1, absorbing=True), load_task("invertedpendulum"), None,
                       cpu).discriminator.body.in_features == 4 + 1 + 1  # fmt: skip
    assert _detour_gail("auto").discriminator.body.in_features == 2 + 2 + 1
    with pytest.raises(ConfigError, match="agent.absorbing needs agent.gamma < 1"):
        GAIL.create(GAILConfig(gamma=1.0), load_task("detour"), None, cpu)
    with pytest.raises(ConfigError, match="agent.absorbing must be auto, true or false"):
        GAILConfig(absorbing=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="agent.absorbing must be one of"):
        apply_overrides(GAILConfig(), ["absorbing=sometimes"], "agent")
    assert apply_overrides(GAILConfig(), ["absorbing=false"], "agent").absorbing is False


def test_absorbing_samples_follow_the_terminations_of_both_sides() -> None:
    agent, plain = _detour_gail(True), _detour_gail(False)
    policy, policy_weights, expert, expert_weights = agent.discriminator_inputs(_rollout())
    plain_policy, no_weights, plain_expert, no_expert_weights = plain.discriminator_inputs(_rollout())
    assert no_weights is None and no_expert_weights is None
    absorbing = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0]])
    # the real pairs: the same features as without absorbing states, then an indicator of 0
    torch.testing.assert_close(policy[:6], torch.cat([plain_policy, torch.zeros(6, 1)], 1))
    torch.testing.assert_close(expert[:6], torch.cat([plain_expert, torch.zeros(6, 1)], 1))
    # one absorbing sample per termination: env 0's at step 1; the expert's first and last trajectories
    torch.testing.assert_close(policy[6:], absorbing)
    torch.testing.assert_close(expert[6:], absorbing.expand(2, 5))

    def weight(samples: int, length: int) -> float:
        return samples * GAMMA**length / (1 - GAMMA**length)

    torch.testing.assert_close(policy_weights, torch.tensor([1.0] * 6 + [weight(7, 7)]))
    torch.testing.assert_close(expert_weights, torch.tensor([1.0] * 6 + [weight(2, 5), weight(2, 4)]))


def test_a_terminated_step_bootstraps_from_the_absorbing_value_and_a_truncated_one_from_its_next_state() -> None:
    batch = _rollout()
    agent, plain = _detour_gail(True), _detour_gail(False)
    continued = torch.ones(3, 2, dtype=torch.bool)
    continued[1, 0] = False
    with torch.no_grad():
        r_abs = -torch.log(torch.sigmoid(agent.discriminator(torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0]]))))
        v_abs = float(r_abs) / (1 - GAMMA)
        for gail, offset, terminated in ((agent, v_abs, v_abs), (plain, 0.0, 0.0)):
            # V(s'): the network's output, which with absorbing states learns V - V_abs
            expected = gail.value(gail.normalise(batch.next_observations)) + offset
            torch.testing.assert_close(gail.state_values(batch.next_observations), expected)
            next_values = gail.next_values(batch)
            torch.testing.assert_close(next_values[continued], expected[continued])  # the truncated [2, 1] too
            assert float(next_values[1, 0]) == pytest.approx(terminated, rel=1e-5)


@pytest.mark.parametrize("absorbing", [True, False])
def test_moving_the_normaliser_leaves_the_policy_value_and_discriminator_as_they_were(absorbing: bool) -> None:
    agent = _detour_gail(absorbing)
    gen = torch.Generator().manual_seed(0)
    obs, actions = torch.rand(32, 2, generator=gen) * 2 - 1, torch.rand(32, 2, generator=gen) * 2 - 1

    @torch.no_grad()
    def outputs() -> list[Tensor]:
        dist = agent.policy(obs)
        disc = [agent.discriminator(agent.pair_features(obs, actions))]
        return [dist.log_prob(actions), dist.entropy(), agent.state_values(obs), *disc,
                *([agent.absorbing_reward()] if absorbing else [])]  # fmt: skip

    before, old_mean = outputs(), agent.policy.obs_mean.clone()
    agent.update_normaliser(torch.rand(500, 2, generator=gen) * 3 + 1)  # states far from the demonstrations'
    assert (agent.policy.obs_mean - old_mean).abs().min() > 0.5  # the statistics moved a lot ...
    for got, expected in zip(outputs(), before, strict=True):  # ... and no network moved with them
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_rollouts_count_the_steps_of_each_episode() -> None:
    agent = _detour_gail(True, n_steps=120)
    batch = agent.sample(0, np.random.default_rng(0))
    steps, dones = batch.episode_steps, batch.dones.bool()
    assert dones.any() and torch.all(steps[0] == 1)
    torch.testing.assert_close(steps[1:], torch.where(dones[:-1], 1, steps[:-1] + 1))
    assert steps.max() <= load_task("detour").max_episode_steps


@pytest.fixture(scope="module")
def detour_store(tmp_path_factory):
    """A Minari store holding a small detour-expert dataset (about 20 episodes that reach the goal)."""
    return minari_store(tmp_path_factory, {"detour-expert": 600}, num_envs=2)


def test_a_gail_run_with_absorbing_states_resumes_bit_for_bit(detour_store, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(detour_store))
    start_run("gail-trpo", "detour-expert", _fast(6), run_dir=tmp_path / "whole", device="cpu", progress=False)
    half, _ = start_run("gail-trpo", "detour-expert", _fast(3), run_dir=tmp_path / "half", device="cpu",
                        progress=False)  # fmt: skip
    resume_run(half.path, ["train.steps=192"], device="cpu", progress=False)
    a = load_checkpoint(tmp_path / "whole" / "checkpoints" / "step_00000192.pt")["agent"]
    b = load_checkpoint(half.checkpoints / "step_00000192.pt")["agent"]
    for key, value in a["discriminator"].items():
        torch.testing.assert_close(value, b["discriminator"][key], rtol=0, atol=0, msg=key)
    metrics = (tmp_path / "whole" / "metrics.jsonl").read_text()
    assert metrics == (half.path / "metrics.jsonl").read_text() and "train/absorbing_reward" in metrics
    agent, *_ = load_agent(half.path, device="cpu")
    assert isinstance(agent, GAIL) and agent.absorbing and agent.demos is not None
    assert agent.demos.terminated.any()  # the expert reaches the goal (a trajectory cut by the data's end does not)


@pytest.mark.slow
def test_gail_beats_a_random_policy_clearly(in_store, tmp_path) -> None:
    task = load_task("invertedpendulum")
    rng = np.random.default_rng(0)
    random_policy = evaluate(lambda o: rng.uniform(-3.0, 3.0, (len(o), 1)).astype(np.float32), task, 10, 100_000)
    overrides = ["train.steps=61440", "train.eval_every=0", "train.eval_episodes=10", "agent.trajectories=4",
                 "agent.n_steps=256"]  # fmt: skip
    _, result = start_run("gail-trpo", "invertedpendulum-expert", overrides, run_dir=tmp_path / "gail",
                          device="cpu", progress=False)  # fmt: skip
    # 30 iterations = 61k environment steps; the expert holds the pole for all 1000 steps
    assert result.last_scalars["progress/env_steps"] == 30 * 2048
    assert result.last_scalars["eval/return"] > max(500.0, 20 * random_policy.return_mean), (
        result.last_scalars["eval/return"], random_policy.return_mean)  # fmt: skip


@pytest.mark.slow
def test_absorbing_states_let_gail_reach_the_goal_on_detour(tmp_path_factory, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari_store(tmp_path_factory, {"detour-expert": 3000}, num_envs=2)))
    task = load_task("detour")
    success = {}
    for absorbing in ("true", "false"):
        overrides = ["train.steps=153600", "train.eval_every=0", "train.log_every=15360", "agent.bc_warm_start=true",
                     "agent.disc_steps=10", f"agent.absorbing={absorbing}"]  # fmt: skip
        run, _ = start_run("gail-trpo", "detour-expert", overrides, run_dir=tmp_path / absorbing, device="cpu",
                           progress=False)  # fmt: skip
        agent, *_ = load_agent(run.path, device="cpu")
        with torch.no_grad():
            returns = np.array(evaluate(agent.act, task, 50, 100_000).returns)
        success[absorbing] = float(np.mean(returns > 3.0))  # only the goal's bonus lifts a return above 3
    # 150 iterations: with absorbing states the policy goes round the wall; without, it hovers short of the goal
    assert success["true"] >= 0.8 and success["false"] <= 0.2, success


@pytest.mark.parametrize("action", ["peak", "mode", "mean"])
def test_gail_acts_with_its_configured_deterministic_action(action: str) -> None:
    agent = _detour_gail(False, head=head_config("dlml"), action=action, peak_width=0.3)
    obs = np.random.default_rng(0).uniform(-1, 1, (16, 2)).astype(np.float32)
    with torch.no_grad():
        dist = agent.policy(torch.as_tensor(obs))
        points = {kind: dist.point(kind, 0.3).clamp(-1.0, 1.0).numpy() for kind in ("peak", "mode", "mean")}
    acted = agent.act(obs)
    np.testing.assert_allclose(acted, points[action], atol=1e-6)
    assert all(not np.allclose(acted, points[other], atol=1e-3) for other in points if other != action)
    with pytest.raises(ConfigError, match="agent.peak_width must be in"):
        GAILConfig(peak_width=0.0)
