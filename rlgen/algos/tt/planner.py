"""Beam-search planning with a trained Trajectory Transformer, batched over beams and environments.

Semantics of the released TT planner (Janner et al. 2021, ``beam_plan``), per environment:

1. the prefix is the last ``context`` real transitions (value tokens are placeholders) and the current
   observation; the beam starts as ``beam_width`` copies of it;
2. for each of ``horizon`` steps: repeat every candidate ``n_expand`` times; sample each action dimension
   from its conditional after dropping the lowest-ranked bins (``top_p = 1 - cdf_act``); decode the reward
   and value greedily into the sequence but score them by their expectation; score every candidate by
   ``sum_{k <= t} discount^k r_k + discount^(t+1) V_t``; keep the ``beam_width`` best; then decode the next
   observation greedily (the first-ranked bin) unless the horizon is reached;
3. execute the first action of the best sequence; replan at the next step.

Every forward pass sees a window, as in the released planner: the sequence is cropped from the front by whole
transitions to at most ``window * D - 1`` tokens (the block the model was trained on) and positions restart at
the window's first token; so plans of any horizon condition on what the model was trained on.

TT ranks tokens by probability (``rank_bins: mass``). With unequal bins, ranking by density (mass / width)
makes the kept bins a highest-density region; with uniform bins the two are the same. Quantile conditionals need
density: one close to the data's marginal gives every quantile bin about the same mass, so ranking by mass keeps
an arbitrary set of bins. AdaCat keeps mass: its bins start with one narrow bin per repeated value (an action
clipped at its bound), whose density ranks it first whatever its mass. benchmarks/tt_scores.md has the numbers.

Two decoders produce the same numbers: :class:`CachedDecoder` feeds only the new tokens through the GPT and
keeps a KV cache that follows the beam (reindexed on expansion and selection) and is refilled once per
transition, when the window moves; :class:`RecomputeDecoder` recomputes the whole window for every token, as
the released TT does. The search itself
(:func:`beam_plan`) is shared, so given the same random generator both return the same plan.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rlgen.algos.tt.model import TrajectoryModel
from rlgen.heads import PiecewiseUniform
from rlgen.heads.piecewise import BIN_RANKINGS, BinRanking
from rlgen.nets.gpt import KVCache


@dataclass(frozen=True)
class PlannerConfig:
    """Beam search settings (TT's Hopper defaults; the recipes' CPU preset is smaller).

    :param horizon: planned transitions.
    :param beam_width: candidates kept after every step.
    :param n_expand: copies of every candidate before sampling its next action.
    :param context: real past transitions in the prefix.
    :param action_top_p: keep the highest-ranked action bins holding this mass (TT's ``cdf_act = 0.6`` is
        ``0.4``; ``1.0`` samples from the full conditional).
    :param discount: of the planning score.
    :param rank_bins: ``mass`` (TT's) or ``density``: the order in which bins join the action nucleus, and the
        observation, reward and value bin that greedy decoding takes.
    :param window: transitions every forward pass sees (TT's ``max_context_transitions``): a longer sequence is
        cropped from the front by whole transitions to at most ``window * D - 1`` tokens, the trained block;
        ``null``: the model's ``sequence_length``.
    :param cached: plan with the KV cache (``false``: recompute the whole window per token, as released TT).
    """

    horizon: int = 15
    beam_width: int = 128
    n_expand: int = 2
    context: int = 5
    action_top_p: float = 0.4
    discount: float = 0.99
    rank_bins: BinRanking = "mass"
    window: int | None = None
    cached: bool = True

    def __post_init__(self) -> None:
        if min(self.horizon, self.beam_width, self.n_expand) < 1 or self.context < 0:
            raise ValueError(f"horizon, beam_width and n_expand must be >= 1 and context >= 0, got {self}")
        if self.window is not None and self.window < 1:
            raise ValueError(f"window must be >= 1 transition or null, got {self.window}")
        if not 0.0 <= self.action_top_p <= 1.0:
            raise ValueError(f"action_top_p must be in [0, 1], got {self.action_top_p}")
        if self.rank_bins not in BIN_RANKINGS:
            raise ValueError(f"rank_bins must be one of {BIN_RANKINGS}, got {self.rank_bins!r}")


@dataclass(frozen=True)
class Plan:
    """The best planned sequence of every environment.

    :param transitions: ``(E, horizon, D)`` rows ``[s, a, r, V]``; ``s`` of the first is the current
        observation, the rest are decoded tokens (``r`` and ``V`` greedily; ``scores`` uses expectations).
    :param scores: ``(E,)`` planning score of each best sequence (expected rewards and value).
    """

    transitions: Tensor
    scores: Tensor
    obs_dim: int
    act_dim: int

    @property
    def actions(self) -> Tensor:
        """``(E, act_dim)`` first action of every best sequence: what to execute now."""
        return self.transitions[:, 0, self.obs_dim : self.obs_dim + self.act_dim]


class Decoder(ABC):
    """A batch of token sequences growing one or several tokens at a time, and the features of each row's last
    token (which predict the next one), computed when first asked for.

    Rows are left-padded by ``pad`` tokens (whole transitions). Every forward pass sees only a window: a row
    longer than ``block`` real tokens is cropped from the front by whole transitions until it fits (the released
    TT's ``max_block`` and ``crop_increment``), and positions count from the first token of the window.
    """

    def __init__(self, model: TrajectoryModel, prefix: Tensor, pad: Tensor, block: int):
        self.model, self.values, self.pad, self.block = model, prefix, pad, block
        self.min_pad = int(pad.min()) if len(pad) else 0
        self._last: Tensor | None = None

    @property
    def last(self) -> Tensor:
        """Features ``(B, C)`` of every row's last token."""
        if self._last is None:
            self._last = self._features()
        return self._last

    @abstractmethod
    def _features(self) -> Tensor:
        """Features ``(B, C)`` of the last token of ``self.values``."""

    def window(self) -> tuple[int, Tensor]:
        """The first slot any row's window starts at, and every row's invisible tokens after it ``(B,)``."""
        D, length = self.model.layout.dim, self.values.shape[1]
        start = self.pad + ((length - self.pad - self.block).clamp(min=0) + D - 1) // D * D  # whole transitions
        # The row with the least padding is the longest; it starts first.
        first = self.min_pad + (max(0, length - self.min_pad - self.block) + D - 1) // D * D
        return first, start - first

    def extend(self, values: Tensor) -> None:
        """Append ``values (B, n)``."""
        self.values = torch.cat([self.values, values.to(self.values)], 1)
        self._last = None

    def select(self, index: Tensor) -> None:
        """Keep rows ``index`` (reorder, repeat, drop) in that order."""
        self.values, self.pad = self.values[index], self.pad[index]
        if self._last is not None:
            self._last = self._last[index]

    def expand(self, copies: int, envs: int) -> Tensor:
        """Repeat every environment's block of rows ``copies`` times in a row (rows ``(envs, W)`` become
        ``(envs, copies, W)``); return the index selected."""
        width = self.values.shape[0] // envs
        index = torch.arange(envs * width, device=self.values.device).view(envs, 1, width).expand(-1, copies, -1)
        Decoder.select(self, index.flatten())  # the rows only: subclasses repeat their own state
        return index.flatten()


class CachedDecoder(Decoder):
    """Feeds only the new tokens through the GPT; the KV cache follows the rows and holds the current window.
    When the window moves (one transition at a time), positions change, so the window is recomputed into the
    emptied cache. Every environment's prefix is cached once and shared by all its candidates (they stay grouped
    by environment) until then; expanded candidates share their parent's cached positions."""

    def __init__(self, model: TrajectoryModel, prefix: Tensor, pad: Tensor, block: int, cache: KVCache | None = None):
        """``cache``: one of capacity ``block`` to decode in (emptied first, its storage kept); default: a new one."""
        super().__init__(model, prefix, pad, block)
        self.cache = model.gpt.new_cache(prefix.shape[0], block) if cache is None else cache
        self.cache.clear(prefix.shape[0])
        self.first = 0  # the slot of the cache's first position
        self._last = self._features()  # the prefix, computed once per environment
        self.cache.share_prefix()

    def _features(self) -> Tensor:
        first, pad = self.window()
        if first != self.first or self.cache.length == 0:  # the window moved, or nothing is cached yet
            self.cache.clear()
            self.first = first
            self._fill_shared(pad)
        done = first + self.cache.length  # slots already in the cache
        return self.model.features(self.values[:, done:], done - first, pad, self.cache, last_only=True)[:, 0]

    def _fill_shared(self, pad: Tensor) -> None:
        """Cache the window but its last transition's action, reward and value, a transition at a time, each once
        per distinct row up to its end: candidates descend from few ancestors, and rows that descend from the same
        candidate differ only in the last action, reward and value."""
        lay = self.model.layout
        head = self.values[:, self.first : self.values.shape[1] - (lay.dim - lay.obs_dim)]
        if head.shape[1] == 0:
            return
        keyed = torch.cat([pad[:, None].to(head), head], 1)
        every_row = torch.arange(len(keyed), device=keyed.device)
        parents, start = None, 0
        for end in [*range(lay.dim, head.shape[1], lay.dim), head.shape[1]]:
            rows, inverse = torch.unique(keyed[:, : 1 + end], dim=0, return_inverse=True)
            if parents is None:
                self.cache.clear(len(rows))
            else:  # each distinct row continues the cached row of its start (that of any row it stands for)
                member = torch.empty(len(rows), dtype=torch.long, device=keyed.device).scatter_(0, inverse, every_row)
                self.cache.select(parents[member])
            self.model.features(rows[:, 1 + start : 1 + end], start, rows[:, 0].long(), self.cache, last_only=True)
            parents, start = inverse, end
        self.cache.select(parents)

    def select(self, index: Tensor) -> None:
        super().select(index)
        self.cache.select(index)

    def expand(self, copies: int, envs: int) -> Tensor:
        index = super().expand(copies, envs)
        self.cache.repeat(copies, envs)
        return index


class RecomputeDecoder(Decoder):
    """Recomputes every row's whole window for every new token (the released TT's planner; the reference)."""

    def _features(self) -> Tensor:
        first, pad = self.window()
        return self.model.features(self.values[:, first:], 0, pad, last_only=True)[:, 0]


def planning_window(model: TrajectoryModel, config: PlannerConfig) -> int:
    """Transitions every forward pass of the plan sees."""
    window = config.window or model.config.sequence_length
    if window > model.config.sequence_length:
        raise ValueError(f"planner window of {window} transitions exceeds the {model.config.sequence_length} the "
                         "model was trained on (agent.model.sequence_length)")  # fmt: skip
    if window < 2 and config.horizon > 1:
        raise ValueError("a planner window of 1 transition holds no whole transition to start the next one from; "
                         f"use window >= 2 or horizon 1, got horizon {config.horizon}")  # fmt: skip
    return window


def planning_cache(model: TrajectoryModel, config: PlannerConfig) -> KVCache:
    """An empty KV cache that :func:`beam_plan` can plan in with ``model`` and ``config``, call after call."""
    return model.gpt.new_cache(1, planning_window(model, config) * model.layout.dim - 1)


@contextmanager
def planning_threads(threads: int = 1) -> Iterator[None]:
    """Run the body on ``threads`` torch threads, then restore the caller's number.

    One thread by default: beam search is a long chain of small operations, where OpenMP workers cost more to
    wake than they save, and spin-waiting ones slow everything down on a loaded machine.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.inference_mode()
@planning_threads()
def beam_plan(
    model: TrajectoryModel,
    prefix: Tensor,
    pad: Tensor,
    config: PlannerConfig,
    generator: torch.Generator | None = None,
    cache: KVCache | None = None,
) -> Plan:
    """Plan for ``E`` environments at once (see the module docstring), on one torch thread.

    :param prefix: ``(E, P)`` left-padded prefixes, each ending with the current observation.
    :param pad: ``(E,)`` padding tokens of each prefix (a multiple of D).
    :param cache: plan in this KV cache (:func:`planning_cache`) instead of a new one, and keep its storage for
        the next call: pass the same cache to every call of a rollout so no call allocates once they are warm
        (unused with ``config.cached`` false).
    """
    layout, greedy = model.layout, 0.0  # top_p = 0 keeps only the first-ranked bin
    E, P, W, n, H = prefix.shape[0], prefix.shape[1], config.beam_width, config.n_expand, config.horizon
    midpoint = model.midpoint_decoding

    def decode(dist: PiecewiseUniform, top_p: float) -> Tensor:
        """A value ``(B, 1)`` from a bin drawn among the highest-ranked ones holding ``top_p`` of the mass."""
        return dist.sample(top_p=top_p, midpoint=midpoint, generator=generator, rank_by=config.rank_bins)

    block = planning_window(model, config) * layout.dim - 1
    dtype = model.gpt.wpe.weight.dtype
    if cache is not None and (cache.capacity != block or cache.dtype != dtype):
        raise ValueError(f"the planning cache holds {cache.capacity} positions of {cache.dtype}, this plan needs "
                         f"{block} of {dtype}: make it with planning_cache(model, config)")  # fmt: skip
    if config.cached:
        decoder: Decoder = CachedDecoder(model, prefix, pad, block, cache)
    else:
        decoder = RecomputeDecoder(model, prefix, pad, block)
    env = torch.arange(E, device=prefix.device)
    decoder.select(env.repeat_interleave(W))  # E * W rows, environment-major
    rewards = torch.zeros(E * W, H + 1, device=prefix.device)
    discounts = config.discount ** torch.arange(H + 1, device=prefix.device, dtype=torch.float32)
    scores = rewards[:, 0]
    for t in range(H):
        expand = decoder.expand(n, E)
        rewards = rewards[expand]
        for d in range(layout.actions.start, layout.actions.stop):
            decoder.extend(decode(model.distribution(decoder.last, d), config.action_top_p))
        for d, column in ((layout.reward, t), (layout.value, t + 1)):
            dist = model.distribution(decoder.last, d)
            rewards[:, column] = dist.mean[:, 0]
            decoder.extend(decode(dist, greedy))
        top = (rewards * discounts).sum(-1).view(E, W * n).topk(W, dim=1)
        keep = (top.indices + env[:, None] * (W * n)).flatten()
        decoder.select(keep)
        rewards, scores = rewards[keep], top.values.flatten()
        if t < H - 1:
            for d in range(layout.obs_dim):
                decoder.extend(decode(model.distribution(decoder.last, d), greedy))
    best = env * W  # topk sorts: the first candidate of every environment is its best
    transitions = decoder.values[best, P - layout.obs_dim :].view(E, H, layout.dim)
    return Plan(transitions.float(), scores[best], layout.obs_dim, layout.act_dim)


def make_prefix(
    model: TrajectoryModel, contexts: Sequence[np.ndarray], observations: np.ndarray, context: int
) -> tuple[Tensor, Tensor]:
    """Left-padded prefixes ``(E, P)`` and their padding ``(E,)`` from each environment's past transitions
    (``(c_e, D)`` rows; only the last ``context`` are used) and current observations ``(E, obs_dim)``."""
    D, device = model.layout.dim, model.low.device
    dtype = model.gpt.wpe.weight.dtype
    kept = [np.asarray(c, dtype=np.float32).reshape(-1, D) for c in contexts]
    kept = [rows[len(rows) - min(len(rows), context) :] for rows in kept]
    longest = max((len(c) for c in kept), default=0)
    prefix = torch.zeros(len(kept), longest * D + model.layout.obs_dim, dtype=dtype, device=device)
    pad = torch.zeros(len(kept), dtype=torch.long, device=device)
    for e, rows in enumerate(kept):
        pad[e] = (longest - len(rows)) * D
        prefix[e, pad[e] : longest * D] = torch.as_tensor(rows, dtype=dtype).flatten()
    prefix[:, longest * D :] = torch.as_tensor(observations, dtype=dtype, device=device)
    return prefix, pad
