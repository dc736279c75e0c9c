"""The TT agent on the shared machinery: recipes load, `rlgen train` trains and evaluates it, checkpoints
round-trip, and the context-keeping policy plans with each environment's own past."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import minari_store

from rlgen.algos.tt.agent import TT, TTPolicy, learning_rate_factor
from rlgen.config import ConfigError
from rlgen.runs import load_agent, load_recipe, start_run
from rlgen.tasks import load_task

TINY = ["train.batch_size=16", "train.log_every=10", "train.eval_episodes=2", "train.eval_envs=2",
        "agent.model.n_layer=1", "agent.model.n_embd=32", "agent.model.n_head=2", "agent.model.sequence_length=4",
        "agent.planner.beam_width=2", "agent.planner.horizon=2", "agent.planner.context=1",
        "agent.warmup_steps=5"]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return minari_store(tmp_path_factory, {"invertedpendulum-expert": 1500})


@pytest.mark.parametrize("name", ["tt-uniform", "tt-quantile", "tt-adacat"])
def test_recipes_load_with_the_cpu_preset_and_the_paper_defaults(name: str) -> None:
    recipe = load_recipe(name)
    assert recipe.algo == "tt" and recipe.agent.model.head.type == name.split("-")[1]
    paper = recipe.with_overrides(["agent.model.sequence_length=20", "agent.planner.beam_width=128",
                                   "agent.planner.horizon=15", "agent.planner.context=5"])  # fmt: skip
    assert paper.agent.planner.beam_width == 128
    with pytest.raises(ConfigError, match="sequence_length"):
        recipe.with_overrides(["agent.planner.window=1000"])
    assert recipe.with_overrides(["agent.planner.horizon=15"]).agent.planner.horizon == 15  # windowed: any horizon
    with pytest.raises((ConfigError, ValueError), match="rank_bins"):
        recipe.with_overrides(["agent.planner.rank_bins=width"])


def test_learning_rate_warms_up_then_decays_to_a_tenth() -> None:
    factors = [learning_rate_factor(s, 10, 110) for s in (0, 9, 10, 60, 110, 500)]
    assert factors[0] == pytest.approx(0.1) and factors[1] == 1.0 and factors[2] == 1.0
    assert factors[3] == pytest.approx(0.5) and factors[4] == factors[5] == pytest.approx(0.1)


def test_train_eval_and_reload_a_tt_run(store, monkeypatch) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(store))
    run, result = start_run("tt-adacat", "invertedpendulum-expert",
                            [*TINY, "train.steps=20", "train.eval_every=0", "agent.ema=0.9"],
                            run_dir="run", device="cpu", progress=False)  # fmt: skip
    final = json.loads((run.evals / "step_00000020.json").read_text())
    assert len(final["returns"]) == 2 and np.isfinite(result.last_scalars["train/loss"])
    agent, task, _, step = load_agent(run.path, device="cpu")
    assert step == 20 and isinstance(agent, TT)
    # The checkpoint carries the data-derived bounds and the EMA weights that plan.
    assert agent.model.low.abs().sum() > 0 and agent.ema is not None
    torch.manual_seed(0)
    actions = agent.act(np.zeros((3, task.obs_dim), np.float32))
    assert actions.shape == (3, task.act_dim) and np.all(np.abs(actions) <= 3.0)


def test_policy_keeps_the_last_transitions_of_each_environment(store) -> None:
    from rlgen.data import load_dataset

    task = load_task("invertedpendulum")
    data = load_dataset(store / "rlgen/invertedpendulum/expert-v0")
    recipe = load_recipe("tt-quantile").with_overrides(TINY)
    agent = TT.create(recipe.agent, task, data, torch.device("cpu"))
    policy = TTPolicy(agent, generator=torch.Generator().manual_seed(0))
    obs = data.observations[:2]
    with pytest.raises(RuntimeError):
        policy.observe(np.zeros(2), np.zeros(2, bool))
    for step in range(3):
        actions = policy(obs)
        policy.observe(np.array([1.0, 2.0]), np.array([False, step == 2]))
    assert policy.contexts[0].shape == (1, agent.layout.dim)  # the last `context` (1) transitions
    assert policy.contexts[0][0, agent.layout.reward] == 1.0
    np.testing.assert_array_equal(policy.contexts[0][0, task.obs_dim : task.obs_dim + task.act_dim], actions[0])
    assert len(policy.contexts[1]) == 0  # its episode ended
    with pytest.raises(ValueError, match="2 environments"):
        policy(data.observations[:3])
