"""Benchmark: evaluation with the environments in this process (SyncVectorEnv) vs one worker process each
(AsyncVectorEnv, ``evaluate(..., asynchronous=True)`` / ``train.eval_async``), side by side in one run.

The policy is the task's ``medium`` behaviour policy (deterministic), so episodes are as long as a trained agent's.
Each setting evaluates the same episodes (seed 100000 + i); async must return what sync returns; the wall time of one
evaluation is the median of ``--rounds`` rounds that interleave the settings, so load that comes and goes on a
shared machine hits all of them alike. The load average is recorded before and after.

    python scripts/bench_eval.py --task hopper --episodes 10 --envs 2 10 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from rlgen.rollout import evaluate
from rlgen.rollout.behavior import BehaviorPolicy
from rlgen.tasks import load_task

ROOT = Path(__file__).resolve().parents[1]
EVAL_SEED = 100_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="hopper")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--envs", nargs="+", type=int, default=[2, 10], help="environments side by side")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()
    task = load_task(args.task)
    (record,) = task.policies_for_level("medium")
    behavior = BehaviorPolicy.load(record.path)

    def policy(obs: np.ndarray) -> np.ndarray:
        return behavior.act(obs, np.random.default_rng(0), deterministic=True)

    settings = [(envs, asynchronous) for envs in args.envs for asynchronous in (False, True)]
    times: dict[tuple[int, bool], list[float]] = {s: [] for s in settings}
    results = {}
    load_before = os.getloadavg()
    for _ in range(args.rounds):
        for envs, asynchronous in settings:
            tick = time.perf_counter()
            result = evaluate(policy, task, args.episodes, EVAL_SEED, envs, asynchronous=asynchronous)
            times[envs, asynchronous].append(time.perf_counter() - tick)
            results[envs, asynchronous] = result.to_dict()
    load_after = os.getloadavg()
    # a batch of another size may round differently in the policy: compare each async setting with its sync one
    same = all(results[envs, True] == results[envs, False] for envs in args.envs)
    reference = results[settings[0]]
    steps = sum(reference["lengths"])
    rows = []
    for envs, asynchronous in settings:
        seconds = statistics.median(times[envs, asynchronous])
        sync = statistics.median(times[envs, False])
        rows.append({"envs": envs, "async": asynchronous, "seconds": seconds, "env_steps_per_s": steps / seconds,
                     "speedup_vs_sync": sync / seconds})  # fmt: skip
        print(f"{envs:3d} envs {'async' if asynchronous else 'sync ':5s} {seconds:6.2f} s  {sync / seconds:.2f}x")
    write_report(args, rows, same, steps, reference["score_mean"], load_before, load_after)
    return 0 if same else 1


def write_report(
    args: argparse.Namespace,
    rows: list[dict],
    same: bool,
    steps: int,
    score: float,
    load_before: tuple[float, ...],
    load_after: tuple[float, ...],
) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    load = f"load average (1/5/15 min) {' '.join(f'{x:.1f}' for x in load_before)} before, " \
           f"{' '.join(f'{x:.1f}' for x in load_after)} after"  # fmt: skip
    command = "python scripts/bench_eval.py " + " ".join(sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"command": command, "machine": machine, "load": load, "task": args.task, "episodes": args.episodes,
               "env_steps": steps, "score": score, "identical_results": same, "rows": rows}  # fmt: skip
    (args.out / "eval.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# Evaluation: environments in one process (sync) vs one worker process each (async)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}; {load}  ",
        f"{args.task}, {args.episodes} episodes of the medium behaviour policy ({steps} environment steps, "
        f"normalised score {score:.1f}); median wall time of one evaluation over {args.rounds} interleaved rounds. "
        f"Async results identical to sync: {'yes' if same else 'NO'}.",
        "",
        "| envs side by side | stepping | wall time (s) | env steps / s | vs sync |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(f"| {row['envs']} | {'async' if row['async'] else 'sync'} | {row['seconds']:.2f} | "
                     f"{row['env_steps_per_s']:.0f} | {row['speedup_vs_sync']:.2f}x |")  # fmt: skip
    (args.out / "eval.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
