"""A nanoGPT-style pre-LayerNorm causal transformer with a KV cache for batched incremental decoding.

The trunk maps input embeddings ``(B, T, C)`` to hidden states ``(B, T, C)``; token embeddings and output
heads belong to the model that uses it (the Trajectory Transformer has one vocabulary and one head per
dimension). Learned absolute positions are added inside.

Two generalisations of nanoGPT serve beam search over a batch of different prefixes:

* ``positions`` per row, so prefixes of different lengths can be left-padded into one batch;
* ``key_visible`` per token: keys marked invisible are never attended to (left padding; the Trajectory
  Transformer's value tokens). A query that sees no visible key at all attends to itself, which keeps
  padding rows finite instead of NaN; a query with at least one visible key is unaffected.

With a :class:`KVCache`, ``forward`` appends the new tokens' keys and values to the cache and attends over
everything cached so far, so decoding one token costs one token's compute instead of the whole sequence's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


@dataclass(frozen=True)
class GPTConfig:
    """Size of the trunk.

    :param block_size: the most positions a sequence may have (learned position embeddings).
    :param n_layer: transformer blocks.
    :param n_head: attention heads; must divide ``n_embd``.
    :param n_embd: width C.
    :param dropout: on embeddings, attention weights and residual branches (training only).
    """

    block_size: int
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.1
    bias: bool = True

    def __post_init__(self) -> None:
        if min(self.block_size, self.n_layer, self.n_head, self.n_embd) < 1:
            raise ValueError(f"GPTConfig sizes must be positive, got {self}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class KVCache:
    """Keys and values of every layer for ``batch`` sequences, preallocated for ``capacity`` positions.

    All rows share one length (left-pad shorter prefixes). :meth:`select` reorders, drops or repeats rows, which is
    what beam search does to its candidates, many times per plan. It only records the new order: the rows are
    copied when next read or written (never, if :meth:`clear` comes first), all selections since then composed
    into one, all layers in one call, into a spare preallocated buffer; so a beam search stops allocating once the
    buffers have grown to its widest batch.

    A *shared prefix* keeps the positions cached so far once per group of rows instead of once per row:
    :meth:`share_prefix` makes every current row a group, and :meth:`repeat` tiles blocks of rows with every row's
    copies in its group, without copying anything. Attention then reads a shared position once per group, with a
    matrix product over all the group's rows, and every row's own positions from a buffer just long enough for the
    positions after the prefix. A selection that keeps the rows grouped (the groups in order, equally many rows
    each) copies only the rows' own positions; any other selection gives every row its own copy of its group's
    positions, and the cache shares nothing from then on.
    """

    def __init__(self, config: GPTConfig, batch: int, capacity: int, device: torch.device, dtype: torch.dtype):
        if capacity > config.block_size:
            raise ValueError(f"cache capacity {capacity} exceeds the block size {config.block_size}")
        self.capacity, self.length, self.prefix_length = capacity, 0, 0
        self._shape = (2 * config.n_layer, config.n_head, config.n_embd // config.n_head)
        self._device, self._dtype = device, dtype
        self._free: list[tuple[Tensor, Tensor]] = []  # spare storage
        self._pending: Tensor | None = None
        # The shared prefix: its storage, keys and values (2 * n_layer, G, H, capacity, hd) of G groups, and the
        # rows' layout (G / stride, copies, stride): row (e, c, s) belongs to group e * stride + s.
        self._prefix: tuple[Tensor, Tensor] | None = None
        self._prefix_kv, self._stride = torch.empty(0), 1
        self._attach(self._take(batch), batch)

    def _sizes(self, rows: int) -> tuple[int, int]:
        """Elements of the keys and values and of the visibility of ``rows`` sequences' own positions."""
        layers, heads, head_dim = self._shape
        return layers * rows * heads * (self.capacity - self.prefix_length) * head_dim, rows * self.capacity

    def _take(self, rows: int) -> tuple[Tensor, Tensor]:
        """The smallest spare flat storage for ``rows`` sequences' own positions (allocated if none is large
        enough): taking the smallest that fits keeps the larger ones for the larger batches of a beam search."""
        kv_size, visible_size = self._sizes(rows)
        sizes = [kv.numel() if kv.numel() >= kv_size and visible.numel() >= visible_size else math.inf
                 for kv, visible in self._free]  # fmt: skip
        if sizes and min(sizes) < math.inf:
            return self._free.pop(sizes.index(min(sizes)))
        # Zeros: attention reads whole buffers, masking what is not filled, so nothing may start as NaN or inf.
        kv = torch.zeros(kv_size, device=self._device, dtype=self._dtype)
        return kv, torch.zeros(visible_size, dtype=torch.bool, device=self._device)

    def _attach(self, storage: tuple[Tensor, Tensor], rows: int) -> None:
        """Hold the rows' own positions in ``storage``: keys and values ``(2 * n_layer, rows, H, capacity -
        prefix_length, hd)`` (layer ``l``'s keys at ``2l``, values at ``2l + 1``; position ``j`` of the sequence at
        ``j - prefix_length``) and visibility ``(rows, capacity)``."""
        layers, heads, head_dim = self._shape
        width = self.capacity - self.prefix_length
        self._storage, self._rows = storage, rows
        self._kv = storage[0][: layers * rows * heads * width * head_dim].view(layers, rows, heads, width, head_dim)
        self._visible = storage[1][: rows * self.capacity].view(rows, self.capacity)

    @property
    def dtype(self) -> torch.dtype:
        """Of the cached keys and values."""
        return self._dtype

    @property
    def batch_size(self) -> int:
        """Rows of the cache (after any pending selection)."""
        return self._rows if self._pending is None else self._pending.shape[0]

    @property
    def visible(self) -> Tensor:
        """``(B, capacity)`` bool, whether later tokens may attend to each cached position (shared prefix
        included: visibility is per row)."""
        self._settle()
        return self._visible

    def clear(self, rows: int | None = None) -> None:
        """Empty the cache (no shared prefix) for ``rows`` sequences (default: as many as now), keeping its storage
        where it is large enough."""
        rows = self.batch_size if rows is None else rows
        self.length, self._pending = 0, None
        self._drop_prefix()
        self._free.append(self._storage)
        self._attach(self._take(rows), rows)

    def share_prefix(self) -> None:
        """Keep the positions cached so far once per current row (a group), shared by the rows that
        :meth:`select` makes from it (see the class docstring)."""
        if self._prefix is not None:
            raise RuntimeError("this cache already shares a prefix")
        self._share(torch.arange(self.batch_size, device=self._device), stride=1)

    def repeat(self, copies: int, blocks: int) -> None:
        """``select`` every one of ``blocks`` equal blocks of consecutive rows ``copies`` times in a row (rows
        ``(blocks, W)`` become ``(blocks, copies, W)``): without a shared prefix, the positions cached so far
        become one, shared by every row's copies, and nothing is copied."""
        width = self.batch_size // blocks
        index = torch.arange(blocks * width, device=self._device).view(blocks, 1, width).expand(-1, copies, -1)
        if self._prefix is not None or self.length == 0:
            self.select(index.flatten())
        else:
            self._share(index.flatten(), width)

    def _share(self, index: Tensor, stride: int) -> None:
        """Make the current rows' positions the shared prefix of rows ``index`` laid out with ``stride``."""
        self._settle()
        self._prefix, self._prefix_kv, self._stride = self._storage, self._kv, stride
        self.prefix_length = self.length
        visible = self._visible[:, : self.length]
        self._attach(self._take(len(index)), len(index))
        torch.index_select(visible, 0, index, out=self._visible[:, : self.length])

    def _drop_prefix(self) -> None:
        if self._prefix is not None:
            self._free.append(self._prefix)
        self._prefix, self.prefix_length = None, 0

    def prefix(self, layer: int) -> tuple[Tensor, Tensor, int] | None:
        """The shared prefix of ``layer`` as :func:`attend_cached` takes it (keys and values ``(G, H, capacity,
        hd)`` and the rows' stride), or None without a shared prefix."""
        self._settle()
        if self._prefix is None:
            return None
        return self._prefix_kv[2 * layer], self._prefix_kv[2 * layer + 1], self._stride

    def key_bias(self, mask: Tensor) -> Tensor:
        """``0 / -inf`` ``(B, 1, T, keys)`` from a bool ``mask (B, 1, T, L)`` over the sequence's first ``L`` keys
        (True where a query may attend), laid out as :func:`attend_cached` reads this cache's keys: the shared
        prefix's ``capacity`` positions, if any, then the rows' own."""
        self._settle()
        B, _, T, L = mask.shape
        P, start = self.prefix_length, 0 if self._prefix is None else self.capacity
        keep = torch.zeros(B, 1, T, start + self._kv.shape[-2], dtype=torch.bool, device=mask.device)
        keep[..., :P] = mask[..., :P]
        keep[..., start : start + L - P] = mask[..., P:]
        return torch.zeros(keep.shape, dtype=self._dtype, device=mask.device).masked_fill_(~keep, -math.inf)

    def store(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write the new tokens' ``k, v`` ``(B, H, T, hd)`` after the cached ones; return every row's own keys and
        values ``(B, H, capacity - prefix_length, hd)`` (see :meth:`_attach`), with stale numbers after the new
        length: whole buffers, which batched matrix products read several times faster than slices."""
        self._settle()
        start = self.length - self.prefix_length
        keys, values = self._kv[2 * layer], self._kv[2 * layer + 1]
        keys[:, :, start : start + k.shape[2]] = k
        values[:, :, start : start + k.shape[2]] = v
        return keys, values

    def select(self, index: Tensor) -> None:
        """Keep rows ``index`` (a 1-D long tensor; repeats allowed) in that order."""
        self._pending = index if self._pending is None else self._pending[index]

    def _settle(self) -> None:
        """Copy the rows of the pending selection into spare storage, which becomes the cache's."""
        if self._pending is None:
            return
        index, self._pending = self._pending, None
        rows, start, end = index.shape[0], self.prefix_length, self.length
        storage, kv, visible = self._storage, self._kv, self._visible
        if self._prefix is None:
            regrouped = None
        else:
            G, stride = self._prefix_kv.shape[1], self._stride
            row = torch.arange(self._rows, device=index.device)
            group = (row // (self._rows // G * stride) * stride + row % stride)[index]
            grouped = torch.arange(G, device=index.device).repeat_interleave(max(1, rows // G))
            regrouped = None if rows % G == 0 and torch.equal(group, grouped) else group
            self._stride = 1
        if regrouped is not None:  # every row gets its own copy of its group's positions
            prefix, prefix_kv = self._prefix, self._prefix_kv[:, :, :, :start]
            self._prefix, self.prefix_length = None, 0  # freed once copied
            self._attach(self._take(rows), rows)
            torch.index_select(prefix_kv, 1, regrouped, out=self._kv[:, :, :, :start])
            self._free.append(prefix)
            own = self._kv[:, :, :, start:end]
        else:
            self._attach(self._take(rows), rows)
            own = self._kv[:, :, :, : end - start]
        torch.index_select(kv[:, :, :, : end - start], 1, index, out=own)
        torch.index_select(visible[:, :end], 0, index, out=self._visible[:, :end])
        self._free.append(storage)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = Dropout(config.dropout)

    def forward(
        self, x: Tensor, mask: Tensor, cache: KVCache | None = None, layer: int = 0, last_only: bool = False
    ) -> Tensor:
        """``mask``: bool ``(B or 1, 1, T, T_keys)``, True where a query may attend to a key (with a ``cache``: its
        :meth:`KVCache.key_bias`). ``last_only``: keys and values of every token, but the output ``(B, 1, C)`` of the
        last query only."""
        B, T, C = x.shape
        qkv = self.qkv(x)
        if self.training and self.dropout > 0 and x.device.type == "cpu" and cache is None and not last_only:
            return self.resid_dropout(self.proj(attend_with_dropout(qkv, mask, self.n_head, self.dropout)))
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in qkv.split(C, dim=2))
        if last_only:
            q, mask, T = q[:, :, -1:], mask[:, :, -1:], 1
        if cache is not None:
            k, v = cache.store(layer, k, v)
            y = attend_cached(q, k, v, mask, cache.prefix(layer))
        else:  # elsewhere the fused kernels drop attention weights without materialising them
            p = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.resid_dropout(self.proj(y.transpose(1, 2).reshape(B, T, C)))


def attend_with_dropout(qkv: Tensor, mask: Tensor, n_head: int, p: float, blocks: int = 4) -> Tensor:
    """Causal self-attention of the packed projections ``qkv`` ``(B, T, 3C)`` (queries, keys and values side by side,
    each ``n_head`` heads wide) under ``mask`` (bool ``(B or 1, 1, T, T)``, causal), with every attention weight zeroed
    with probability ``p`` and the others scaled by ``1 / (1 - p)``: ``F.scaled_dot_product_attention(q, k, v, mask,
    dropout_p=p)``'s maths, returned as ``(B, T, C)`` with the heads side by side.

    On a CPU that call materialises all ``T x T`` weights anyway; here the queries go in ``blocks`` blocks, each
    with only the keys up to its last query (the ones after are masked: they would only add zeros), which skips
    most of the masked half of the weights and of their random numbers. Each head and block (and group of rows,
    for large batches) is one tile, small enough to stay in a core's cache while its weights are masked,
    normalised and dropped; the mask is added as ``0 / -inf`` and dropped weights are multiplied by 0 (on a CPU
    both are far cheaper than ``masked_fill``)."""
    bias = torch.zeros(mask.shape, dtype=qkv.dtype, device=qkv.device).masked_fill_(~mask, -math.inf)
    T = qkv.shape[1]
    size = -(-T // blocks)
    rows = max(1, TILE // (size * T))
    return _TiledAttention.apply(qkv, bias, n_head, p, size, rows)


#: elements of the largest intermediate per tile of the training kernels on a CPU (the attention weights of
#: :func:`attend_with_dropout`, the MLP's hidden units): few enough that a tile's intermediates stay in a core's
#: cache between the operations on them.
TILE = 2**18


def _tiles(batch: int, heads: int, length: int, size: int, rows: int) -> list[tuple[slice, int, slice, slice]]:
    """(rows, head, queries, keys) of each tile: ``rows`` sequences by one head by ``size`` queries, with the keys
    up to its last query."""
    return [(slice(b, b + rows), h, slice(start, min(length, start + size)), slice(0, min(length, start + size)))
            for b in range(0, batch, rows) for h in range(heads) for start in range(0, length, size)]  # fmt: skip


class _TiledAttention(torch.autograd.Function):
    """:func:`attend_with_dropout` with a written-out backward: tiles read queries, keys and values where they lie in
    the packed projections and write the output and the projections' gradient in place, with no copies or per-tile
    buffers.

    Each tile keeps its weights ``w`` and its dropout mask as bytes for the backward, where with the gradient ``G`` of
    the kept weights ``w * keep`` the softmax's input gets ``w * keep * G - w * sum(w * keep * G)``."""

    @staticmethod
    def forward(ctx, qkv: Tensor, bias: Tensor, n_head: int, p: float, size: int, rows: int) -> Tensor:
        B, T, _ = qkv.shape
        q, k, v = qkv.view(B, T, 3, n_head, -1).unbind(2)  # (B, T, H, hd) each
        scale, out, saved = q.shape[-1] ** -0.5, q.new_empty(q.shape), []
        for b, h, qs, ks in _tiles(B, n_head, T, size, rows):
            tile_bias = bias[b if bias.shape[0] > 1 else slice(None), 0, qs, ks]
            weights = torch.baddbmm(tile_bias, q[b, qs, h], k[b, ks, h].transpose(1, 2), alpha=scale).softmax(-1)
            keep = keep_bits(weights.shape, p)
            kept = weights * keep.to(weights.dtype)
            out[b, qs, h] = torch.bmm(kept, v[b, ks, h]).mul_(1.0 / (1.0 - p))
            saved += [weights, keep]  # the weights' own size, and a byte per weight: little to write and read back
        ctx.save_for_backward(qkv, *saved)
        ctx.n_head, ctx.p, ctx.size, ctx.rows = n_head, p, size, rows
        return out.view(B, T, -1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        qkv, *saved = ctx.saved_tensors
        B, T, _ = qkv.shape
        q, k, v = qkv.view(B, T, 3, ctx.n_head, -1).unbind(2)
        keep_scale = 1.0 / (1.0 - ctx.p)
        scale = q.shape[-1] ** -0.5 * keep_scale
        grad = grad.reshape(q.shape)
        d_qkv = torch.empty_like(qkv)
        dq, dk, dv = d_qkv.view(B, T, 3, ctx.n_head, -1).unbind(2)
        tiles = zip(saved[::2], saved[1::2], _tiles(B, ctx.n_head, T, ctx.size, ctx.rows), strict=True)
        # Last block first: it reaches every key, so it writes dk and dv, which the earlier blocks then add to.
        for weights, keep, (b, h, qs, ks) in reversed(list(tiles)):
            g, kept = grad[b, qs, h], weights * keep.to(weights.dtype)
            kept_grad = torch.bmm(g, v[b, ks, h].transpose(1, 2)).mul_(kept)  # w * keep * G, up to keep_scale
            d_scores = torch.addcmul(kept_grad, weights, kept_grad.sum(-1, keepdim=True), value=-1.0)
            dq[b, qs, h] = torch.bmm(d_scores, k[b, ks, h]).mul_(scale)
            if ks.stop == T:
                dv[b, ks, h] = torch.bmm(kept.transpose(1, 2), g).mul_(keep_scale)
                dk[b, ks, h] = torch.bmm(d_scores.transpose(1, 2), q[b, qs, h]).mul_(scale)
            else:
                dv[b, ks, h].add_(torch.bmm(kept.transpose(1, 2), g), alpha=keep_scale)
                dk[b, ks, h].add_(torch.bmm(d_scores.transpose(1, 2), q[b, qs, h]), alpha=scale)
        return d_qkv, None, None, None, None, None


def keep_mask(like: Tensor, p: float) -> Tensor:
    """1 with probability ``1 - p``, else 0, shaped and typed like ``like`` (on a CPU: :func:`keep_bits`)."""
    if like.device.type != "cpu":
        return (torch.rand_like(like) >= p).to(like.dtype)
    return keep_bits(like.shape, p).to(like.dtype)


def keep_bits(shape: torch.Size, p: float) -> Tensor:
    """A uint8 CPU tensor of ``shape``, 1 with probability ``1 - p``, else 0.

    Each element is kept when a uniform 32-bit word is at least ``round(p * 2**32)`` (so ``p`` holds to ``2**-32``;
    ``torch.rand`` gives ``2**-24``), with the words drawn lazily from numpy's PCG64 seeded from torch's generator (so
    ``torch.manual_seed`` and torch's saved RNG state fix them; torch's CPU generator is several times slower per
    number): every element draws the word's top 8 bits, and only the elements whose top bits equal the threshold's
    (1 in 256) draw the other 24, which decide them."""
    count = math.prod(shape)
    generator = np.random.PCG64(int(torch.randint(2**63 - 1, ())))
    top = generator.random_raw(-(-count // 8)).view(np.uint8)[:count]
    high, low = divmod(min(round(p * 2**32), 2**32 - 1), 2**24)
    keep = top > high
    ties = np.flatnonzero(top == high)
    keep[ties] = (generator.random_raw(ties.size) & (2**24 - 1)) >= low
    return torch.from_numpy(keep.view(np.uint8)).view(shape)


def dropout_mask(like: Tensor, p: float) -> Tensor:
    """``1 / (1 - p)`` with probability ``1 - p``, else 0, shaped like ``like`` (see :func:`keep_mask`)."""
    return keep_mask(like, p).mul_(1.0 / (1.0 - p))


class Dropout(nn.Module):
    """``nn.Dropout`` with its mask from :func:`dropout_mask`."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return x * dropout_mask(x, self.p) if self.training and self.p > 0 else x

    def extra_repr(self) -> str:
        return f"p={self.p}"


def attend_cached(
    q: Tensor, k: Tensor, v: Tensor, bias: Tensor, shared: tuple[Tensor, Tensor, int] | None = None
) -> Tensor:
    """Softmax attention of queries ``q (B, H, T, hd)`` over a prefix shared by groups of rows, if any, followed by
    every row's own keys, as :class:`KVCache` holds them: the same numbers as ``F.scaled_dot_product_attention``
    over each row's full sequence.

    :param k: ``(B, H, S, hd)`` every row's own keys (``v`` alike).
    :param bias: ``(B, 1, T, keys)`` added to the scores: ``0`` where a query may attend, ``-inf`` elsewhere
        (:meth:`KVCache.key_bias`); the keys are the shared prefix's ``capacity``, if any, then the ``S`` own.
    :param shared: keys and values ``(G, H, capacity, hd)`` of the shared prefix and the rows' stride ``s``: rows
        are laid out ``(G / s, B / G, s)`` and row ``(e, c, j)`` uses group ``e * s + j``'s.
    """
    (B, H, T, _), scale = q.shape, q.shape[-1] ** -0.5
    if shared is None:  # in tiles of rows whose weights stay in a core's cache (:data:`TILE`)
        rows = max(1, TILE // (H * T * k.shape[-2]))
        out = q.new_empty(B, H, T, v.shape[-1])
        for r in range(0, B, rows):
            tile = slice(r, r + rows)
            weights = (q[tile] @ k[tile].transpose(-1, -2)).mul_(scale).add_(bias[tile]).softmax(-1)
            torch.matmul(weights, v[tile], out=out[tile])
        return out
    own = q @ k.transpose(-1, -2)
    prefix_k, prefix_v, stride = shared
    G, _, capacity, _ = prefix_k.shape
    copies = B // G

    def by_group(x: Tensor) -> Tensor:  # (B, H, T, n) -> (G, H, copies * T, n): one matrix product per group
        x = x.view(G // stride, copies, stride, H, T, -1).permute(0, 2, 3, 1, 4, 5)
        return x.reshape(G, H, copies * T, -1)

    def by_row(x: Tensor) -> Tensor:  # the inverse
        x = x.view(G // stride, stride, H, copies, T, -1).permute(0, 3, 1, 2, 4, 5)
        return x.reshape(B, H, T, -1)

    scores = torch.cat([by_row(by_group(q) @ prefix_k.transpose(-1, -2)), own], -1)
    weights = scores.mul_(scale).add_(bias).softmax(-1)
    return by_row(by_group(weights[..., :capacity]) @ prefix_v) + weights[..., capacity:].contiguous() @ v


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu":
            return self.dropout(self.proj(F.gelu(self.fc(x))))
        rows = max(1, TILE // self.fc.out_features)
        fc, proj, flat = self.fc, self.proj, x.reshape(-1, x.shape[-1])
        if torch.is_grad_enabled():
            y = _TiledMLP.apply(flat, fc.weight, fc.bias, proj.weight, proj.bias, rows)
        else:
            y = flat.new_empty(flat.shape[0], proj.out_features)
            _mlp_tiles(y, flat, fc.weight, fc.bias, proj.weight, proj.bias, rows, keep=False)
        return self.dropout(y.view(*x.shape[:-1], -1))


def _mlp_tiles(
    out: Tensor, x: Tensor, w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None, rows: int, keep: bool
) -> list[tuple[Tensor, Tensor]]:
    """Write ``linear(gelu(linear(x, w1, b1)), w2, b2)`` into ``out``, ``rows`` rows of ``x (N, C)`` at a time (each
    tile's hidden units stay in a core's cache from one matrix product to the next); return every tile's hidden
    units before and after the GELU if ``keep`` (else none: each tile's memory is reused by the next)."""
    units = []
    for start in range(0, x.shape[0], rows):
        hidden = F.linear(x[start : start + rows], w1, b1)
        active = F.gelu(hidden)
        _linear_into(out[start : start + rows], active, w2, b2)
        if keep:
            units.append((hidden, active))
    return units


class _TiledMLP(torch.autograd.Function):
    """``proj(gelu(fc(x)))`` for ``x (N, C)``, ``rows`` rows at a time, with a written-out backward: each tile's
    hidden units stay in a core's cache from one matrix product to the next instead of going to memory and back
    (:data:`TILE`); the products write straight into the output and input gradient."""

    @staticmethod
    def forward(ctx, x: Tensor, w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None, rows: int) -> Tensor:
        out = x.new_empty(x.shape[0], w2.shape[0])
        hidden, active = zip(*_mlp_tiles(out, x, w1, b1, w2, b2, rows, keep=True), strict=True)
        ctx.save_for_backward(x, w1, w2, *hidden, *active)
        ctx.rows, ctx.biases = rows, (b1 is not None, b2 is not None)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, w1, w2, *units = ctx.saved_tensors
        hidden, active = units[: len(units) // 2], units[len(units) // 2 :]
        dx, dw1, dw2, db1 = torch.empty_like(x), torch.zeros_like(w1), torch.zeros_like(w2), w1.new_zeros(len(w1))
        for h, a, start in zip(hidden, active, range(0, x.shape[0], ctx.rows), strict=True):
            g = grad[start : start + ctx.rows]
            dw2.addmm_(g.t(), a)
            dh = torch.ops.aten.gelu_backward(g @ w2, h)
            dw1.addmm_(dh.t(), x[start : start + ctx.rows])
            db1 += dh.sum(0)
            torch.mm(dh, w1, out=dx[start : start + ctx.rows])
        db2 = grad.sum(0) if ctx.biases[1] else None
        return dx, dw1, db1 if ctx.biases[0] else None, dw2, db2, None


def _linear_into(out: Tensor, x: Tensor, weight: Tensor, bias: Tensor | None) -> None:
    """``out[:] = F.linear(x, weight, bias)`` without an intermediate (``out`` contiguous)."""
    if bias is None:
        torch.mm(x, weight.t(), out=out)
    else:
        torch.addmm(bias, x, weight.t(), out=out)


class Block(nn.Module):
    """Pre-LayerNorm residual block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(
        self, x: Tensor, mask: Tensor, cache: KVCache | None = None, layer: int = 0, last_only: bool = False
    ) -> Tensor:
        """``last_only``: the output ``(B, 1, C)`` of the last token only (the cache still gets every token)."""
        y = self.attn(self.ln_1(x), mask, cache, layer, last_only)
        x = (x[:, -1:] if last_only else x) + y
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """The causal trunk: ``forward(embeddings) -> hidden states`` after the final LayerNorm."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.apply(init_weights)
        # GPT-2: scale the residual projections by 1/sqrt(2 * n_layer) so the residual stream's variance
        # does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def new_cache(self, batch: int, capacity: int | None = None, device=None, dtype=None) -> KVCache:
        """An empty cache for ``batch`` sequences of at most ``capacity`` (default: block size) positions."""
        ref = self.wpe.weight
        return KVCache(self.config, batch, capacity or self.config.block_size, device or ref.device,
                       dtype or ref.dtype)  # fmt: skip

    def forward(
        self,
        embeddings: Tensor,
        positions: Tensor | None = None,
        key_visible: Tensor | None = None,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> Tensor:
        """Hidden states ``(B, T, C)`` of ``T`` new tokens (``(B, 1, C)`` of the last one with ``last_only``,
        which skips the last block's work for the others).

        :param embeddings: ``(B, T, C)`` input embeddings of the new tokens.
        :param positions: ``(B, T)`` or ``(T,)`` position ids; default: ``cache.length + arange(T)``.
        :param key_visible: ``(B, T)`` or ``(T,)`` bool, whether later tokens may attend to each new token;
            default all True.
        :param cache: append to (and attend over) this cache; its length grows by ``T``. Inference only: it
            holds no gradients.
        """
        B, T, _ = embeddings.shape
        if cache is not None and torch.is_grad_enabled():
            raise RuntimeError("a KV cache is for inference: decode under torch.no_grad() or torch.inference_mode()")
        past = cache.length if cache is not None else 0
        if past + T > (cache.capacity if cache is not None else self.config.block_size):
            raise ValueError(
                f"sequence of {past + T} tokens exceeds the capacity (block size {self.config.block_size})"
            )
        device = embeddings.device
        if positions is None:
            positions = torch.arange(past, past + T, device=device)
        visible = torch.ones(T, dtype=torch.bool, device=device) if key_visible is None else key_visible
        if cache is not None:
            cache.visible[:, past : past + T] = visible
            visible = cache.visible[:, : past + T]
        mask = attention_mask(visible.view(-1, visible.shape[-1]), T)  # one row, or one per sequence
        if cache is not None:
            mask = cache.key_bias(mask)
        x = self.drop(embeddings + self.wpe(positions))
        for layer, block in enumerate(self.blocks):
            x = block(x, mask, cache, layer, last_only and layer == len(self.blocks) - 1)
        if cache is not None:
            cache.length = past + T
        return self.ln_f(x)


def attention_mask(visible: Tensor, num_queries: int) -> Tensor:
    """Bool ``(B, 1, T_q, T_k)``: query ``i`` (the last ``T_q`` of ``T_k`` tokens) may attend to key ``j``
    iff ``j <= i`` and key ``j`` is visible; a query with no such key attends to itself (padding rows)."""
    num_keys = visible.shape[-1]
    past = num_keys - num_queries
    causal = torch.ones(num_queries, num_keys, dtype=torch.bool, device=visible.device).tril(past)
    mask = causal & visible[:, None, :]
    itself = torch.zeros_like(causal)
    itself[:, past:] = torch.eye(num_queries, dtype=torch.bool, device=visible.device)
    mask = mask | (itself & ~mask.any(-1, keepdim=True))
    return mask.unsqueeze(1)


def init_weights(module: nn.Module) -> None:
    """GPT-2 initialisation: normal(0, 0.02) weights, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups for ``model``: weight decay on ``nn.Linear`` weights, none on anything else."""
    decay = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if id(p) in decay], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) not in decay], "weight_decay": 0.0},
    ]
