"""The Trajectory Transformer's model and beam planner: the cached planner is exact, batching across
environments changes nothing, scores follow TT's formula, and the training loss trains."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from rlgen.algos.tt import PlannerConfig, TrajectoryModel, TransitionLayout, TTModelConfig, beam_plan, make_prefix
from rlgen.algos.tt.planner import Decoder, RecomputeDecoder, planning_cache
from rlgen.heads import head_config

LAYOUT = TransitionLayout(obs_dim=3, act_dim=2)
ROWS = np.random.default_rng(0).normal(size=(400, LAYOUT.dim)).astype(np.float32)
# "adacat" embeds its inputs piecewise-linearly (the default), "adacat-linear" by the paper's Linear(1, width)
CONDITIONALS = ["uniform", "quantile", "adacat", "adacat-linear"]


def _model(conditional: str, dtype: torch.dtype = torch.float64) -> TrajectoryModel:
    torch.manual_seed(0)
    kind, _, embedding = conditional.partition("-")
    head = TTModelConfig().head if kind == "adacat" else head_config(kind)  # TT's default AdaCat head
    config = TTModelConfig(head, input_embedding=embedding or "piecewise", n_layer=2, n_head=2, n_embd=32,  # type: ignore[arg-type]
                           sequence_length=6)  # fmt: skip
    model = TrajectoryModel(config, LAYOUT, ROWS.min(0), ROWS.max(0))
    model.fit_bins(ROWS)
    return model.to(dtype).eval()


def _prefix(model: TrajectoryModel, context: int = 2):
    contexts = [ROWS[:2], ROWS[:0], ROWS[5:10]]  # environments at different steps of their episodes
    return make_prefix(model, contexts, ROWS[20:23, : LAYOUT.obs_dim], context)


@pytest.mark.parametrize("rank_bins", ["mass", "density"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("conditional", CONDITIONALS)
def test_cached_planner_returns_the_full_recompute_plan(conditional: str, dtype: torch.dtype, rank_bins: str) -> None:
    model = _model(conditional, dtype)
    prefix, pad = _prefix(model)
    config = PlannerConfig(horizon=4, beam_width=5, n_expand=2, context=2, action_top_p=0.9, rank_bins=rank_bins)
    plans = [beam_plan(model, prefix, pad, replace(config, cached=cached), torch.Generator().manual_seed(7))
             for cached in (True, False)]  # fmt: skip
    cached, full = plans
    assert cached.transitions.shape == (3, 4, LAYOUT.dim)
    torch.testing.assert_close(cached.transitions, full.transitions, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cached.scores, full.scores, rtol=1e-5, atol=1e-5)
    # The plan starts at the current observation and its actions are what the agent executes.
    torch.testing.assert_close(cached.transitions[:, 0, : LAYOUT.obs_dim], torch.as_tensor(ROWS[20:23, :3]))
    assert torch.equal(cached.actions, cached.transitions[:, 0, 3:5])
    # A different random stream gives a different plan: the comparison above is not vacuous.
    other = beam_plan(model, prefix, pad, config, torch.Generator().manual_seed(8))
    assert not torch.allclose(other.transitions, cached.transitions)


@pytest.mark.parametrize("conditional", ["uniform", "quantile"])
def test_planning_environments_together_equals_planning_each_alone(conditional: str) -> None:
    model = _model(conditional)
    config = PlannerConfig(horizon=3, beam_width=3, n_expand=2, context=3, action_top_p=0.0)  # deterministic
    prefix, pad = _prefix(model, context=3)
    together = beam_plan(model, prefix, pad, config)
    for e in range(3):
        rows = prefix[e, int(pad[e]) :]
        alone = beam_plan(model, rows[None], torch.zeros(1, dtype=torch.long), config)
        torch.testing.assert_close(alone.transitions[0], together.transitions[e], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("conditional", CONDITIONALS)
def test_score_is_discounted_expected_rewards_plus_terminal_value(conditional: str) -> None:
    model = _model(conditional)
    config = PlannerConfig(horizon=3, beam_width=4, n_expand=2, context=0, discount=0.9)
    obs = ROWS[:2, : LAYOUT.obs_dim]
    prefix, pad = make_prefix(model, [ROWS[:0]] * 2, obs, config.context)
    plan = beam_plan(model, prefix, pad, config, torch.Generator().manual_seed(0))
    tokens = plan.transitions.double().flatten(1)  # (E, H * D)
    with torch.no_grad():
        hidden = model.features(tokens)
    D, H = LAYOUT.dim, config.horizon
    expected = torch.zeros(2, dtype=torch.float64)
    for t in range(H):  # the features of token i predict token i + 1
        reward = model.distribution(hidden[:, t * D + LAYOUT.reward - 1], LAYOUT.reward).mean[:, 0]
        expected += config.discount**t * reward
    value = model.distribution(hidden[:, (H - 1) * D + LAYOUT.value - 1], LAYOUT.value).mean[:, 0]
    expected += config.discount**H * value
    torch.testing.assert_close(plan.scores.double(), expected, rtol=1e-5, atol=1e-5)


def test_prefix_keeps_the_last_context_transitions_left_padded() -> None:
    model = _model("adacat")
    prefix, pad = make_prefix(model, [ROWS[:5], ROWS[:1]], ROWS[:2, :3], context=2)
    D = LAYOUT.dim
    assert prefix.shape == (2, 2 * D + 3) and pad.tolist() == [0, D]
    torch.testing.assert_close(prefix[0, : 2 * D], torch.as_tensor(ROWS[3:5]).double().flatten())
    torch.testing.assert_close(prefix[1, D : 2 * D], torch.as_tensor(ROWS[0]).double())


def test_planner_refuses_a_window_longer_than_the_trained_sequences() -> None:
    model = _model("uniform")  # sequence_length 6
    prefix, pad = _prefix(model)
    with pytest.raises(ValueError, match="window of 7 transitions exceeds the 6"):
        beam_plan(model, prefix, pad, PlannerConfig(horizon=2, beam_width=2, context=2, window=7))


@pytest.mark.parametrize("conditional", ["uniform", "adacat"])
@pytest.mark.parametrize(("window", "context", "horizon"), [(2, 2, 5), (3, 3, 7), (6, 2, 9), (4, 5, 6)])
def test_windowed_cached_planner_returns_the_windowed_recompute_plan(
    conditional: str, window: int, context: int, horizon: int
) -> None:
    """Horizons longer than the window: the cache is refilled every time the window moves."""
    model = _model(conditional)
    contexts = [ROWS[:5], ROWS[:0], ROWS[5:6]]  # different lengths: rows are cropped at different times
    prefix, pad = make_prefix(model, contexts, ROWS[20:23, : LAYOUT.obs_dim], context)
    config = PlannerConfig(horizon=horizon, beam_width=4, n_expand=2, context=context, action_top_p=0.9,
                           window=window)  # fmt: skip
    cached, full = (beam_plan(model, prefix, pad, replace(config, cached=cached), torch.Generator().manual_seed(3))
                    for cached in (True, False))  # fmt: skip
    assert cached.transitions.shape == (3, horizon, LAYOUT.dim)
    torch.testing.assert_close(cached.transitions, full.transitions, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(cached.scores, full.scores, rtol=1e-9, atol=1e-9)
    other = beam_plan(model, prefix, pad, config, torch.Generator().manual_seed(4))
    assert not torch.allclose(other.transitions, cached.transitions)


def test_a_cache_reused_call_after_call_gives_the_plans_of_new_caches() -> None:
    """Calls of different batches, widths and prefix lengths in one cache: its storage is reused, never stale."""
    model = _model("uniform")
    config = PlannerConfig(horizon=5, beam_width=4, n_expand=2, context=3, action_top_p=0.9, window=3)
    calls = [([ROWS[:5], ROWS[:0], ROWS[5:6]], 4), ([ROWS[7:9]], 6), ([ROWS[:1], ROWS[9:12]], 4),
             ([ROWS[:5], ROWS[:0], ROWS[5:6]], 4)]  # fmt: skip
    cache, storages = planning_cache(model, config), []
    for contexts, width in calls:
        prefix, pad = make_prefix(model, contexts, ROWS[20 : 20 + len(contexts), : LAYOUT.obs_dim], config.context)
        setting = replace(config, beam_width=width)
        new, reused = (beam_plan(model, prefix, pad, setting, torch.Generator().manual_seed(3), c)
                       for c in (None, cache))  # fmt: skip
        assert torch.equal(reused.transitions, new.transitions) and torch.equal(reused.scores, new.scores)
        held = [cache._storage, *cache._free] + ([cache._prefix] if cache._prefix is not None else [])
        storages.append({kv.data_ptr() for kv, _ in held})
    assert storages[-1] == storages[-2]  # warm: the last call allocated nothing


def test_planner_refuses_a_cache_of_another_window_or_dtype() -> None:
    model = _model("uniform")
    prefix, pad = _prefix(model)
    config = PlannerConfig(horizon=2, beam_width=2, context=2, window=3)
    for cache in (planning_cache(model, replace(config, window=4)), planning_cache(model.float(), config)):
        with pytest.raises(ValueError, match="make it with planning_cache"):
            beam_plan(model.double(), prefix, pad, config, cache=cache)


def test_window_crops_each_row_as_the_released_planner_does() -> None:
    """Per row, TT's ``forward`` crops ``round_up(length - block, D)`` tokens once a row is longer than ``block``."""
    model, D = _model("uniform"), LAYOUT.dim
    pad = torch.tensor([0, 2 * D, 5 * D])
    for length in range(5 * D + 1, 9 * D):
        decoder = RecomputeDecoder.__new__(RecomputeDecoder)
        Decoder.__init__(decoder, model, torch.zeros(3, length, dtype=torch.float64), pad, block=3 * D - 1)
        first, invisible = decoder.window()
        for row in range(3):
            real = length - int(pad[row])
            crop = -(-(real - (3 * D - 1)) // D) * D if real > 3 * D - 1 else 0
            assert first + int(invisible[row]) == int(pad[row]) + crop, (length, row)
        assert first == min(int(p) + max(0, -(-(length - int(p) - 3 * D + 1) // D) * D) for p in pad)


def test_window_positions_restart_at_the_first_kept_transition() -> None:
    """With window == context, the oldest context transition is cropped before the first forward pass (as in
    TT, whose prefix holds max_context_transitions transitions and its block one token less): it cannot matter,
    whereas the others do."""
    model = _model("uniform")
    config = PlannerConfig(horizon=4, beam_width=3, n_expand=2, context=3, window=3, action_top_p=0.9)
    obs = ROWS[20:21, : LAYOUT.obs_dim]

    def plan(rows: np.ndarray) -> torch.Tensor:
        prefix, pad = make_prefix(model, [rows], obs, config.context)
        result = beam_plan(model, prefix, pad, config, torch.Generator().manual_seed(5))
        return torch.cat([result.transitions.flatten(), result.scores])

    base = ROWS[:3].copy()
    oldest, middle = base.copy(), base.copy()
    oldest[0] += 1.0
    middle[1] += 1.0
    torch.testing.assert_close(plan(oldest), plan(base), rtol=0, atol=0)
    assert not torch.equal(plan(middle), plan(base))


def test_context_values_are_invisible_to_later_tokens() -> None:
    model = _model("adacat")
    tokens = torch.as_tensor(ROWS[:3]).double().flatten()[None]
    changed = tokens.clone()
    changed[0, LAYOUT.value] += 1.0  # the first transition's value token
    with torch.no_grad():
        a, b = model.features(tokens), model.features(changed)
    others = torch.arange(tokens.shape[1]) != LAYOUT.value
    torch.testing.assert_close(a[:, others], b[:, others], rtol=0, atol=0)


@pytest.mark.parametrize("conditional", CONDITIONALS)
def test_training_lowers_the_weighted_loss(conditional: str) -> None:
    model = _model(conditional, torch.float32).train()
    weights = torch.as_tensor(LAYOUT.weights(1, 5, 1, 1))
    # Structured data: every transition repeats the segment's first row, so later tokens are predictable.
    rng = np.random.default_rng(1)
    rows = torch.as_tensor(ROWS[rng.integers(0, len(ROWS), 16)])[:, None].expand(16, 6, LAYOUT.dim).contiguous()
    mask = torch.ones(16, 6, dtype=torch.bool)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss, per_dim = model.loss(rows, mask, weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
    assert per_dim.shape == (LAYOUT.dim,)
    assert loss.item() < first - 0.5, (first, loss.item())


def test_piecewise_input_embedding_is_continuous_and_interpolates_its_pieces() -> None:
    model = _model("adacat")
    d, piece = 1, 4  # a dimension and one of its interior pieces
    unit_edges = model.input_edges[d]
    box_low, box_high = model.low[d], model.high[d]
    start, end = (box_low + unit_edges[piece : piece + 2] * (box_high - box_low)).tolist()
    dims = torch.tensor([d])

    def embed(value: float) -> torch.Tensor:
        return model._piecewise_embedding((torch.tensor([[value]], dtype=torch.float64) - box_low)
                                          / (box_high - box_low), dims)[0, 0]  # fmt: skip

    vectors = model.token_embedding.weight.view(LAYOUT.dim, model.config.bins, -1)[d]
    # the start of piece j embeds as the sum of the pieces before it; a quarter into it adds a quarter of e_j
    torch.testing.assert_close(embed(start), vectors[:piece].sum(0))
    torch.testing.assert_close(embed(start + 0.25 * (end - start)), vectors[:piece].sum(0) + 0.25 * vectors[piece])
    # continuous across the piece's end (a token embedding would jump there)
    eps = 1e-9 * (end - start)
    torch.testing.assert_close(embed(end - eps), embed(end + eps), atol=1e-6, rtol=0)
    # the pieces hold the data's quantiles: about equal shares of the rows fall in each
    unit_rows = (torch.as_tensor(ROWS[:, d], dtype=torch.float64) - box_low) / (box_high - box_low)
    counts = torch.bincount((unit_rows[:, None] >= unit_edges[1:-1]).sum(-1), minlength=model.config.bins)
    assert counts.max() - counts.min() <= 2
