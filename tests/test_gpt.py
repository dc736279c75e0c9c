"""The causal transformer trunk: the KV cache reproduces full forward passes, outputs are causal, and the training
path's tiled attention, dropout and MLP compute what F.scaled_dot_product_attention, nn.Dropout and the plain MLP
do."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rlgen.nets import gpt
from rlgen.nets.gpt import GPT, MLP, Dropout, GPTConfig, attend_with_dropout, attention_mask, decay_groups, keep_mask


@pytest.fixture
def model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(block_size=40, n_layer=2, n_head=4, n_embd=32, dropout=0.1)).double().eval()


def _inputs(batch: int, length: int, width: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(batch, length, width, dtype=torch.float64)
    visible = torch.rand(length) > 0.3
    visible[0] = True
    return x, visible


@pytest.mark.parametrize("tile", [gpt.TILE, 2 * 4 * 5 * 30])  # small: 5-token passes attend in tiles of 2 rows
@torch.inference_mode()
def test_incremental_decoding_equals_a_full_forward_pass(model: GPT, tile: int, monkeypatch) -> None:
    x, visible = _inputs(3, 23)
    full = model(x, key_visible=visible)
    monkeypatch.setattr(gpt, "TILE", tile)
    cache = model.new_cache(3, capacity=30)
    pieces, start = [], 0
    for size in (5, 1, 1, 4, 1, 7, 1, 3):  # a prefill, then one or several tokens at a time
        pieces.append(model(x[:, start : start + size], key_visible=visible[start : start + size], cache=cache))
        start += size
    assert start == 23 and cache.length == 23
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-10, atol=1e-10)


@torch.inference_mode()
def test_cache_rows_can_be_reindexed_like_beams(model: GPT) -> None:
    x, visible = _inputs(3, 14)
    cache = model.new_cache(3, capacity=14)
    model(x[:, :6], key_visible=visible[:6], cache=cache)
    # Reorder, repeat and drop rows as beam search does: grow, shrink, then grow past every earlier batch, so
    # rows are copied between the cache's two buffers in both directions and the buffers are reallocated.
    rows = torch.arange(3)
    for index, stop in (
        (torch.tensor([2, 0, 0, 1, 2]), 8),
        (torch.tensor([4, 1]), 9),
        (torch.tensor([1, 0, 1, 1, 0, 0, 1]), 11),
    ):
        cache.select(index)
        rows = rows[index]
        start = cache.length
        tail = model(x[rows, start:stop], key_visible=visible[start:stop], cache=cache)
        torch.testing.assert_close(
            tail, model(x[rows, :stop], key_visible=visible[:stop])[:, start:], rtol=1e-10, atol=1e-10
        )
    assert cache.batch_size == 7 and cache.visible.shape == (7, 14)


@torch.inference_mode()
def test_a_shared_prefix_gives_the_same_outputs_as_per_row_copies(model: GPT) -> None:
    x, visible = _inputs(2, 14)
    visible[1] = False  # an invisible key inside the shared prefix
    cache = model.new_cache(2, capacity=14)
    model(x[:, :5], key_visible=visible[:5], cache=cache)
    cache.share_prefix()  # two groups of rows from here on
    rows = torch.arange(2)
    # Beam-like selections that keep the groups in order, equally many rows each: grow, reorder, shrink.
    for index, stop in ((torch.tensor([0, 0, 0, 1, 1, 1]), 7), (torch.tensor([2, 0, 1, 1, 5, 3, 4, 3]), 9),
                        (torch.tensor([3, 6]), 12)):  # fmt: skip
        rows = _select_and_decode(model, cache, rows, index, x, visible, stop)
    # Rows of one group moved into another's place get their own copies of its positions.
    _select_and_decode(model, cache, rows, torch.tensor([1, 0, 1]), x, visible, stop=14)
    assert cache.prefix(0) is None


def _select_and_decode(model: GPT, cache: gpt.KVCache, rows: torch.Tensor, index: torch.Tensor | None,
                       x: torch.Tensor, visible: torch.Tensor, stop: int) -> torch.Tensor:  # fmt: skip
    """Select ``index`` (None: the cache has already reordered), decode up to ``stop`` and compare with full
    forward passes of the selected rows; return the rows."""
    if index is not None:
        cache.select(index)
        rows = rows[index]
    start = cache.length
    tail = model(x[rows, start:stop], key_visible=visible[start:stop], cache=cache)
    full = model(x[rows, :stop], key_visible=visible[:stop])[:, start:]
    torch.testing.assert_close(tail, full, rtol=1e-10, atol=1e-10)
    return rows


@torch.inference_mode()
def test_repeated_rows_share_their_positions_and_give_the_same_outputs_as_copies(model: GPT) -> None:
    x, visible = _inputs(4, 14)
    cache = model.new_cache(4, capacity=14)
    model(x[:, :5], key_visible=visible[:5], cache=cache)
    cache.repeat(3, blocks=2)  # rows (2 blocks, 2) -> (2, 3, 2), sharing positions 0 .. 5
    assert cache.batch_size == 12 and cache.prefix_length == 5
    rows = _select_and_decode(model, cache, torch.tensor([0, 1] * 3 + [2, 3] * 3), None, x, visible, stop=7)
    rows = _select_and_decode(model, cache, rows, torch.tensor([5, 0, 3]), x, visible, stop=9)  # regrouped
    assert cache.prefix(0) is None and cache.prefix_length == 0
    cache.repeat(2, blocks=1)  # rows (1, 3) -> (1, 2, 3): row r in group r % 3
    rows = _select_and_decode(model, cache, rows[[0, 1, 2, 0, 1, 2]], None, x, visible, stop=11)
    rows = _select_and_decode(model, cache, rows, torch.tensor([3, 1, 5]), x, visible, stop=13)  # still grouped
    assert cache.prefix(0) is not None and cache.prefix_length == 9
    cache.select(torch.tensor([2, 2]))
    cache.clear()  # a selection never settled is dropped with the rest
    assert cache.batch_size == 2 and cache.length == 0


def test_decoding_with_a_cache_needs_inference_mode(model: GPT) -> None:
    cache = model.new_cache(1, capacity=4)
    with pytest.raises(RuntimeError, match="inference"):
        model(torch.randn(1, 2, 32, dtype=torch.float64), cache=cache)


def test_later_tokens_never_change_earlier_outputs(model: GPT) -> None:
    x, visible = _inputs(2, 20)
    changed = x.clone()
    changed[:, 11:] = torch.randn_like(changed[:, 11:])
    before, after = model(x, key_visible=visible), model(changed, key_visible=visible)
    torch.testing.assert_close(after[:, :11], before[:, :11], rtol=0, atol=0)
    assert not torch.allclose(after[:, 11:], before[:, 11:])


def test_invisible_keys_are_ignored_and_left_padding_is_exact(model: GPT) -> None:
    x, visible = _inputs(1, 10)
    # An invisible token's content never reaches any other position.
    hidden = int(torch.nonzero(~visible[1:])[0]) + 1
    changed = x.clone()
    changed[:, hidden] = torch.randn(32, dtype=torch.float64)
    others = torch.arange(10) != hidden
    torch.testing.assert_close(model(changed, key_visible=visible)[:, others], model(x, key_visible=visible)[:, others])
    # Left padding with invisible keys and shifted positions gives the unpadded result.
    pad = 4
    padded = torch.cat([torch.randn(1, pad, 32, dtype=torch.float64), x], 1)
    positions = (torch.arange(10 + pad) - pad).clamp(min=0).unsqueeze(0)
    padded_visible = torch.cat([torch.zeros(pad, dtype=torch.bool), visible]).unsqueeze(0)
    out = model(padded, positions=positions, key_visible=padded_visible)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[:, pad:], model(x, key_visible=visible), rtol=1e-10, atol=1e-10)


def test_sequences_longer_than_the_block_are_refused(model: GPT) -> None:
    with pytest.raises(ValueError, match="exceeds"):
        model(torch.randn(1, 41, 32, dtype=torch.float64))


def test_weight_decay_applies_to_linear_weights_only(model: GPT) -> None:
    decay, no_decay = decay_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) == 4 * 2 and all(p.ndim == 2 for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def _split_heads(qkv: torch.Tensor, n_head: int) -> tuple[torch.Tensor, ...]:
    """Queries, keys and values ``(B, H, T, hd)`` of packed projections ``(B, T, 3C)``."""
    B, T, _ = qkv.shape
    return tuple(t.view(B, T, n_head, -1).transpose(1, 2) for t in qkv.chunk(3, -1))


@pytest.mark.parametrize("blocks", [1, 3, 4, 7])
@pytest.mark.parametrize("tile", [2**18, 40])  # one tile per head and block, or also several tiles of rows
def test_blocked_attention_without_dropout_equals_sdpa_values_and_gradients(
    blocks: int, tile: int, monkeypatch
) -> None:
    monkeypatch.setattr(gpt, "TILE", tile)
    torch.manual_seed(0)
    B, H, T, hd = 3, 2, 13, 8
    qkv = torch.randn(B, T, 3 * H * hd, dtype=torch.float64, requires_grad=True)
    visible = torch.rand(B, T) > 0.3
    visible[1, :4] = False  # left padding: its queries attend to themselves only
    mask = attention_mask(visible, T)
    ours = attend_with_dropout(qkv, mask, H, 0.0, blocks)
    reference = F.scaled_dot_product_attention(*_split_heads(qkv, H), attn_mask=mask).transpose(1, 2).reshape(B, T, -1)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)
    upstream = torch.randn_like(ours)
    (got,) = torch.autograd.grad(ours, qkv, upstream)
    (want,) = torch.autograd.grad(reference, qkv, upstream)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tile", [2**18, 40])
def test_attention_dropout_gradients_match_finite_differences(tile: int, monkeypatch) -> None:
    monkeypatch.setattr(gpt, "TILE", tile)

    def fixed_mask(shape: torch.Size, p: float) -> torch.Tensor:  # the same mask at every call: differentiable
        generator = torch.Generator().manual_seed(shape.numel())
        return (torch.rand(shape, generator=generator) >= p).to(torch.uint8)

    monkeypatch.setattr(gpt, "keep_bits", fixed_mask)
    torch.manual_seed(0)
    B, H, T, hd = 3, 2, 9, 4
    qkv = torch.randn(B, T, 3 * H * hd, dtype=torch.float64, requires_grad=True)
    mask = attention_mask(torch.rand(B, T) > 0.2, T)
    assert torch.autograd.gradcheck(lambda qkv: attend_with_dropout(qkv, mask, H, 0.3, 3), (qkv,))


def test_dropout_masks_follow_torch_rng_state() -> None:
    like = torch.empty(1000)
    state = torch.get_rng_state()
    first = keep_mask(like, 0.1)
    torch.set_rng_state(state)
    assert torch.equal(keep_mask(like, 0.1), first)
    assert not torch.equal(keep_mask(like, 0.1), first)
    assert torch.equal(keep_mask(like, 0.0), torch.ones(1000))


@pytest.mark.parametrize("p", [0.1, 0.9])
def test_dropout_masks_drop_exactly_p(p: float) -> None:
    # 0.1 and 0.9 fall inside a 1/256 step of the words' top bits: without the tie-breaking bits the rate is off by
    # at least 1.6e-3, ten standard deviations of this estimate.
    torch.manual_seed(0)
    mask = keep_mask(torch.empty(4_000_000, dtype=torch.float64), p)
    assert mask.dtype == torch.float64 and set(mask.unique().tolist()) == {0.0, 1.0}
    assert abs(1 - mask.mean().item() - p) < 6e-4


@pytest.mark.parametrize("bias", [True, False])
def test_tiled_mlp_equals_the_plain_mlp_values_and_gradients(bias: bool, monkeypatch) -> None:
    monkeypatch.setattr(gpt, "TILE", 3 * 4 * 16)  # tiles of 3 rows: 14 tokens make 5, the last one partial
    torch.manual_seed(0)
    mlp = MLP(GPTConfig(block_size=8, n_embd=16, dropout=0.0, bias=bias)).double()
    x = torch.randn(2, 7, 16, dtype=torch.float64, requires_grad=True)
    ours, reference = mlp(x), mlp.proj(F.gelu(mlp.fc(x)))
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)
    with torch.inference_mode():
        torch.testing.assert_close(mlp(x), reference.detach(), rtol=1e-12, atol=1e-12)
    upstream, inputs = torch.randn_like(ours), (x, *mlp.parameters())
    grads = torch.autograd.grad(ours, inputs, upstream)
    for got, want in zip(grads, torch.autograd.grad(reference, inputs, upstream), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_attention_dropout_zeroes_weights_with_probability_p_and_is_unbiased() -> None:
    torch.manual_seed(0)
    T, p = 6, 0.3
    q, k = torch.randn(2, 1, T, T, dtype=torch.float64)
    eye = torch.eye(T, dtype=torch.float64)[None]  # v = identity: the output is the weight matrix itself
    qkv = torch.cat([q, k, eye], -1)
    mask = attention_mask(torch.ones(1, T, dtype=torch.bool), T)
    draws = torch.stack([attend_with_dropout(qkv, mask, 1, p) for _ in range(4000)])[:, None]
    weights = F.scaled_dot_product_attention(*_split_heads(qkv, 1), attn_mask=mask)
    kept = draws[:, mask[0, 0].expand(1, 1, T, T)] != 0
    assert abs(1 - kept.double().mean().item() - p) < 0.01
    torch.testing.assert_close(draws.mean(0), weights, rtol=0, atol=0.03)
    assert torch.all(draws[:, ~mask.expand(1, 1, T, T)] == 0)  # masked keys stay at weight 0


def test_dropout_module_zeroes_p_of_inputs_scales_the_rest_and_is_off_in_eval() -> None:
    torch.manual_seed(0)
    layer, x = Dropout(0.25), torch.ones(200_000)
    y = layer(x)
    assert abs((y == 0).double().mean().item() - 0.25) < 0.005
    assert torch.all((y == 0) | (y == 1 / 0.75))
    assert torch.equal(layer.eval()(x), x)
