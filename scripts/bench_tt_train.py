"""Trajectory Transformer training throughput: today's training step against the previous code path, one run.

The model is the README's CPU-sized TT (quantile conditionals, 100 bins, Hopper's 11 + 3 dimensions, segments of
8 transitions, 2 layers, 4 heads, width 64, dropout 0.1) at batch 64, trained with TT's AdamW and gradient
clipping on one torch thread. The previous path, restored by :func:`previous_path` and :func:`make_training` for
the rounds that time it, is the original code path: the attention's projections split into queries, keys and values,
attention dropout inside ``F.scaled_dot_product_attention`` (on a CPU: materialised weights and ``bernoulli_``),
``nn.Dropout`` elsewhere, the MLP as three modules, tokens' bins found by comparing each value with every edge, the
loss as one head call per dimension and an unfused AdamW. The two are timed in alternating rounds, and the machine's
load is recorded, so a change of load weighs on both.

    python scripts/bench_tt_train.py            # writes benchmarks/tt_train.json and .md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlgen.algos.tt import TrajectoryModel, TransitionLayout, TTModelConfig
from rlgen.algos.tt.agent import TTConfig, tt_optimizer
from rlgen.algos.tt.model import masked_token_loss
from rlgen.heads import head_config
from rlgen.nets import gpt
from rlgen.nets.gpt import decay_groups
from rlgen.train.run_dir import write_text_atomic

HOPPER = TransitionLayout(obs_dim=11, act_dim=3)


def previous_loss(model: TrajectoryModel, rows: Tensor, mask: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """The previous ``TrajectoryModel.loss``: one head call per dimension."""
    B, L, D = rows.shape
    rows = model.clamp(rows)
    hidden = model.features(rows.flatten(1)[:, :-1])
    hidden = torch.cat([hidden.new_zeros(B, 1, hidden.shape[-1]), hidden], 1).view(B, L, D, -1)
    nll = torch.stack([-head.training_log_prob(head(hidden[:, :, d]), rows[:, :, d : d + 1])
                       for d, head in enumerate(model.heads)], -1)  # fmt: skip
    return masked_token_loss(nll, mask, weights)


def previous_embed(model: TrajectoryModel, values: Tensor, dims: Tensor) -> Tensor:
    """The previous ``TrajectoryModel.embed`` of tokens: each value's bin found by comparing it with every edge."""
    values = model.clamp(values, dims)
    unit = (values - model.low[dims]) / (model.high[dims] - model.low[dims])
    edges = torch.cat([head.edges for head in model.heads])
    return model.token_embedding(dims * model.config.bins + (unit.unsqueeze(-1) >= edges[dims, 1:-1]).sum(-1))


