"""rlgen.data in memory: the episodes container, transition and segment views, replay buffer, statistics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from rlgen.data import (
    DatasetError,
    Episodes,
    ReplayBuffer,
    Segments,
    Statistics,
    check_actions_in_box,
    normalized_score,
    reward_to_go,
    transitions,
)
from rlgen.data.codec import from_json, to_json


def two_episodes(final: bool = False) -> Episodes:
    """Episode 0: steps 0-2, ends in a timeout. Episode 1: steps 3-4, ends in a terminal.

    Observation row i is ``[i, 10 i]``, so every next-observation is recognisable; finals are ``-1``/``-2``.
    """
    obs = np.stack([np.arange(5), 10 * np.arange(5)], axis=1).astype(np.float32)
    return Episodes(
        observations=obs,
        actions=np.arange(5, dtype=np.float32)[:, None],
        rewards=np.array([1.0, 2.0, 3.0, 4.0, 5.0], dtype=np.float32),
        terminals=np.array([0, 0, 0, 0, 1], dtype=bool),
        timeouts=np.array([0, 0, 1, 0, 0], dtype=bool),
        episode_ends=np.array([3, 5]),
        final_observations=np.array([[-1, -1], [-2, -2]], dtype=np.float32) if final else None,
        source="two-episodes",
    )


def d4rl_qlearning_reference(ep: Episodes) -> tuple[list[int], np.ndarray]:
    """d4rl.qlearning_dataset's loop, written out: kept step indices and their next observations."""
    kept, nxt = [], []
    for i in range(ep.num_steps - 1):
        if ep.timeouts[i]:
            continue
        kept.append(i)
        nxt.append(ep.observations[i + 1])
    return kept, np.array(nxt)


# ------------------------------------------------------------------------------------------------ container


def test_shape_properties_and_returns():
    ep = two_episodes()
    assert (ep.num_steps, ep.num_episodes) == (5, 2)
    assert ep.observation_shape == (2,) and ep.action_shape == (1,) and not ep.discrete_actions
    np.testing.assert_array_equal(ep.episode_starts, [0, 3])
    np.testing.assert_array_equal(ep.episode_lengths, [3, 2])
    np.testing.assert_array_equal(ep.episode_index(), [0, 0, 0, 1, 1])
    np.testing.assert_allclose(ep.episode_returns(), [6.0, 9.0])


def test_float64_input_becomes_float32_and_int_actions_stay_discrete():
    ep = two_episodes()
    ep64 = dataclasses.replace(
        ep, observations=ep.observations.astype(np.float64), actions=np.array([0, 1, 1, 0, 2], dtype=np.int32)
    )
    assert ep64.observations.dtype == np.float32 and np.array_equal(ep64.observations, ep.observations)
    assert ep64.actions.dtype == np.int64 and ep64.discrete_actions and ep64.action_shape == ()


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        (dict(actions=np.zeros((4, 1), np.float32)), ["two-episodes", "'actions'", "4 rows", "expected 5"]),
        (dict(rewards=np.zeros(6, np.float32)), ["'rewards'", "6 rows", "expected 5"]),
        (dict(terminals=np.array([1, 0, 0, 0, 1], bool)), ["'terminals'", "step 0", "not the last step"]),
        (dict(timeouts=np.array([0, 0, 2, 0, 0])), ["'timeouts'", "value 2"]),
        (dict(episode_ends=np.array([3, 4])), ["'episode_ends'", "number of steps 5"]),
        (dict(episode_ends=np.array([3, 3, 5])), ["'episode_ends'", "strictly increasing"]),
        (dict(observations=np.array(list("abcde"))), ["'observations'", "dtype <U1"]),
        (dict(observations=np.zeros(5, np.float32)), ["'observations'", "at least 2 dimensions"]),
        (dict(final_observations=np.zeros((3, 2), np.float32)), ["'final_observations'", "expected (2, 2)"]),
        (dict(infos={"qpos": np.zeros(4)}), ["'infos/qpos'", "4 rows", "expected 5"]),
    ],
)
def test_validation_errors_name_the_key_and_expectation(change, needles):
    with pytest.raises(DatasetError) as err:
        dataclasses.replace(two_episodes(), **change)
    for needle in needles:
        assert needle in str(err.value)


