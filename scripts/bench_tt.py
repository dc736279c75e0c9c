"""Trajectory Transformer planning time per environment step: KV-cached beam search vs full recompute.

Both planners run the same model (TT's size, untrained: timing does not depend on the weights) with the
same settings and the same random stream, so they also return the same plan (checked here). Settings:
TT's Hopper defaults and rlgen's CPU preset, for Hopper's 11 observation and 3 action dimensions.

    python scripts/bench_tt.py                       # writes benchmarks/tt_planning.json and .md
    python scripts/bench_tt.py --settings cpu --steps 5
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from rlgen.algos.tt import PlannerConfig, TrajectoryModel, TransitionLayout, TTModelConfig, beam_plan, make_prefix

SETTINGS: dict[str, PlannerConfig] = {
    "paper": PlannerConfig(horizon=15, beam_width=128, n_expand=2, context=5),
    "cpu": PlannerConfig(horizon=5, beam_width=16, n_expand=2, context=2),
}
HOPPER = TransitionLayout(obs_dim=11, act_dim=3)


def time_planner(model: TrajectoryModel, config: PlannerConfig, steps: int, seed: int) -> tuple[float, torch.Tensor]:
    """Mean seconds per planning call (one environment, a full context) and the first call's actions."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    times, first = [], None
    for _ in range(steps):
        context = rng.normal(size=(config.context, HOPPER.dim)).astype(np.float32)
        prefix, pad = make_prefix(model, [context], rng.normal(size=(1, HOPPER.obs_dim)), config.context)
        start = time.perf_counter()
        plan = beam_plan(model, prefix, pad, config, generator)
        times.append(time.perf_counter() - start)
        first = plan.actions if first is None else first
    return float(np.mean(times)), first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--conditional", default="adacat", choices=["uniform", "quantile", "adacat"])
    parser.add_argument("--steps", type=int, default=3, help="planning calls timed with the cache")
    parser.add_argument("--full-steps", type=int, default=1, help="planning calls timed with full recompute")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/tt_planning"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.settings:
        config = SETTINGS[name]
        torch.manual_seed(0)
        model_config = TTModelConfig(args.conditional, sequence_length=config.context + config.horizon)
        bounds = np.full(HOPPER.dim, 4.0, dtype=np.float32)
        model = TrajectoryModel(model_config, HOPPER, -bounds, bounds).eval()
        cached, cached_actions = time_planner(model, replace(config, cached=True), args.steps, seed=1)
        full, full_actions = time_planner(model, replace(config, cached=False), args.full_steps, seed=1)
        row = {"settings": name, **asdict(config), "conditional": args.conditional,
               "cached_s_per_step": cached, "full_recompute_s_per_step": full, "speedup": full / cached,
               "same_first_plan": bool(torch.allclose(cached_actions, full_actions, atol=1e-4)),
               "cached_steps_timed": args.steps, "full_steps_timed": args.full_steps,
               "hopper_episode_min_cached": 1000 * cached / 60}  # fmt: skip
        rows.append(row)
        print(f"{name}: cached {cached:.3f} s/step, full recompute {full:.3f} s/step, {full / cached:.1f}x faster, "
              f"same plan {row['same_first_plan']}", flush=True)  # fmt: skip
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "torch": torch.__version__, "threads": args.threads, "device": "cpu"}  # fmt: skip
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(
        json.dumps({"command": command, "machine": machine, "rows": rows}, indent=2) + "\n"
    )
    lines = [
        "# Trajectory Transformer planning time per environment step (Hopper dimensions, TT-size GPT)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine['processor']}, {machine['platform']}, torch {machine['torch']}, "
        f"{machine['threads']} thread(s), CPU",
        "",
        "| settings | beam | horizon | n_expand | context | cached s/step | full recompute s/step | speedup "
        "| same plan | 1000-step episode, cached (min) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['settings']} | {r['beam_width']} | {r['horizon']} | {r['n_expand']} | {r['context']} | "
                     f"{r['cached_s_per_step']:.3f} | {r['full_recompute_s_per_step']:.3f} | {r['speedup']:.1f}x | "
                     f"{r['same_first_plan']} | {r['hopper_episode_min_cached']:.1f} |")  # fmt: skip
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