@contextmanager
def previous_path() -> Iterator[None]:
    """Train with the previous attention dropout, dropout modules, MLP and loss."""

    def attention(module: gpt.CausalSelfAttention, x: Tensor, mask: Tensor, *args) -> Tensor:
        B, T, C = x.shape
        q, k, v = (t.view(B, T, module.n_head, -1).transpose(1, 2) for t in module.qkv(x).split(C, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=module.dropout)
        return module.resid_dropout(module.proj(y.transpose(1, 2).reshape(B, T, C)))

    def dropout(module: gpt.Dropout, x: Tensor) -> Tensor:
        return F.dropout(x, module.p, module.training)

    def mlp(module: gpt.MLP, x: Tensor) -> Tensor:
        return module.dropout(module.proj(F.gelu(module.fc(x))))

    with (
        mock.patch.object(gpt.CausalSelfAttention, "forward", attention),
        mock.patch.object(gpt.Dropout, "forward", dropout),
        mock.patch.object(gpt.MLP, "forward", mlp),
        mock.patch.object(TrajectoryModel, "loss", previous_loss),
        mock.patch.object(TrajectoryModel, "embed", previous_embed),
    ):
        yield


def make_training(previous: bool, seed: int = 0) -> tuple[TrajectoryModel, torch.optim.AdamW, Tensor, Tensor, Tensor]:
    """Model, optimiser (the previous path's unfused AdamW, or TT's), a batch of rows, its mask and TT's weights."""
    torch.manual_seed(seed)
    data = np.random.default_rng(seed).normal(size=(20_000, HOPPER.dim)).astype(np.float32)
    config = TTModelConfig(head_config("quantile", num_bins=100), sequence_length=8, n_layer=2, n_head=4, n_embd=64)
    model = TrajectoryModel(config, HOPPER, data.min(0), data.max(0))
    model.fit_bins(data)
    if previous:
        optimizer = torch.optim.AdamW(decay_groups(model, 0.1), lr=6e-4, betas=(0.9, 0.95))
    else:
        optimizer = tt_optimizer(model, TTConfig())
    rows = torch.as_tensor(data[: 64 * 8].reshape(64, 8, HOPPER.dim))
    return model, optimizer, rows, torch.ones(64, 8, dtype=torch.bool), torch.as_tensor(HOPPER.weights(1, 5, 1, 1))


def train_steps(training: tuple, steps: int) -> tuple[float, float]:
    """Wall and CPU seconds per training step over ``steps`` steps (TT's update: loss, backward, clip, AdamW)."""
    model, optimizer, rows, mask, weights = training
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        loss, _ = model.loss(rows, mask, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return (time.perf_counter() - start) / steps, (time.process_time() - start_cpu) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="training steps per path per round")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/tt_train"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # rlgen train's default (train.threads)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    previous, current = make_training(previous=True), make_training(previous=False)
    with previous_path():
        train_steps(previous, 2)  # warm-up
    train_steps(current, 2)
    times: dict[str, list[tuple[float, float]]] = {"previous": [], "current": []}
    loads = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        with previous_path():
            times["previous"].append(train_steps(previous, args.steps))
        times["current"].append(train_steps(current, args.steps))
        loads.append(os.getloadavg()[0])
    (prev_s, prev_cpu), (cur_s, cur_cpu) = (np.mean(times[k], axis=0).tolist() for k in ("previous", "current"))
    result = {"command": command, "platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
              "torch_threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
              "load_averages": loads, "previous_s_per_step": prev_s, "current_s_per_step": cur_s,
              "previous_cpu_s_per_step": prev_cpu, "current_cpu_s_per_step": cur_cpu,
              "previous_steps_per_s": 1 / prev_s, "current_steps_per_s": 1 / cur_s, "speedup": prev_s / cur_s,
              "speedup_cpu": prev_cpu / cur_cpu, "rounds": args.rounds, "steps_per_round": args.steps}  # fmt: skip
    print(f"previous {1 / prev_s:.2f} steps/s ({prev_cpu:.3f} CPU s/step), current {1 / cur_s:.2f} steps/s "
          f"({cur_cpu:.3f} CPU s/step): {prev_s / cur_s:.2f}x wall, {prev_cpu / cur_cpu:.2f}x CPU "
          f"(load {min(loads):.1f}-{max(loads):.1f}, {torch.get_num_threads()} thread)", flush=True)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    lines = [
        "# Trajectory Transformer training throughput (the README's CPU-sized model, batch 64)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {result['platform']}, {result['cpus']} CPUs, torch {result['torch']}, {result['torch_threads']} "
        f"torch thread; shared with other jobs, load average {min(loads):.1f} - {max(loads):.1f} over the run "
        "(provisional).  ",
        "Quantile conditionals, 100 bins, Hopper dimensions, segments of 8 transitions, 2 layers, 4 heads, width "
        "64, dropout 0.1; TT's update (loss, backward, clip 1.0, AdamW). Previous path (the original code): "
        "attention dropout inside F.scaled_dot_product_attention (on a CPU: all T x T weights materialised, a "
        "bernoulli_ mask), nn.Dropout (bernoulli_), the MLP as three modules, each token's bin by comparison with "
        "every edge, one head call per dimension, unfused AdamW. Current: causal attention in cache-sized tiles (one "
        "head, a block of queries and only the keys up to its last) read from the packed projections, with a "
        "written-out backward into one gradient buffer, the MLP in tiles of rows likewise, dropout masks from raw "
        "PCG64 words seeded by torch's generator, bins by binary search, all dimensions' logits from one batched "
        "product and their log-masses picked by a cross-entropy, fused AdamW. "
        f"{args.rounds} alternating rounds of {args.steps} steps each; CPU seconds are the steadier measure.",
        "",
        "| path | s / step (wall) | steps / s (wall) | CPU s / step |",
        "| --- | ---: | ---: | ---: |",
        f"| previous | {prev_s:.3f} | {1 / prev_s:.2f} | {prev_cpu:.3f} |",
        f"| current | {cur_s:.3f} | {1 / cur_s:.2f} | {cur_cpu:.3f} |",
        f"| speedup | | **{prev_s / cur_s:.2f}x** | **{prev_cpu / cur_cpu:.2f}x** |",
    ]
    write_text_atomic(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
