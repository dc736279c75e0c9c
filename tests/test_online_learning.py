"""Slow learning checks of the online agents on CartPole-v1 with bounded budgets, through `start_run` exactly as
``rlgen train <agent> cartpole`` runs them (deterministic evaluation, 20 episodes, fixed seeds).

Run with ``pytest -m slow tests/test_online_learning.py`` (one at a time on a small CPU: each takes minutes).
"""

from __future__ import annotations

import pytest

from rlgen.runs import start_run

SOLVED = 475.0  # CartPole-v1's reward threshold
RANDOM_RETURN = 20.86  # envs/cartpole/task.yaml: uniform-random policy, 50 episodes


def _eval_returns(algo: str, tmp_path, overrides: list[str]) -> list[tuple[float, float]]:
    run, _ = start_run(algo, "cartpole", ["train.eval_episodes=20", *overrides], run_dir=tmp_path / algo,
                       device="cpu", progress=False)  # fmt: skip
    rows = [r for r in run.read_metrics() if "eval/return" in r]
    return [(r["progress/env_steps"], r["eval/return"]) for r in rows]


@pytest.mark.slow
def test_dqn_solves_cartpole_within_50k_env_steps(tmp_path) -> None:
    evals = _eval_returns("dqn", tmp_path, ["train.seed=1", "train.eval_every=1280"])  # every 5 rounds
    assert max(ret for _, ret in evals) >= SOLVED, evals


@pytest.mark.slow
def test_a2c_solves_cartpole_within_200k_env_steps(tmp_path) -> None:
    evals = _eval_returns("a2c", tmp_path, ["train.seed=1", "train.steps=200000", "train.eval_every=10000"])
    assert max(ret for _, ret in evals) >= SOLVED, evals


@pytest.mark.slow
def test_reinforce_improves_clearly_over_random(tmp_path) -> None:
    evals = _eval_returns("reinforce", tmp_path, ["train.seed=1", "train.steps=200000", "train.eval_every=50000"])
    assert evals[-1][1] >= 5 * RANDOM_RETURN, evals
