"""The Trajectory Transformer's sequence model: a GPT over the dimensions of ``[s, a, r, V]`` transitions.

Token ``i`` of a sequence is dimension ``d = i mod D`` of transition ``i // D``; the features at token ``i``
predict token ``i + 1`` through the head of dimension ``(i + 1) mod D`` (one output head per dimension, as
in the released TT). Every head is an rlgen head over the data's range of its dimension:

* ``uniform`` / ``quantile``: N bins with fixed edges (equal widths, or equal data mass per bin); inputs are
  the bin's token in a per-dimension offset vocabulary (token ``d * N + bin``); decoding reconstructs a
  token at its bin's midpoint.
* ``adacat``: 2k logits per dimension (widths and masses, AdaCat eq. 2) trained with the analytically
  smoothed likelihood (eq. 8), the bins starting at the data's marginal; inputs are continuous values, either
  min-max normalised to ``[0, 1]`` and embedded by one ``Linear(1, width)`` (``input_embedding: linear``, AdaCat
  sec. 4.4) or by a piecewise-linear encoding (``piecewise``, below); a per-dimension embedding is added;
  decoding samples uniformly inside the chosen bin.

The piecewise-linear encoding cuts each dimension at the quantiles of its data into k pieces with one learned
vector ``e_j`` each and embeds a value in piece ``j`` at fraction ``f`` of it as ``e_1 + ... + e_{j-1} + f e_j``:
continuous in the value (nothing is rounded, unlike tokens) yet as expressive as a token vocabulary, where a
single linear map gives every value of a dimension a point on one line and learns far more slowly.

As in the released TT, no token may attend to a value token: the values written into the context are
placeholders (the true value of a real past transition is unknown when planning).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlgen.algos.tt.sequences import TransitionLayout
from rlgen.config import ConfigError
from rlgen.heads import (
    AdaCatHead,
    AdaCatHeadConfig,
    BinnedHeadConfig,
    HeadConfig,
    PiecewiseUniform,
    QuantileCategoricalHead,
    unit_quantile_edges,
)
from rlgen.nets.gpt import GPT, GPTConfig, KVCache

InputEmbedding = Literal["linear", "piecewise"]
#: the heads TT can use: its sequences are tokens or values within bins.
TT_HEADS: tuple[str, ...] = ("uniform", "quantile", "adacat")
# A dimension whose data never varies still gets a box of this width (a head needs low < high).
MIN_RANGE = 1e-6


@dataclass(frozen=True)
class TTModelConfig:
    """The sequence model.

    :param head: the per-dimension conditionals: a ``uniform``, ``quantile`` or ``adacat`` head config (by
        default AdaCat with a tenth of the gradient reaching its width logits; 1 is the paper's plain gradient).
    :param input_embedding: how AdaCat embeds its continuous inputs: ``piecewise`` (see the module docstring) or
        ``linear`` (the paper's ``Linear(1, width)``, which learns far more slowly); ignored by token conditionals.
    :param sequence_length: transitions per training segment; the planner's window must fit.
    """

    head: HeadConfig = field(default_factory=lambda: AdaCatHeadConfig(width_grad_scale=0.1))
    input_embedding: InputEmbedding = "piecewise"
    sequence_length: int = 20
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.head.type not in TT_HEADS:
            raise ConfigError(f"agent.model.head must be one of {', '.join(TT_HEADS)} (TT's conditionals are "
                              f"binned), got {self.head.type!r}")  # fmt: skip

    @property
    def bins(self) -> int:
        assert isinstance(self.head, BinnedHeadConfig)
        return self.head.num_bins


class TrajectoryModel(nn.Module):
    """GPT trunk, input embeddings and one :class:`~rlgen.heads.BinnedHead` per transition dimension.

    :param low: ``(D,)`` lower bounds of the dimensions (the data's minimum).
    :param high: ``(D,)`` upper bounds (the data's maximum).
    """

    def __init__(self, config: TTModelConfig, layout: TransitionLayout, low: np.ndarray, high: np.ndarray):
        super().__init__()
        self.config, self.layout = config, layout
        D, C, N = layout.dim, config.n_embd, config.bins
        self.gpt = GPT(GPTConfig(config.sequence_length * D, config.n_layer, config.n_head, C, config.dropout))
        high = np.maximum(high, low + MIN_RANGE)
        self.heads = nn.ModuleList(config.head.create(C, 1, float(low[d]), float(high[d])) for d in range(D))
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))
        if config.input_embedding not in ("linear", "piecewise"):
            raise ValueError(f"unknown input_embedding {config.input_embedding!r}; choose 'linear' or 'piecewise'")
        if self.continuous_inputs:
            self.dim_embedding = nn.Embedding(D, C)
            nn.init.normal_(self.dim_embedding.weight, 0, 0.02)
        if self.continuous_inputs and config.input_embedding == "linear":
            self.value_embedding = nn.Linear(1, C)
        else:  # one vector per (dimension, bin): token embeddings, or the pieces of the piecewise encoding
            self.token_embedding = nn.Embedding(D * N, C)
            nn.init.normal_(self.token_embedding.weight, 0, 0.02)
        if self.continuous_inputs and config.input_embedding == "piecewise":
            self.register_buffer("input_edges", torch.linspace(0.0, 1.0, N + 1).repeat(D, 1))

    @property
    def continuous_inputs(self) -> bool:
        return isinstance(self.config.head, AdaCatHeadConfig)

    @property
    def midpoint_decoding(self) -> bool:
        """Token models reconstruct at bin midpoints; AdaCat samples uniformly inside a bin (AdaCat App. C.3)."""
        return not self.continuous_inputs

    def fit_bins(self, rows: np.ndarray) -> None:
        """Fit everything that follows the data's quantiles (``rows (N, D)``): quantile conditionals' edges,
        AdaCat's initial bins and the piecewise input encoding's pieces."""
        rows_t = self.clamp(torch.as_tensor(rows, device=self.low.device))
        for d, head in enumerate(self.heads):
            if isinstance(head, (QuantileCategoricalHead, AdaCatHead)):
                head.fit_bins(rows_t[:, d : d + 1])
        if hasattr(self, "input_edges"):
            self.input_edges.copy_(unit_quantile_edges((rows_t - self.low) / (self.high - self.low), self.config.bins))

    def clamp(self, values: Tensor, dims: Tensor | slice = slice(None)) -> Tensor:
        """Values clipped into their dimensions' boxes (observations beyond the data's range, padding)."""
        return torch.minimum(torch.maximum(values, self.low[dims].to(values)), self.high[dims].to(values))

    # ----- the trunk -----------------------------------------------------------------------------------------
    def embed(self, values: Tensor, dims: Tensor) -> Tensor:
        """``(B, T, C)`` input embeddings of ``values (B, T)`` whose dimensions are ``dims (T,)``."""
        values = self.clamp(values, dims)
        unit = (values - self.low[dims]) / (self.high[dims] - self.low[dims])
        if not self.continuous_inputs:
            inner = torch.cat([head.edges[:, 1:-1] for head in self.heads])[dims]  # (T, N - 1) on the unit interval
            token = torch.searchsorted(inner, unit.T.contiguous(), right=True).T  # the value's bin, as bin_index
            return self.token_embedding(dims * self.config.bins + token)
        if self.config.input_embedding == "linear":
            return self.value_embedding(unit.unsqueeze(-1).to(self.value_embedding.weight)) + self.dim_embedding(dims)
        return self._piecewise_embedding(unit, dims) + self.dim_embedding(dims)

    def _piecewise_embedding(self, unit: Tensor, dims: Tensor) -> Tensor:
        """``e_1 + ... + e_{j-1} + f e_j`` for values ``unit (B, T)`` at fraction f of piece j of their dimension."""
        D, N, C = self.layout.dim, self.config.bins, self.config.n_embd
        edges = self.input_edges[dims].expand(*unit.shape, N + 1)  # (B, T, N + 1)
        piece = (unit.unsqueeze(-1) >= edges[..., 1:-1]).sum(-1, keepdim=True)
        start, end = edges.gather(-1, piece), edges.gather(-1, piece + 1)
        fraction = ((unit.unsqueeze(-1) - start) / (end - start)).clamp(0.0, 1.0)
        vectors = self.token_embedding.weight
        before = (vectors.view(D, N, C).cumsum(1) - vectors.view(D, N, C)).view(D * N, C)
        index = dims * N + piece.squeeze(-1)
        return F.embedding(index, before) + fraction.to(vectors) * F.embedding(index, vectors)

    def features(
        self,
        values: Tensor,
        start: int = 0,
        pad: Tensor | None = None,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> Tensor:
        """Hidden states ``(B, T, C)`` of ``values (B, T)`` occupying slots ``start .. start + T`` of sequences
        whose first transition starts at slot 0 (``(B, 1, C)`` of the last token with ``last_only``).

        :param pad: ``(B,)`` left-padding tokens per row (a multiple of D): those slots are invisible and
            positions count from the first real token.
        :param cache: a KV cache holding slots ``0 .. start`` (then only the new tokens are computed).
        """
        T = values.shape[1]
        slots = torch.arange(start, start + T, device=values.device)
        dims = slots % self.layout.dim
        visible = dims != self.layout.value
        positions = slots
        if pad is not None:
            positions = (slots - pad[:, None]).clamp(min=0)
            visible = visible & (slots >= pad[:, None])
        return self.gpt(self.embed(values, dims), positions, visible, cache, last_only)

    def distribution(self, features: Tensor, dim: int) -> PiecewiseUniform:
        """The conditional of dimension ``dim`` given the features ``(..., C)`` of the token before it."""
        return self.heads[dim](features)

    def joint_distribution(self, features: Tensor) -> PiecewiseUniform:
        """The conditionals of all D dimensions side by side, dimension ``d``'s given ``features[..., d, :]``
        (``features (..., D, C)``): each head's distribution of its features, computed in one set of operations."""
        weight = torch.stack([head.proj.weight for head in self.heads])  # (D, P, C)
        bias = torch.stack([head.proj.bias for head in self.heads])
        params = torch.einsum("...dc,dpc->...dp", features, weight) + bias
        return type(self.heads[0]).joint_distribution(self.heads, params)

    # ----- training ------------------------------------------------------------------------------------------
    def loss(self, rows: Tensor, mask: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
        """Weighted mean NLL over real tokens and the per-dimension mean NLL ``(D,)``.

        :param rows: ``(B, L, D)`` transitions; :param mask: ``(B, L)`` real steps; :param weights: ``(D,)``.
        The first token is never predicted (nothing precedes it).
        """
        B, L, D = rows.shape
        rows = self.clamp(rows)
        hidden = self.features(rows.flatten(1)[:, :-1])
        # Slot the features of token i - 1 under token i: (B, L, D, C), the first slot has none.
        hidden = torch.cat([hidden.new_zeros(B, 1, hidden.shape[-1]), hidden], 1).view(B, L, D, -1)
        if self.continuous_inputs or self.heads[0].bandwidth > 0:
            nll = -self.heads[0].training_log_prob_per_dim(self.joint_distribution(hidden), rows)  # (B, L, D)
        else:
            nll = self._token_nll(hidden, rows)
        return masked_token_loss(nll, mask, weights)

    def _token_nll(self, features: Tensor, targets: Tensor) -> Tensor:
        """``-joint_distribution(features).log_prob_per_dim(targets)`` ``(B, L, D)`` for token conditionals (fixed bins,
        no smoothing), computed dimension by dimension: one product per dimension straight into its logits, the bins
        by binary search, each token's log-mass picked from a cross-entropy. ``targets`` lie in their boxes."""
        B, L, D, C = features.shape
        weight = torch.stack([head.proj.weight for head in self.heads])  # (D, N, C)
        bias = torch.stack([head.proj.bias for head in self.heads])
        edges, low, high = (torch.cat([getattr(h, name) for h in self.heads]) for name in ("edges", "low", "high"))
        by_dim = features.permute(2, 0, 1, 3).reshape(D, B * L, C)
        logits = torch.baddbmm(bias[:, None], by_dim, weight.transpose(1, 2))  # (D, B * L, N)
        unit = ((targets - low) / (high - low)).reshape(B * L, D).T.contiguous()
        index = torch.searchsorted(edges[:, 1:-1].contiguous(), unit, right=True)  # PiecewiseUniform.bin_index
        log_widths = torch.log(edges[:, 1:] - edges[:, :-1]).gather(-1, index)
        neg_log_mass = F.cross_entropy(logits.flatten(0, 1), index.flatten(), reduction="none").view(D, B * L)
        nll = neg_log_mass + log_widths + torch.log(high - low)[:, None]
        return nll.view(D, B, L).permute(1, 2, 0)


def masked_token_loss(nll: Tensor, mask: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """The weighted mean of per-token losses ``nll`` ``(B, L, D)`` over the real transitions ``mask`` ``(B, L)``
    (the first token of a sequence has no context and is skipped), and each dimension's unweighted mean."""
    B, L, D = nll.shape
    token_mask = mask[:, :, None].expand(B, L, D).clone()
    token_mask[:, 0, 0] = False
    token_mask = token_mask.to(nll.dtype)
    count = token_mask.sum().clamp(min=1.0)
    per_dim = (nll * token_mask).sum((0, 1)) / token_mask.sum((0, 1)).clamp(min=1.0)
    return (nll * token_mask * weights).sum() / count, per_dim.detach()
