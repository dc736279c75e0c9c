"""Behaviour cloning end to end on InvertedPendulum: every head trains and acts, BC beats a random policy,
runs resume and bad datasets are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import minari_store

from rlgen.algos import BC, BCConfig
from rlgen.data import DatasetError, load_dataset
from rlgen.heads import HEAD_CONFIGS, head_config
from rlgen.rollout import evaluate
from rlgen.runs import load_agent, resume_run, start_run
from rlgen.tasks import load_task
from rlgen.train import RunDir, list_checkpoints

FAST = ["train.batch_size=64", "train.log_every=50", "train.eval_episodes=3", "agent.hidden=[64, 64]"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A Minari store holding small invertedpendulum-expert and cartpole-random datasets."""
    return minari_store(tmp_path_factory, {"invertedpendulum-expert": 4000, "cartpole-random": 500})


def test_short_bc_run_beats_a_random_policy(in_store) -> None:
    task = load_task("invertedpendulum")
    rng = np.random.default_rng(0)
    low, high = np.float32(-3.0), np.float32(3.0)
    random_policy = evaluate(lambda o: rng.uniform(low, high, (len(o), 1)).astype(np.float32), task, 5, 100_000)
    run, result = start_run("bc-dlml", "invertedpendulum-expert", [*FAST, "train.steps=300", "train.eval_every=0"],
                            run_dir="run", device="cpu", progress=False)  # fmt: skip
    final = json.loads((run.evals / "step_00000300.json").read_text())
    assert final["score_mean"] == result.last_scalars["eval/score"]
    assert final["score_mean"] > random_policy.score_mean + 30, (final["score_mean"], random_policy.score_mean)
    # the checkpoint reproduces the evaluated policy
    agent, _, config, step = load_agent(run.path, device="cpu")
    assert step == 300 and config.dataset == "invertedpendulum-expert"
    again = evaluate(agent.act, task, 3, config.recipe.train.eval_seed)
    assert again.returns == final["returns"]


@pytest.mark.parametrize("head", sorted(HEAD_CONFIGS))
def test_every_head_trains_and_acts_inside_the_box(head, store) -> None:
    task = load_task("invertedpendulum")
    data = load_dataset(store / "rlgen/invertedpendulum/expert-v0")
    agent = BC.create(BCConfig(head=head_config(head), hidden=(32,)), task, data, torch.device("cpu"))
    if head == "quantile":  # bins were fitted to the data: far from the initial uniform grid
        assert not torch.allclose(agent.policy.head.edges, torch.linspace(0, 1, 101).expand(1, 101))
    sampler = agent.sampler(data)
    rng = np.random.default_rng(0)
    first = float(agent.update(sampler.sample(128, rng))["loss"])
    for _ in range(30):
        last = float(agent.update(sampler.sample(128, rng))["loss"])
    assert last < first
    obs = data.observations[:7]
    for deterministic in (True, False):
        actions = agent.act(obs, deterministic)
        assert actions.shape == (7, 1) and actions.dtype == np.float32
        assert np.all(actions >= -3.0) and np.all(actions <= 3.0)
    np.testing.assert_allclose(agent.policy.obs_mean.numpy(), data.observations.mean(0), rtol=1e-4, atol=1e-6)


def test_resume_extends_a_finished_run(in_store) -> None:
    run, _ = start_run("bc-gaussian", "invertedpendulum-expert", [*FAST, "train.steps=40", "train.checkpoint_every=20"],
                       run_dir="run", device="cpu", progress=False)  # fmt: skip
    _, result = resume_run(run.path, ["train.steps=60"], device="cpu", progress=False)
    assert (result.start_step, result.step) == (40, 60)
    assert [s for s, _ in list_checkpoints(run.checkpoints)] == [40, 60]
    assert RunDir.open(run.path).read_config()["train"]["steps"] == 60
    with pytest.raises(ValueError, match="only train.steps may change"):
        resume_run(run.path, ["agent.lr=0.1"])


def test_bad_targets_and_mismatched_spaces_are_clear_errors(in_store) -> None:
    with pytest.raises(ValueError, match=r"neither a task \(.*invertedpendulum.*\), nor a dataset name"):
        start_run("bc-dlml", "invertedpendlum-expert", run_dir="a")
    with pytest.raises(DatasetError, match=r"key 'actions' has shape \(500,\); task invertedpendulum .* expects"):
        start_run("bc-dlml", str(in_store / "rlgen/cartpole/random-v0"), task="invertedpendulum", run_dir="b")
    with pytest.raises(ValueError, match="discrete action space"):
        start_run("bc-dlml", "cartpole-random", run_dir="c")
    with pytest.raises(FileNotFoundError, match="rlgen data make"):
        start_run("bc-dlml", "invertedpendulum-medium", run_dir="d")
