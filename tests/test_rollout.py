"""rlgen.rollout: exact episode counts, seeding independent of parallelism, scores and the results JSON."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

import rlgen.rollout.evaluation as evaluate_module
from rlgen.rollout import EvalResult, evaluate, record_video, standard_error, video_supported
from rlgen.rollout.behavior import BehaviorPolicy
from rlgen.tasks import load_task

DOCUMENTED_FIELDS = {
    "task", "env_id", "episodes", "seed", "returns", "lengths", "scores", "return_mean", "return_se",
    "score_mean", "score_se", "ref_min_score", "ref_max_score", "step",
}  # fmt: skip


@pytest.fixture(scope="module")
def pendulum():
    task = load_task("invertedpendulum")
    policy = BehaviorPolicy.load(task.replay[3].path)  # an early snapshot: short, seed-dependent episodes
    return task, lambda obs: policy.act(obs, np.random.default_rng(0), deterministic=True)


def test_exact_episodes_seeded_independently_of_parallelism(pendulum) -> None:
    task, policy = pendulum
    few = evaluate(policy, task, episodes=5, seed=7, num_envs=2)
    many = evaluate(policy, task, episodes=5, seed=7, num_envs=5)
    assert few.episodes == len(few.returns) == len(few.lengths) == 5
    assert few.returns == many.returns and few.lengths == many.lengths
    # reward 1 per step but 0 for the step that falls: return = length - 1; episodes differ by their seed
    assert few.returns == [float(n - 1) for n in few.lengths]
    assert len(set(few.lengths)) > 1
    # episode i starts from seed + i: shifting the seed by 2 shifts the episodes by 2
    shifted = evaluate(policy, task, episodes=3, seed=9, num_envs=2)
    assert shifted.returns == few.returns[2:]


def test_worker_processes_give_the_same_episodes() -> None:
    task = load_task("hopper")
    weights = np.random.default_rng(0).normal(scale=0.3, size=(task.obs_dim, task.act_dim))

    def policy(obs: np.ndarray) -> np.ndarray:
        return np.tanh(obs @ weights)

    sync = evaluate(policy, task, episodes=5, seed=3, num_envs=2)
    parallel = evaluate(policy, task, episodes=5, seed=3, num_envs=2, asynchronous=True)
    assert parallel.to_dict() == sync.to_dict() and len(set(sync.returns)) == 5


def test_a_policy_with_observe_is_told_every_reward_and_episode_end(pendulum) -> None:
    task, act = pendulum

    class Recording:
        def __init__(self) -> None:
            self.returns: list[float] = [0.0, 0.0]  # of the episode each env is running
            self.finished: list[float] = []

        def __call__(self, obs: np.ndarray) -> np.ndarray:
            return act(obs)

        def observe(self, rewards: np.ndarray, ended: np.ndarray) -> None:
            for i in range(2):
                self.returns[i] += rewards[i]
                if ended[i]:
                    self.finished.append(self.returns[i])
                    self.returns[i] = 0.0

    policy = Recording()
    result = evaluate(policy, task, episodes=5, seed=7, num_envs=2)
    # every episode's return is rebuilt from the feedback (an idle env may finish an extra, uncounted episode)
    assert len(policy.finished) >= 5
    assert not Counter(result.returns) - Counter(policy.finished)


def test_scores_follow_the_reference_scale(pendulum) -> None:
    task, policy = pendulum
    result = evaluate(policy, task, episodes=4, seed=0, num_envs=4)
    returns = np.asarray(result.returns)
    expected = 100 * (returns - task.ref_min_score) / (task.ref_max_score - task.ref_min_score)
    np.testing.assert_allclose(result.scores, expected)
    assert result.score_mean == pytest.approx(expected.mean())
    assert result.score_se == pytest.approx(expected.std(ddof=1) / 2)
    assert result.return_se == pytest.approx(standard_error(returns))
    assert standard_error(np.array([3.0])) == 0.0


def test_results_json_has_the_documented_fields(pendulum, tmp_path) -> None:
    task, policy = pendulum
    result = evaluate(policy, task, episodes=2, seed=0, step=123)
    path = result.write(tmp_path / "sub" / "results.json")
    data = json.loads(path.read_text())
    assert set(data) == DOCUMENTED_FIELDS
    assert data["step"] == 123 and data["task"] == "invertedpendulum" and data["env_id"] == task.env_id
    assert EvalResult(**data) == result
    assert set(result.scalars()) == {"eval/score", "eval/score_se", "eval/return", "eval/return_se", "eval/length"}
    documented = {line.split()[0] for line in evaluate_module.__doc__.split("::")[1].splitlines() if line.strip()}
    assert documented == DOCUMENTED_FIELDS  # the module docstring documents exactly these fields


def test_results_json_replaces_an_existing_file_only_when_forced(pendulum, tmp_path) -> None:
    task, policy = pendulum
    result = evaluate(policy, task, episodes=1, seed=0, step=5)
    path = tmp_path / "results.json"
    path.write_text("keep me")
    with pytest.raises(FileExistsError, match=f"{path} already exists"):
        result.write(path)
    assert path.read_text() == "keep me" and [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp left
    assert json.loads(result.write(path, force=True).read_text())["step"] == 5


def test_episodes_must_be_positive(pendulum) -> None:
    task, policy = pendulum
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        evaluate(policy, task, episodes=0, seed=0)


def test_video_is_skipped_with_a_message_without_the_render_extra(pendulum, tmp_path, capsys) -> None:
    task, policy = pendulum
    if video_supported():
        pytest.skip("the render extra is installed; the skip path cannot be exercised")
    assert record_video(policy, task, tmp_path / "episode.mp4", seed=0) is None
    assert "pip install 'rlgen[render]'" in capsys.readouterr().out
    assert not (tmp_path / "episode.mp4").exists()
