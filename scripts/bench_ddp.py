"""Benchmark: data-parallel training throughput, 1 process vs N gloo processes (what ``torchrun --nproc_per_node N
-m rlgen train`` runs), for BC and TT at the same global batch, side by side in one run.

Each setting runs :func:`rlgen.train.fit` in fresh processes (one torch thread each) on hopper-shaped synthetic data
(the throughput depends on the shapes, not the values) with the recipe's model and global batch; a few steps warm up
first. The time is the wall time of ``fit`` on rank 0 (sampling, updates, the all-reduces, logging and two
checkpoints), the median of ``--rounds`` rounds that interleave the settings, so load that comes and goes on a shared
machine hits all of them alike. The load average is recorded before and after.

    python scripts/bench_ddp.py --processes 1 2 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp

from rlgen.data import Episodes
from rlgen.runs import load_recipe
from rlgen.scale.distributed import distributed_training
from rlgen.tasks import load_task
from rlgen.train import RunDir, TrainConfig, fit, seed_everything
from rlgen.train.parallel import Replicas

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 3
#: recipe -> timed steps and overrides: TT at the README's CPU size (benchmarks/tt_train.md measures that model too)
AGENTS = {
    "bc-dlml": (300, []),
    "tt-quantile": (20, ["agent.model.n_layer=2", "agent.model.n_embd=64", "agent.model.sequence_length=8",
                         "train.batch_size=64"]),
}  # fmt: skip


def worker(rank: int, world_size: int, port: int, recipe_name: str, task_name: str, steps: int, out: Path) -> None:
    torch.set_num_threads(1)
    if world_size > 1:  # as torchrun would start it: distributed_training joins and leaves the group from these
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                          WORLD_SIZE=str(world_size))  # fmt: skip
    with distributed_training("cpu") as (torch_replicas, _):
        replicas = torch_replicas or Replicas()
        recipe, task = load_recipe(recipe_name).with_overrides(AGENTS[recipe_name][1]), load_task(task_name)
        data = Episodes.random(5_000, task.obs_dim, task.act_dim, episode_length=1000)
        seed_everything(0)
        agent = recipe.agent_class.create(recipe.agent, task, data, torch.device("cpu"))  # type: ignore[attr-defined]
        sampler, rng = agent.sampler(data), np.random.default_rng(rank)
        batch = recipe.train.batch_size
        for _ in range(WARMUP):
            agent.update(sampler.sample(batch // world_size, rng))
        config = TrainConfig(steps=steps, batch_size=batch, log_every=steps, eval_every=0, checkpoint_every=steps - 1)
        with tempfile.TemporaryDirectory() as folder:
            tick = time.perf_counter()
            fit(agent, sampler, config, RunDir(folder), progress=False, replicas=replicas)
            seconds = time.perf_counter() - tick
        if rank == 0:
            out.write_text(json.dumps({"seconds": seconds, "batch_size": batch}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="hopper")
    parser.add_argument("--agents", nargs="+", choices=sorted(AGENTS), default=sorted(AGENTS))
    parser.add_argument("--steps", type=float, default=1.0, help="scale of every agent's timed steps")
    parser.add_argument("--processes", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()
    agents = [(name, max(2, round(AGENTS[name][0] * args.steps))) for name in args.agents]
    settings = [(name, steps, n) for name, steps in agents for n in args.processes]
    times: dict[tuple[str, int], list[float]] = {(name, n): [] for name, _, n in settings}
    batches: dict[str, int] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "result.json"
        for _ in range(args.rounds):
            for name, steps, n in settings:
                worker_args = (n, free_port(), name, args.task, steps, result)
                mp.start_processes(worker, args=worker_args, nprocs=n, start_method="spawn")
                measured = json.loads(result.read_text())
                times[name, n].append(measured["seconds"])
                batches[name] = measured["batch_size"]
    load_after = os.getloadavg()
    rows = []
    for name, steps, n in settings:
        seconds = statistics.median(times[name, n])
        single = statistics.median(times[name, args.processes[0]])
        rows.append({"agent": name, "processes": n, "global_batch": batches[name], "steps": steps,
                     "seconds": seconds, "steps_per_s": steps / seconds,
                     "samples_per_s": steps * batches[name] / seconds, "speedup": single / seconds})  # fmt: skip
        print(f"{name:12s} {n} process(es) {steps / seconds:8.1f} steps/s  {single / seconds:.2f}x")
    write_report(args, rows, load_before, load_after)
    return 0


def write_report(
    args: argparse.Namespace, rows: list[dict], load_before: tuple[float, ...], load_after: tuple[float, ...]
) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, " \
              f"torch {torch.__version__}"  # fmt: skip
    load = f"load average (1/5/15 min) {' '.join(f'{x:.1f}' for x in load_before)} before, " \
           f"{' '.join(f'{x:.1f}' for x in load_after)} after"  # fmt: skip
    command = "python scripts/bench_ddp.py " + " ".join(sys.argv[1:])
    overrides = "; ".join(f"{name}: {' '.join(AGENTS[name][1])}" for name in args.agents if AGENTS[name][1])
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"command": command, "machine": machine, "load": load, "task": args.task, "rows": rows}
    (args.out / "ddp.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# Data-parallel training: 1 process vs N gloo processes at the same global batch",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}; {load}  ",
        f"{args.task}-shaped synthetic data, each recipe's model and global batch ({overrides}), one torch thread per "
        "process, "
        f"CPU (gloo); median wall time of `fit` on rank 0 over {args.rounds} interleaved rounds.",
        "",
        "| agent | processes | global batch | steps | wall time (s) | steps / s | samples / s | vs 1 process |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(f"| {row['agent']} | {row['processes']} | {row['global_batch']} | {row['steps']} | "
                     f"{row['seconds']:.2f} | {row['steps_per_s']:.1f} | {row['samples_per_s']:.0f} | "
                     f"{row['speedup']:.2f}x |")  # fmt: skip
    if min(load_before[0], load_after[0]) >= (os.cpu_count() or 1):
        lines += ["", "The machine was oversubscribed throughout (1-minute load at least its core count): a second "
                  "process found no idle core, so these rows measure the cost of the all-reduces, not the speedup "
                  "of processes on idle cores."]  # fmt: skip
    (args.out / "ddp.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
