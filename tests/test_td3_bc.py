"""TD3+BC: lambda normalises Q by its batch magnitude without a gradient through it, observations are standardised
with the dataset's statistics, the actor and targets step every policy_delay updates, runs resume bit-identically
and discrete tasks are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import minari_store

from rlgen.algos import TD3BC, TD3BCConfig
from rlgen.algos.td3_bc import actor_loss
from rlgen.data import load_dataset, transitions
from rlgen.runs import start_run
from rlgen.tasks import load_task


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return minari_store(tmp_path_factory, {"invertedpendulum-random": 600, "cartpole-random": 300})


@pytest.fixture
def agent_and_data(store):
    data = load_dataset(store / "rlgen/invertedpendulum/random-v0")
    agent = TD3BC.create(TD3BCConfig(hidden=(32, 32)), load_task("invertedpendulum"), data, torch.device("cpu"))
    return agent, data


def test_lambda_is_alpha_over_the_mean_absolute_q_and_carries_no_gradient() -> None:
    q = torch.tensor([4.0, -2.0, 6.0, 0.0], requires_grad=True)
    pi = torch.tensor([[0.5], [1.0], [-1.0], [0.0]], requires_grad=True)
    actions = torch.tensor([[0.0], [1.0], [1.0], [0.5]])
    loss, lam, bc_loss = actor_loss(q, pi, actions, alpha=2.5)
    assert not lam.requires_grad
    assert float(lam) == pytest.approx(2.5 / 3.0)
    assert bc_loss.item() == pytest.approx((0.25 + 0.0 + 4.0 + 0.25) / 4)
    assert loss.item() == pytest.approx(-2.5 / 3.0 * 2.0 + bc_loss.item())
    loss.backward()
    torch.testing.assert_close(q.grad, torch.full((4,), -2.5 / 3.0 / 4))  # lambda is a constant
    torch.testing.assert_close(pi.grad, 2 * (pi - actions).detach() / 4)


def test_observations_are_standardised_with_the_dataset_statistics(agent_and_data) -> None:
    agent, data = agent_and_data
    obs = data.observations.astype(np.float64)
    np.testing.assert_allclose(agent.normalizer.mean.numpy(), obs.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(agent.normalizer.scale.numpy(), obs.std(0) + 1e-3, rtol=1e-5)
    x = data.observations[:6]
    expected = agent.actor(torch.as_tensor((x - obs.mean(0)) / (obs.std(0) + 1e-3), dtype=torch.float32))
    np.testing.assert_allclose(agent.act(x), expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(agent.act(x)) <= 3.0)


def test_actor_and_targets_step_every_policy_delay_updates(agent_and_data) -> None:
    agent, data = agent_and_data
    sampler, rng = transitions(data), np.random.default_rng(0)
    moved = []
    for _ in range(4):
        actor, q_target = agent.actor.out.weight.clone(), agent.q_target.q1.out.weight.clone()
        critic = agent.q.q1.out.weight.clone()
        scalars = agent.update(sampler.sample(32, rng))
        assert not torch.equal(critic, agent.q.q1.out.weight)  # the critic steps every update
        moved.append((not torch.equal(actor, agent.actor.out.weight),
                      not torch.equal(q_target, agent.q_target.q1.out.weight)))  # fmt: skip
        assert set(scalars) == {"q_loss", "q_mean", "actor_loss", "bc_loss", "lambda"}
    assert moved == [(True, True), (False, False), (True, True), (False, False)]


def test_critic_loss_is_td_to_the_smoothed_clipped_target_action(agent_and_data) -> None:
    agent, data = agent_and_data
    batch = transitions(data).sample(64, np.random.default_rng(1))
    obs = agent.normalizer(torch.as_tensor(batch.observations))
    q1, q2 = agent.q(obs, torch.as_tensor(batch.actions))
    torch.manual_seed(7)
    with torch.no_grad():
        noise = (torch.randn(64, 1) * 0.2).clamp(-0.5, 0.5) * 3.0  # half-width of [-3, 3]
        next_obs = agent.normalizer(torch.as_tensor(batch.next_observations))
        next_actions = (agent.actor_target(next_obs) + noise).clamp(-3.0, 3.0)
        target = torch.as_tensor(batch.rewards) + 0.99 * (1 - torch.as_tensor(batch.terminals)) * torch.minimum(
            *agent.q_target(next_obs, next_actions)
        )
    expected = F.mse_loss(q1, target) + F.mse_loss(q2, target)
    torch.manual_seed(7)
    torch.testing.assert_close(agent.update(batch)["q_loss"], expected.detach())


def test_td3_bc_resumes_bit_identically(in_store, check_resume) -> None:
    check_resume("td3-bc", "invertedpendulum-random")


def test_discrete_tasks_are_refused_before_a_run_folder_exists(in_store, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"random-v0: TD3\+BC needs continuous actions; task 'cartpole'"):
        start_run("td3-bc", "cartpole-random", run_dir="a")
    assert not (tmp_path / "a").exists()
