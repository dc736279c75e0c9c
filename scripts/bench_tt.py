"""Trajectory Transformer planning time per environment step: KV-cached beam search vs full recompute.

Both planners run the same model (TT's size, untrained: timing does not depend on the weights) with the
same settings and the same random stream, for Hopper's 11 observation and 3 action dimensions. Settings:
TT's Hopper defaults and rlgen's CPU preset. Reported per setting:

* wall and CPU seconds per planning call for one environment, cached and full recompute (the machine is
  shared, so the load average is recorded and CPU time is the steadier measure);
* the cached planner's time per environment when ``--envs`` environments plan in one batched call;
* exactness: both planners return the same plan, checked in float64 on a small GPT (2 layers, width 32) with
  the same planner settings; in float32, the untrained model's nearly flat conditionals leave candidates
  whose scores tie to rounding, so the float32 runs only report how far apart the best scores are.

    python scripts/bench_tt.py                       # writes benchmarks/tt_planning.json and .md
    python scripts/bench_tt.py --settings cpu --steps 5   # replaces the cpu row, keeps the paper row
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from bench_notes import with_notes

from rlgen.algos.tt import (
    Plan,
    PlannerConfig,
    TrajectoryModel,
    TransitionLayout,
    TTModelConfig,
    beam_plan,
    make_prefix,
)
from rlgen.heads import head_config
from rlgen.train.run_dir import write_text_atomic

SETTINGS: dict[str, PlannerConfig] = {
    "paper": PlannerConfig(horizon=15, beam_width=128, n_expand=2, context=5),
    "cpu": PlannerConfig(horizon=5, beam_width=16, n_expand=2, context=2),
}
HOPPER = TransitionLayout(obs_dim=11, act_dim=3)


def make_model(config: PlannerConfig, conditional: str, dtype: torch.dtype, **size: int) -> TrajectoryModel:
    torch.manual_seed(0)
    head = TTModelConfig().head if conditional == "adacat" else head_config(conditional)  # TT's default AdaCat
    model_config = TTModelConfig(head, sequence_length=config.context + config.horizon, **size)
    bounds = np.full(HOPPER.dim, 4.0, dtype=np.float32)
    return TrajectoryModel(model_config, HOPPER, -bounds, bounds).to(dtype).eval()


def time_planner(
    model: TrajectoryModel, config: PlannerConfig, steps: int, envs: int = 1, seed: int = 1
) -> tuple[float, float, Plan]:
    """Mean wall and CPU seconds per planning call for ``envs`` environments with a full context, and the
    first call's plan. Every call sees new random contexts; the random stream is the same for every planner."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    wall, cpu, first = [], [], None
    for _ in range(steps):
        contexts = list(rng.normal(size=(envs, config.context, HOPPER.dim)).astype(np.float32))
        prefix, pad = make_prefix(model, contexts, rng.normal(size=(envs, HOPPER.obs_dim)), config.context)
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        plan = beam_plan(model, prefix, pad, config, generator)
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
        first = plan if first is None else first
    return float(np.mean(wall)), float(np.mean(cpu)), first


def same_plan(a: Plan, b: Plan, tolerance: float) -> bool:
    return bool(torch.allclose(a.transitions, b.transitions, atol=tolerance)
                and torch.allclose(a.scores, b.scores, atol=tolerance))  # fmt: skip