@pytest.mark.parametrize("key", ["observations", "actions", "rewards", "final_observations"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_reported_with_their_index(key, bad):
    ep = two_episodes(final=True)
    array = getattr(ep, key).copy()
    index = (1,) if array.ndim == 1 else (1, array.shape[1] - 1)
    array[index] = bad
    with pytest.raises(DatasetError, match=rf"'{key}' has a non-finite value \({bad}\) at index \({index[0]},"):
        dataclasses.replace(ep, **{key: array})


def box_episodes(actions: np.ndarray) -> Episodes:
    """``two_episodes`` (3 + 2 steps) with other actions."""
    return dataclasses.replace(two_episodes(), actions=actions)


def test_actions_inside_the_box_pass_within_float_tolerance():
    actions = np.array([[-1, 0], [1, 2], [0, 4], [0.25, 0], [-1, -4]], np.float32)
    check_actions_in_box(box_episodes(actions), [-1, -4], [1, 4])
    check_actions_in_box(box_episodes(actions), [-1, -np.inf], [1, np.inf])  # an infinite side is open
    # float32(0.3) is above float64 0.3: within the tolerance; 1e-4 of the width beyond is not
    actions[1, 0] = np.float32(0.3)
    check_actions_in_box(box_episodes(actions), [-1, -4], [0.3, 4])
    actions[1, 0] = 0.3 + 1e-4 * 1.3
    with pytest.raises(DatasetError, match="episode 0, step 1"):
        check_actions_in_box(box_episodes(actions), [-1, -4], [0.3, 4])
    check_actions_in_box(box_episodes(np.array([0, 1, 2, 1, 0])), 0, 2)  # discrete: the box is an int range


@pytest.mark.parametrize(
    ("row", "dim", "value", "where"),
    [(4, 1, -4.5, "episode 1, step 1 (row 4), dimension 1"), (0, 0, 1.5, "episode 0, step 0 (row 0), dimension 0")],
)
def test_action_outside_the_box_is_named_with_source_episode_step_and_value(row, dim, value, where):
    actions = np.zeros((5, 2), np.float32)
    actions[row, dim] = value
    with pytest.raises(DatasetError) as err:
        check_actions_in_box(box_episodes(actions), -1, [1, 4], source="hopper-medium")
    bounds = ["-1.0, 1.0", "-1.0, 4.0"][dim]
    assert str(err.value) == (
        f"hopper-medium: key 'actions' has value {value} at {where}, outside the action box [{bounds}]; "
        "1 of 5 steps are outside"
    )
    with pytest.raises(DatasetError, match="^two-episodes: key 'actions'"):  # the default source
        check_actions_in_box(box_episodes(actions), -1, [1, 4])
    with pytest.raises(
        DatasetError, match=r"value 3 at episode 1, step 0 \(row 3\), outside the action box \[0.0, 2.0\]"
    ):
        check_actions_in_box(box_episodes(np.array([0, 1, 2, 3, 0])), 0, 2)


def test_action_box_that_does_not_fit_the_actions_is_refused():
    with pytest.raises(ValueError, match=r"two-episodes: action box bounds of shapes \(3,\) and \(\) do not fit"):
        check_actions_in_box(two_episodes(), np.zeros(3), 1)
    with pytest.raises(ValueError, match="low > high"):
        check_actions_in_box(two_episodes(), 1, -1)


def test_float64_overflow_is_caught_before_the_float32_cast():
    obs = two_episodes().observations.astype(np.float64)
    obs[2, 0] = 1e300  # finite in float64, inf in float32
    with pytest.raises(DatasetError, match=r"'observations' has a non-finite value \(inf\) at index \(2, 0\)"):
        dataclasses.replace(two_episodes(), observations=obs)


def test_check_shapes_names_key_and_expected_shape():
    ep = two_episodes()
    ep.check_shapes((2,), (1,))
    with pytest.raises(DatasetError, match=r"two-episodes: key 'observations' has shape \(5, 2\); task hopper"):
        ep.check_shapes((11,), None, expected_by="task hopper")
    with pytest.raises(DatasetError, match=r"key 'actions'.*expects \('N', 3\)"):
        ep.check_shapes(None, (3,))


def test_select_and_concatenate_are_inverse():
    ep = dataclasses.replace(two_episodes(final=True), infos={"x": np.arange(5)}, final_infos={"x": np.array([7, 8])})
    parts = [ep.select([0]), ep.select([1])]
    assert parts[1].num_steps == 2 and parts[1].terminals[-1]
    assert Episodes.concatenate(parts).identical(ep)
    assert ep.select([1, 0]).episode_returns().tolist() == [9.0, 6.0]
    assert not ep.select([1, 0]).identical(ep)


def test_metadata_codec_round_trips_numpy_and_bytes():
    meta = {
        "algorithm": np.bytes_(b"SAC"),
        "raw": b"\x00\xff",
        "weights": {"w": np.arange(6, dtype=np.float32).reshape(2, 3) / 7, "b": np.array([1, 2], np.int16)},
        "step": np.int64(3),
        "names": ["a", "b"],
        "ref": 3234.3,
        "none": None,
    }
    import json

    back = from_json(json.loads(json.dumps(to_json(meta))))
    ep = dataclasses.replace(two_episodes(), metadata=meta)
    assert ep.identical(dataclasses.replace(ep, metadata=back))
    assert not ep.identical(dataclasses.replace(ep, metadata={**back, "step": 3}))  # type matters


# ------------------------------------------------------------------------------------------------ views


def test_transitions_without_final_observations_follow_d4rl_exactly():
    ep = two_episodes(final=False)
    t = transitions(ep)
    kept, nxt = d4rl_qlearning_reference(ep)
    assert t.steps.tolist() == kept == [0, 1, 3]  # the timeout (2) and the last row (4) have no next state
    np.testing.assert_array_equal(t.next_observations, nxt)
    np.testing.assert_array_equal(t.observations, ep.observations[kept])
    np.testing.assert_array_equal(t.terminals, [0, 0, 0])
    with pytest.raises(ValueError, match="cannot be kept"):
        transitions(ep, drop_timeouts=False)


def test_transitions_with_final_observations_keep_every_step():
    ep = two_episodes(final=True)
    t = transitions(ep)
    assert t.steps.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(t.next_observations, [[1, 10], [2, 20], [-1, -1], [4, 40], [-2, -2]])
    np.testing.assert_array_equal(t.terminals, [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(t.timeouts, [0, 0, 1, 0, 0])
    strict = transitions(ep, drop_timeouts=True)
    assert strict.steps.tolist() == [0, 1, 3, 4]
    np.testing.assert_array_equal(strict.next_observations[-1], [-2, -2])


def test_terminal_last_row_without_final_observation_and_sampling():
    ep = dataclasses.replace(two_episodes(), terminals=np.array([0, 0, 1, 0, 1], bool), timeouts=np.zeros(5, bool))
    t = transitions(ep)
    kept, nxt = d4rl_qlearning_reference(ep)
    assert t.steps.tolist() == kept == [0, 1, 2, 3]
    np.testing.assert_array_equal(t.next_observations, nxt)
    np.testing.assert_array_equal(t.terminals, [0, 0, 1, 0])
    a, b = t.sample(64, np.random.default_rng(3)), t.sample(64, np.random.default_rng(3))
    np.testing.assert_array_equal(a.steps, b.steps)
    assert set(a.steps.tolist()) <= set(kept)


def test_reward_to_go_matches_direct_sums():
    rng = np.random.default_rng(0)
    lengths = [1, 4, 7, 2]
    ends = np.cumsum(lengths)
    rewards = rng.normal(size=ends[-1])
    for discount in (0.99, 0.5, 1.0):
        rtg = reward_to_go(rewards, ends, discount)
        for start, end in zip(np.r_[0, ends[:-1]], ends, strict=True):
            for t in range(start, end):
                direct = sum(discount ** (k - t) * rewards[k] for k in range(t, end))
                assert rtg[t] == pytest.approx(direct, rel=1e-12, abs=1e-12)


def test_segments_pad_past_the_episode_end_and_carry_reward_to_go():
    ep = two_episodes()
    seg = Segments(ep, length=3, discount=0.5)
    assert len(seg) == 5
    batch = seg.get(np.array([0, 2, 3]))
    np.testing.assert_array_equal(batch.mask, [[1, 1, 1], [1, 0, 0], [1, 1, 0]])
    np.testing.assert_array_equal(batch.observations[1], [[2, 20], [0, 0], [0, 0]])  # no step of episode 1
    np.testing.assert_array_equal(batch.observations[2], [[3, 30], [4, 40], [0, 0]])
    np.testing.assert_array_equal(batch.timesteps, [[0, 1, 2], [2, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(batch.terminals[2], [0, 1, 0])
    # R_t = r_t + 0.5 r_{t+1} + ...: episode 0 rewards 1, 2, 3; episode 1 rewards 4, 5
    np.testing.assert_allclose(batch.returns_to_go, [[2.75, 3.5, 3.0], [3.0, 0, 0], [6.5, 5.0, 0]])
    np.testing.assert_array_equal(batch.rewards[2], [4, 5, 0])
    sample = seg.sample(16, np.random.default_rng(0))
    assert sample.observations.shape == (16, 3, 2) and sample.actions.shape == (16, 3, 1)


# ------------------------------------------------------------------------------------------------ replay buffer


def _transition(i: int) -> tuple:
    return np.full(3, i, np.float32), np.array([i], np.float32), float(i), np.full(3, i + 0.5, np.float32), i % 2 == 1


def test_replay_buffer_is_fifo_with_wraparound():
    buf = ReplayBuffer(capacity=5, observation_shape=(3,), action_shape=(1,))
    for i in range(7):
        buf.add(*_transition(i))
    assert len(buf) == 5 and buf.position == 2
    np.testing.assert_array_equal(buf.ordered()["rewards"], [2, 3, 4, 5, 6])
    batch = [np.stack(x) for x in zip(*(_transition(i) for i in range(7, 10)), strict=True)]
    buf.add(*batch)  # batched add wraps around the end of the ring
    ordered = buf.ordered()
    np.testing.assert_array_equal(ordered["rewards"], [5, 6, 7, 8, 9])
    np.testing.assert_array_equal(ordered["next_observations"][:, 0], [5.5, 6.5, 7.5, 8.5, 9.5])
    np.testing.assert_array_equal(ordered["terminals"], [1, 0, 1, 0, 1])
    big = [np.stack(x) for x in zip(*(_transition(i) for i in range(10, 22)), strict=True)]
    buf.add(*big)  # more than the capacity at once: only the newest survive
    np.testing.assert_array_equal(buf.ordered()["rewards"], [17, 18, 19, 20, 21])


def test_replay_buffer_sampling_and_shape_checks():
    buf = ReplayBuffer(capacity=100, observation_shape=(3,), action_shape=(1,))
    with pytest.raises(ValueError, match="empty"):
        buf.sample(4, np.random.default_rng(0))
    for i in range(3):
        buf.add(*_transition(i))
    batch = buf.sample(50, np.random.default_rng(1))
    assert set(batch.rewards.tolist()) <= {0.0, 1.0, 2.0}
    np.testing.assert_array_equal(batch.observations[:, 0], batch.rewards)  # rows stay aligned
    with pytest.raises(ValueError, match="observations"):
        buf.add(np.zeros(4), np.zeros(1), 0.0, np.zeros(4), False)


def test_replay_buffer_save_load_keeps_order_and_continues(tmp_path):
    buf = ReplayBuffer(capacity=4, observation_shape=(3,), discrete=True)
    for i in range(6):
        obs, _, rew, nxt, term = _transition(i)
        buf.add(obs, i % 3, rew, nxt, term)
    path = buf.save(tmp_path / "buffer.npz")
    loaded = ReplayBuffer.load(path)
    for key, value in buf.ordered().items():
        np.testing.assert_array_equal(loaded.ordered()[key], value)
        assert loaded.ordered()[key].dtype == value.dtype
    obs, _, rew, nxt, term = _transition(6)
    loaded.add(obs, 0, rew, nxt, term)
    np.testing.assert_array_equal(loaded.ordered()["rewards"], [3, 4, 5, 6])
    assert list(tmp_path.iterdir()) == [path]  # no temporary left behind
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DatasetError, match="buffer.npz"):
        ReplayBuffer.load(path)


def test_replay_buffer_extend_from_offline_transitions():
    t = transitions(two_episodes(final=True))
    buf = ReplayBuffer(capacity=10, observation_shape=(2,), action_shape=(1,))
    buf.extend(t)
    np.testing.assert_array_equal(buf.ordered()["next_observations"], t.next_observations)
    np.testing.assert_array_equal(buf.ordered()["terminals"], t.terminals.astype(bool))


def test_replay_buffer_state_dict_round_trips_through_a_weights_only_checkpoint(tmp_path):
    buf = ReplayBuffer(capacity=4, observation_shape=(3,), discrete=True)
    for i in range(6):  # wrapped: the raw slots differ from the oldest-first order
        obs, _, rew, nxt, term = _transition(i)
        buf.add(obs, i % 3, rew, nxt, term)
    torch.save(buf.state_dict(), tmp_path / "replay.pt")
    restored = ReplayBuffer(capacity=4, observation_shape=(3,), discrete=True)
    restored.load_state_dict(torch.load(tmp_path / "replay.pt", weights_only=True))
    assert (restored.position, restored.size) == (buf.position, buf.size)
    for key, value in buf.arrays.items():
        np.testing.assert_array_equal(restored.arrays[key], value)
        assert restored.arrays[key].dtype == value.dtype
    np.testing.assert_array_equal(restored.sample(8, np.random.default_rng(3)).rewards,
                                  buf.sample(8, np.random.default_rng(3)).rewards)  # fmt: skip
    with pytest.raises(ValueError, match="observations has shape"):
        ReplayBuffer(capacity=4, observation_shape=(2,), discrete=True).load_state_dict(buf.state_dict())
    with pytest.raises(ValueError, match="capacity 2"):
        ReplayBuffer(capacity=2, observation_shape=(3,), discrete=True).load_state_dict(buf.state_dict())


# ------------------------------------------------------------------------------------------------ statistics


def test_statistics_match_numpy_and_normalise():
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(3.0, 2.0, 1000), rng.uniform(-1, 1, 1000), np.full(1000, 5.0)])
    stats = Statistics.compute(x, num_bins=10)
    np.testing.assert_allclose(stats.mean, x.mean(0))
    np.testing.assert_allclose(stats.std, x.std(0))
    np.testing.assert_array_equal(stats.min, x.min(0))
    np.testing.assert_array_equal(stats.max, x.max(0))
    assert stats.quantiles.shape == (11, 3) and stats.num_bins == 10
    np.testing.assert_array_equal(stats.quantiles[0], x.min(0))
    np.testing.assert_array_equal(stats.quantiles[-1], x.max(0))
    np.testing.assert_allclose(stats.quantiles[5], np.median(x, axis=0))
    counts = [np.histogram(x[:, d], bins=stats.quantiles[:, d])[0] for d in range(2)]
    assert all(np.all(np.abs(c - 100) <= 1) for c in counts)  # equal-mass bins
    z = stats.normalize(x.astype(np.float32))
    assert z.dtype == np.float32 and np.all(z[:, 2] == 0)  # constant dimension: no division by zero
    np.testing.assert_allclose(stats.denormalize(z), x, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(stats.uniform_edges(4)[:, 1], np.linspace(x[:, 1].min(), x[:, 1].max(), 5))
    again = Statistics.from_dict(stats.to_dict())
    for field in dataclasses.fields(Statistics):
        np.testing.assert_array_equal(getattr(again, field.name), getattr(stats, field.name))


def test_normalized_score_scale():
    np.testing.assert_allclose(normalized_score([-20.272305, 3234.3], -20.272305, 3234.3), [0.0, 100.0])
    with pytest.raises(ValueError):
        normalized_score(1.0, 5.0, 5.0)


def test_random_episodes_cut_into_whole_episodes_with_the_remainder_last() -> None:
    episodes = Episodes.random(2_500, obs_dim=4, act_dim=2, episode_length=1000, seed=3, task="x")
    assert episodes.episode_lengths.tolist() == [1000, 1000, 500]
    assert episodes.timeouts.sum() == 3 and not episodes.terminals.any()
    assert np.abs(episodes.actions).max() <= 1.0 and episodes.metadata == {"task": "x"}
    assert episodes.identical(Episodes.random(2_500, 4, 2, episode_length=1000, seed=3, task="x"))
    with pytest.raises(ValueError, match="episode_length"):
        Episodes.random(10, 4, 2, episode_length=0)
