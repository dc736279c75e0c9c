"""Benchmark: a sweep of agents x datasets x seeds as Ray tasks (``rlgen sweep``) vs the same runs one after
another in one process (``rlgen sweep --sequential``), side by side in one run.

Both arms plan the same grid (rlgen.scale.plan_sweep) into fresh folders and run every cell from scratch; the wall
time of each arm includes everything it does (for Ray: starting the local instance and its worker processes).
The machine's load average is recorded around each arm, since a shared machine's other work changes the ratio.

    pip install -e ".[ray]"
    python scripts/bench_sweep.py --agents bc-gaussian bc-dlml --datasets hopper-medium invertedpendulum-medium \\
        --seeds 0 1 2 --steps 2000

Missing datasets are generated from the shipped behaviour policies first (``--data-steps``) in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import ray

from rlgen.data import locate
from rlgen.rollout.generate import make_dataset
from rlgen.scale import Grid, plan_sweep, run_sweep, summarise

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", nargs="+", default=["bc-gaussian", "bc-dlml"])
    parser.add_argument("--datasets", nargs="+", default=["hopper-medium", "invertedpendulum-medium"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=2000, help="gradient steps per run")
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--data-steps", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()
    overrides = [f"train.steps={args.steps}", "train.eval_every=0", f"train.eval_episodes={args.eval_episodes}",
                 f"train.eval_envs={args.eval_episodes}", f"train.checkpoint_every={args.steps}"]  # fmt: skip
    grid = Grid(args.agents, args.datasets, args.seeds, overrides)
    arms = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.datasets:
            try:
                locate(name)
            except FileNotFoundError:
                os.environ["MINARI_DATASETS_PATH"] = str(Path(scratch) / "datasets")
                print(f"generating {name} ({args.data_steps:,} steps)")
                make_dataset(name, steps=args.data_steps, out=Path(scratch) / "datasets", progress=False)
        for arm, sequential in (("sequential", True), ("ray", False)):
            cells = plan_sweep(grid, Path(scratch) / arm)
            load_before = os.getloadavg()
            tick = time.perf_counter()
            records = run_sweep(cells, device="cpu", sequential=sequential)
            seconds = time.perf_counter() - tick
            failed = [r for r in records if r.status == "failed"]
            if failed:
                raise RuntimeError(f"{len(failed)} runs failed in the {arm} arm: {failed[0].error}")
            arms[arm] = {"seconds": seconds, "load_before": load_before, "load_after": os.getloadavg(),
                         "run_seconds": sum(r.wall_s or 0.0 for r in records), "rows": summarise(records)}  # fmt: skip
            print(f"{arm}: {seconds:.1f} s for {len(records)} runs")
    write_report(args, grid, arms)
    return 0


def write_report(args: argparse.Namespace, grid: Grid, arms: dict[str, dict]) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, Ray {ray.__version__}"
    command = "python scripts/bench_sweep.py " + " ".join(sys.argv[1:])
    runs = len(grid.agents) * len(grid.datasets) * len(grid.seeds)
    ratio = arms["sequential"]["seconds"] / arms["ray"]["seconds"]
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"command": command, "machine": machine, "runs": runs, "overrides": grid.overrides,
               "speedup": ratio, "arms": arms}  # fmt: skip
    (args.out / "sweep.json").write_text(json.dumps(payload, indent=2) + "\n")

    def load(values: tuple[float, ...]) -> str:
        return " ".join(f"{x:.1f}" for x in values)

    lines = [
        "# Sweep: Ray tasks vs the same runs in sequence",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}  ",
        f"{runs} runs ({' '.join(grid.agents)} x {' '.join(grid.datasets)} x seeds {grid.seeds}), each "
        f"{args.steps} gradient steps and one evaluation of {args.eval_episodes} episodes; Ray: a local instance "
        f"of {os.cpu_count()} CPUs, one per run. Wall time of the whole sweep, start-up included.",
        "",
        "| arm | wall time (s) | sum of run times (s) | load average before (1/5/15 min) | after |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for arm, result in arms.items():
        lines.append(f"| {arm} | {result['seconds']:.1f} | {result['run_seconds']:.1f} | "
                     f"{load(result['load_before'])} | {load(result['load_after'])} |")  # fmt: skip
    lines += ["", f"Ray speed-up (sequential / Ray wall time): {ratio:.2f}x", ""]
    (args.out / "sweep.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