def bench_setting(name: str, args: argparse.Namespace, command: str) -> dict:
    config = SETTINGS[name]
    cached_config, full_config = replace(config, cached=True), replace(config, cached=False)
    small = make_model(config, args.conditional, torch.float64, n_layer=2, n_embd=32)
    exact = same_plan(time_planner(small, cached_config, 1)[2], time_planner(small, full_config, 1)[2], 1e-9)
    model = make_model(config, args.conditional, torch.float32)
    time_planner(model, cached_config, 1)  # warm-up: first-call allocations
    load_before = os.getloadavg()[0]
    # The cached planner is timed before and after the full recompute, so a change of the machine's load
    # during the (long) full recompute weighs on both.
    before = time_planner(model, cached_config, args.steps)
    full_wall, full_cpu, full_plan = time_planner(model, full_config, args.full_steps)
    after = time_planner(model, cached_config, args.steps, seed=2)
    batched_wall, batched_cpu, _ = time_planner(model, cached_config, args.steps, envs=args.envs)
    cached_wall, cached_cpu, cached_plan = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2, before[2]
    row = {"settings": name, "command": command, **asdict(config), "conditional": args.conditional,
           "cached_s_per_step": cached_wall, "cached_cpu_s_per_step": cached_cpu,
           "full_recompute_s_per_step": full_wall, "full_recompute_cpu_s_per_step": full_cpu,
           "speedup": full_wall / cached_wall, "speedup_cpu": full_cpu / cached_cpu,
           "envs_batched": args.envs, "cached_batched_s_per_env_step": batched_wall / args.envs,
           "cached_batched_cpu_s_per_env_step": batched_cpu / args.envs,
           "same_plan_float64": exact,
           "float32_best_score_gap": float((cached_plan.scores - full_plan.scores).abs().max()),
           "cached_steps_timed": 2 * args.steps, "full_steps_timed": args.full_steps,
           "load_average": [load_before, os.getloadavg()[0]],
           "hopper_episode_min_cached": 1000 * cached_wall / 60}  # fmt: skip
    print(f"{name}: cached {cached_wall:.3f} s/step ({cached_cpu:.3f} CPU), full recompute {full_wall:.3f} s/step "
          f"({full_cpu:.3f} CPU), {row['speedup']:.1f}x ({row['speedup_cpu']:.1f}x CPU), same plan {exact}",
          flush=True)  # fmt: skip
    return row


def write_report(rows: list[dict], machine: dict, out: Path) -> None:
    """Write the table; rows of settings not run this time are kept from an earlier run (with its command)."""
    path = out.with_suffix(".json")
    earlier = json.loads(path.read_text())["rows"] if path.exists() else []
    names = {r["settings"] for r in rows}
    rows = [r for r in earlier if r["settings"] not in names and "command" in r] + rows
    rows.sort(key=lambda r: list(SETTINGS).index(r["settings"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    lines = [
        "# Trajectory Transformer planning time per environment step (Hopper dimensions, TT-size GPT)",
        "",
        *(f"Command: `{command}`  " for command in dict.fromkeys(r["command"] for r in rows)),
        f"Machine: {machine['processor']}, {machine['platform']}, torch {machine['torch']}, "
        f"{machine['threads']} thread(s), CPU shared with other jobs (load average at start and end of each row "
        "below; CPU seconds are the steadier measure)  ",
        "Times are the mean over the timed planning calls of one environment (wall / CPU seconds; the cached "
        "planner is timed before and after the full recompute). "
        "'same plan' is checked in float64 on a small GPT with the same planner settings (float32 ties of an "
        "untrained model are reported as the best-score gap).",
        "",
        "| settings | beam | horizon | n_expand | context | cached s/step | full recompute s/step | speedup "
        "| cached, N envs batched: s/step per env | same plan (float64) | float32 best-score gap | load avg "
        "| 1000-step episode, cached (min) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['settings']} | {r['beam_width']} | {r['horizon']} | {r['n_expand']} | {r['context']} | "
            f"{r['cached_s_per_step']:.3f} / {r['cached_cpu_s_per_step']:.3f} | "
            f"{r['full_recompute_s_per_step']:.2f} / {r['full_recompute_cpu_s_per_step']:.2f} | "
            f"{r['speedup']:.1f}x / {r['speedup_cpu']:.1f}x | N={r['envs_batched']}: "
            f"{r['cached_batched_s_per_env_step']:.3f} / {r['cached_batched_cpu_s_per_env_step']:.3f} | "
            f"{r['same_plan_float64']} | {r['float32_best_score_gap']:.1e} | "
            f"{r['load_average'][0]:.1f} - {r['load_average'][1]:.1f} | {r['hopper_episode_min_cached']:.1f} |"
        )
    write_text_atomic(out.with_suffix(".md"), with_notes(out.with_suffix(".md"), "\n".join(lines) + "\n"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--conditional", default="adacat", choices=["uniform", "quantile", "adacat"])
    parser.add_argument("--steps", type=int, default=3, help="planning calls timed with the cache")
    parser.add_argument("--full-steps", type=int, default=1, help="planning calls timed with full recompute")
    parser.add_argument("--envs", type=int, default=5, help="environments planned in one call (cached)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/tt_planning"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "torch": torch.__version__, "threads": args.threads, "device": "cpu"}  # fmt: skip
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    rows = []
    for name in args.settings:
        rows.append(bench_setting(name, args, command))
        write_report(rows, machine, args.out)  # after every setting: the paper one takes long
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
