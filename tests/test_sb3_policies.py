"""rlgen.sb3 policies inside SB3's PPO and A2C and sb3-contrib's TRPO: training runs, save/load, predict, learning."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sb3_contrib import TRPO
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.evaluation import evaluate_policy

from rlgen.heads import AdaCatHeadConfig, DLMLHead, DLMLHeadConfig
from rlgen.sb3 import AdaCatPolicy, DLMLPolicy, GaussianHeadPolicy, HeadPolicy, UniformBinsPolicy

ENV = "InvertedPendulum-v5"
SMALL_DLML = {"head": DLMLHeadConfig(num_mixtures=3, num_classes=64)}
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("algo", [PPO, A2C, TRPO])
@pytest.mark.parametrize("policy", [DLMLPolicy, AdaCatPolicy, UniformBinsPolicy, GaussianHeadPolicy])
def test_algorithms_train_with_every_head(algo, policy) -> None:
    batch = {} if algo is A2C else {"batch_size": 64}
    head = SMALL_DLML if policy is DLMLPolicy else {}
    model = algo(policy, ENV, n_steps=128, seed=0, policy_kwargs={"net_arch": [16], **head}, **batch)
    model.learn(256)
    assert model.num_timesteps == 256
    for name, value in model.logger.name_to_value.items():
        assert math.isfinite(value), name


def test_head_options_and_bounds_come_through_policy_kwargs() -> None:
    model = PPO(DLMLPolicy, ENV, n_steps=64, batch_size=64, policy_kwargs={**SMALL_DLML, "log_std_init": -1.0})
    head = model.policy.action_net
    assert isinstance(head, DLMLHead) and (head.num_mixtures, head.num_classes) == (3, 64)
    np.testing.assert_allclose(head.low.numpy(), model.action_space.low)
    np.testing.assert_allclose(head.high.numpy(), model.action_space.high)
    # The policy starts spread (init: auto): K components evenly over the centred box, each with a K-th of the
    # spread exp(log_std_init) (a logistic's std is its scale times pi / sqrt 3).
    dist = model.policy.get_distribution(torch.zeros(4, *model.observation_space.shape)).distribution.box
    component_std = dist.log_scales.exp() * math.pi / math.sqrt(3.0)
    torch.testing.assert_close(component_std, torch.full_like(component_std, math.exp(-1.0) / 3), rtol=0.05, atol=0)
    torch.testing.assert_close(dist.means, torch.tensor([-2 / 3, 0.0, 2 / 3]).expand_as(dist.means), atol=0.05, rtol=0)
    kept = PPO(DLMLPolicy, ENV, n_steps=64, batch_size=64, policy_kwargs={"head": SMALL_DLML["head"].replace(
        init="torch")}).policy.action_net  # fmt: skip
    assert kept.proj.bias.abs().max() == 0  # SB3's ortho init only


def test_a_fresh_dlml_policy_acts_inside_the_box_not_on_its_bounds() -> None:
    model = PPO(DLMLPolicy, ENV, n_steps=64, batch_size=64, seed=0)
    observations = np.random.default_rng(0).normal(size=(256, *model.observation_space.shape)).astype(np.float32)
    deterministic, _ = model.predict(observations, deterministic=True)
    assert np.abs(deterministic).max() < 0.95 * model.action_space.high[0]  # components' means: within 0.9
    sampled, _ = model.predict(observations)
    on_bounds = np.isclose(np.abs(sampled), model.action_space.high[0]).mean()
    assert on_bounds < 0.05, on_bounds  # SB3's Gaussian, clipped: 0.32


def test_save_load_round_trip_gives_identical_predictions(tmp_path) -> None:
    model = PPO(DLMLPolicy, ENV, n_steps=64, batch_size=64, seed=0, policy_kwargs=SMALL_DLML)
    model.learn(64)
    observations = np.random.default_rng(0).normal(size=(16, *model.observation_space.shape)).astype(np.float32)
    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip")
    assert loaded.policy.action_net.num_mixtures == 3
    expected, _ = model.predict(observations, deterministic=True)
    actual, _ = loaded.predict(observations, deterministic=True)
    np.testing.assert_array_equal(actual, expected)
    # The policy alone round-trips too, and stochastic predictions match under the same torch seed.
    model.policy.save(tmp_path / "policy.pt")
    policy = HeadPolicy.load(tmp_path / "policy.pt")
    torch.manual_seed(1)
    expected_sample, _ = model.predict(observations)
    torch.manual_seed(1)
    actual_sample, _ = policy.predict(observations)
    np.testing.assert_array_equal(actual_sample, expected_sample)


def test_entropy_choice_survives_save_load_and_reaches_the_update(tmp_path) -> None:
    model = PPO(DLMLPolicy, ENV, n_steps=64, batch_size=64, seed=0,
                policy_kwargs={**SMALL_DLML, "exact_entropy": True})  # fmt: skip
    model.learn(64)
    model.save(tmp_path / "model.zip")
    assert PPO.load(tmp_path / "model.zip").policy.action_dist.exact_entropy is True
    obs = torch.zeros(4, *model.observation_space.shape)
    _, _, entropy = model.policy.evaluate_actions(obs, torch.zeros(4, 1))
    assert entropy is not None and entropy.shape == (4,)
    estimated = PPO(DLMLPolicy, ENV, n_steps=64, batch_size=64, seed=0, policy_kwargs=SMALL_DLML)
    assert estimated.policy.evaluate_actions(obs, torch.zeros(4, 1))[2] is None  # SB3 then uses -log pi(a|s)


def test_predict_deterministic_is_the_mode_when_asked_and_stochastic_samples() -> None:
    model = PPO(AdaCatPolicy, ENV, n_steps=64, batch_size=64, seed=0,
                policy_kwargs={"head": AdaCatHeadConfig(num_bins=8), "deterministic_action": "mode"})  # fmt: skip
    observations = np.random.default_rng(1).normal(size=(32, *model.observation_space.shape)).astype(np.float32)
    deterministic, _ = model.predict(observations, deterministic=True)
    with torch.no_grad():
        box = model.policy.get_distribution(torch.as_tensor(observations)).distribution.box
    np.testing.assert_allclose(deterministic, box.mode().numpy(), rtol=1e-6)
    first, _ = model.predict(observations)
    second, _ = model.predict(observations)
    assert not np.array_equal(first, second)
    assert (first >= model.action_space.low).all() and (first <= model.action_space.high).all()


def test_deterministic_action_can_be_the_mean_and_survives_save_load(tmp_path) -> None:
    model = PPO(DLMLPolicy, ENV, n_steps=64, batch_size=64, seed=0,
                policy_kwargs={**SMALL_DLML, "deterministic_action": "mean"})  # fmt: skip
    observations = np.random.default_rng(1).normal(size=(32, *model.observation_space.shape)).astype(np.float32)
    with torch.no_grad():
        box = model.policy.get_distribution(torch.as_tensor(observations)).distribution.box
    level_width = (model.action_space.high - model.action_space.low) / 63
    deterministic, _ = model.predict(observations, deterministic=True)
    assert np.abs(deterministic - box.mean.numpy()).max() <= 0.5 * level_width[0] + 1e-6  # snapped to a level
    model.save(tmp_path / "model.zip")
    np.testing.assert_array_equal(PPO.load(tmp_path / "model.zip").predict(observations, deterministic=True)[0],
                                  deterministic)  # fmt: skip
    assert PPO(DLMLPolicy, ENV, n_steps=64, batch_size=64).policy.action_dist.deterministic_action == "mean"
    adacat = PPO(AdaCatPolicy, ENV, n_steps=64, batch_size=64, seed=0)
    assert adacat.policy.action_dist.deterministic_action == "mean"
    with torch.no_grad():
        adacat_mean = adacat.policy.get_distribution(torch.as_tensor(observations)).distribution.box.mean.numpy()
    np.testing.assert_allclose(adacat.predict(observations, deterministic=True)[0], adacat_mean, atol=1e-6)
    with pytest.raises(ValueError, match="deterministic_action must be 'mode' or 'mean', got 'median'"):
        PPO(AdaCatPolicy, ENV, policy_kwargs={"deterministic_action": "median"})


def test_output_scale_keeps_the_initial_policy_and_scales_each_optimiser_step(tmp_path) -> None:
    observations = torch.as_tensor(np.random.default_rng(2).normal(size=(32, 4)).astype(np.float32))

    def policy_and_outputs(output_scale):
        torch.manual_seed(0)
        model = PPO(AdaCatPolicy, ENV, n_steps=64, batch_size=64, policy_kwargs={"output_scale": output_scale})
        latent = model.policy.mlp_extractor.forward_actor(observations).detach()
        return model, latent, model.policy.action_net.proj(latent)

    plain, latent, plain_out = policy_and_outputs(1.0)
    scaled, _, scaled_out = policy_and_outputs("auto")
    scale = scaled.policy.action_net.proj.scale
    assert scale == pytest.approx(1 / math.sqrt(22))  # 11 widths and 11 masses per action dimension
    torch.testing.assert_close(scaled_out, plain_out)
    # One Adam step on the same loss moves every output weight by about the learning rate either way, so the
    # outputs move `scale` times as far.
    changes = []
    for model, out in ((plain, plain_out), (scaled, scaled_out)):
        optimiser = torch.optim.Adam(model.policy.action_net.parameters(), lr=1e-3)
        optimiser.zero_grad()
        out.pow(2).sum().backward()
        optimiser.step()
        changes.append(model.policy.action_net.proj(latent).detach() - out.detach())
    torch.testing.assert_close(changes[1], scale * changes[0], rtol=1e-2, atol=1e-6)
    scaled.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip").policy
    assert loaded.output_scale == "auto"
    torch.testing.assert_close(loaded.action_net.proj(latent), scaled.policy.action_net.proj(latent))
    for bad in (0.0, -1.0, "half"):
        with pytest.raises(ValueError, match=f"output_scale must be a positive number or 'auto', got {bad!r}"):
            PPO(AdaCatPolicy, ENV, policy_kwargs={"output_scale": bad})


def test_trpo_line_search_succeeds_with_the_exact_dlml_kl() -> None:
    model = TRPO(DLMLPolicy, ENV, n_steps=256, batch_size=64, seed=0, policy_kwargs=SMALL_DLML)
    model.learn(256)
    values = model.logger.name_to_value
    assert values["train/is_line_search_success"] == 1.0
    assert 0.0 < values["train/kl_divergence_loss"] < model.target_kl


def test_trpo_takes_the_same_steps_with_gauss_newton_and_exact_kl_derivatives(tmp_path) -> None:
    parameters = {}
    for mode in ("initial", "exact", "gauss-newton"):
        kwargs = {**SMALL_DLML, "kl_derivatives": mode} if mode != "initial" else SMALL_DLML
        model = TRPO(DLMLPolicy, ENV, n_steps=256, seed=0, policy_kwargs=kwargs)
        model.learn(512 if mode != "initial" else 0)
        parameters[mode] = torch.cat([p.detach().flatten() for p in model.policy.parameters()])
    assert (parameters["exact"] - parameters["initial"]).abs().max() > 1e-2  # the two updates did something
    torch.testing.assert_close(parameters["gauss-newton"], parameters["exact"], atol=1e-4, rtol=1e-3)
    model.save(tmp_path / "model")
    assert TRPO.load(tmp_path / "model").policy.kl_derivatives == "gauss-newton"


@pytest.mark.slow
def test_example_script_dlml_ppo_learns_inverted_pendulum() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "sb3_dlml_ppo.py"), "--steps", "30000", "--seed", "0"],
        capture_output=True,
        text=True,
        check=True,
        timeout=1500,
    )
    mean_return = float(result.stdout.split("mean return ")[1].split()[0])
    assert mean_return >= 500.0, result.stdout  # a random policy scores about 5-10


@pytest.mark.slow
def test_trpo_with_a_dlml_policy_improves() -> None:
    model = TRPO(DLMLPolicy, ENV, n_steps=1024, seed=0, policy_kwargs=SMALL_DLML)
    before, _ = evaluate_policy(model, model.get_env(), n_eval_episodes=10)
    model.learn(20_000)
    after, _ = evaluate_policy(model, model.get_env(), n_eval_episodes=10)
    assert after > max(3 * before, 100.0), (before, after)


@pytest.mark.parametrize("cells", [0, None])
def test_adacat_policy_log_prob_is_continuous_in_the_parameters_ppo_updates(cells: int | None) -> None:
    # The default AdaCat policy (cells=None) against AdaCat's own density (cells=0), away from the uniform init so
    # that densities differ across edges: a tiny step of every policy parameter moves every sampled action's
    # log-prob (PPO's log-ratio) by a tiny amount, where AdaCat's own density jumps for actions an edge moves past.
    head = AdaCatPolicy.default_head if cells is None else AdaCatPolicy.default_head.replace(cells=cells)
    policy = PPO(AdaCatPolicy, ENV, n_steps=64, batch_size=64, seed=0, policy_kwargs={"head": head}).policy
    torch.manual_seed(0)
    torch.nn.init.normal_(policy.action_net.proj.weight, std=0.3)
    observations = torch.randn(4096, *policy.observation_space.shape)
    with torch.no_grad():
        dist = policy.get_distribution(observations)
        actions = dist.sample()
        before = dist.log_prob(actions)
        for parameter in policy.parameters():
            parameter.add_(1e-5 * torch.randn_like(parameter))
        change = (policy.get_distribution(observations).log_prob(actions) - before).abs().max().item()
    if cells == 0:
        assert change > 0.5
    else:
        assert change < 0.05
