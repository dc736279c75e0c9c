"""Benchmark: rlgen behaviour cloning with every head vs d3rlpy 2.8.0's BC, side by side in one run.

Same locally made datasets, same network (MLP 256-256, ReLU), batch size, learning rate, gradient steps and
evaluation protocol (rlgen.rollout.evaluate: episode i resets with seed 100000 + i; deterministic actions);
several training seeds. Reports the D4RL normalised score (mean ± standard error over seeds) and the training
time per gradient step (sampling + update; evaluation excluded).

    pip install -e ".[bench]"
    python scripts/bench_bc.py --datasets hopper-medium halfcheetah-medium --seeds 0 1 2 --steps 20000

Missing datasets are generated from the shipped behaviour policies first (``--data-steps``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rlgen.data import load_dataset, locate
from rlgen.data.generate import make_dataset
from rlgen.rollout import evaluate
from rlgen.tasks import TaskSpec, parse_dataset_name
from rlgen.train import start_run

ROOT = Path(__file__).resolve().parents[1]
HEADS = ("gaussian", "uniform", "quantile", "adacat", "dlml")
HIDDEN, BATCH, LR = (256, 256), 256, 1e-3
EVAL_SEED = 100_000


def ensure_dataset(name: str, steps: int) -> None:
    try:
        locate(name)
    except FileNotFoundError:
        print(f"generating {name} ({steps:,} steps)")
        make_dataset(name, steps=steps, seed=0)


def rlgen_bc(head: str, dataset: str, seed: int, steps: int, episodes: int, runs_root: Path) -> dict:
    overrides = [f"train.steps={steps}", f"train.seed={seed}", f"train.batch_size={BATCH}",
                 f"train.eval_every={steps}", f"train.eval_episodes={episodes}", f"train.eval_seed={EVAL_SEED}",
                 f"train.checkpoint_every={steps}", f"agent.hidden=[{HIDDEN[0]},{HIDDEN[1]}]", f"agent.lr={LR}"]
    run_dir = runs_root / f"bc-{head}" / dataset / f"seed{seed}"
    _, result = start_run(f"bc-{head}", dataset, overrides, run_dir=run_dir, device="cpu", progress=False)
    return {"score": result.last_scalars["eval/score"], "ms_per_step": 1e3 * result.update_seconds / steps}


def d3rlpy_bc(task: TaskSpec, dataset: str, seed: int, steps: int, episodes: int) -> dict:
    import d3rlpy

    data = load_dataset(dataset, observation_shape=(task.obs_dim,), action_shape=(task.act_dim,))
    mdp = d3rlpy.dataset.MDPDataset(
        observations=data.observations, actions=data.actions, rewards=data.rewards.astype(np.float32),
        terminals=data.terminals.astype(np.float32), timeouts=data.timeouts.astype(np.float32),
    )
    d3rlpy.seed(seed)
    # Statistics passed in: d3rlpy's own scaler fit loops over transitions in Python (seconds per dataset),
    # which is preprocessing, not the per-step cost compared here.
    obs = data.observations
    scaler = d3rlpy.preprocessing.StandardObservationScaler(mean=obs.mean(0), std=obs.std(0))
    algo = d3rlpy.algos.BCConfig(
        batch_size=BATCH, learning_rate=LR,
        encoder_factory=d3rlpy.models.encoders.VectorEncoderFactory(list(HIDDEN)), observation_scaler=scaler,
    ).create(device="cpu:0")
    start = time.perf_counter()
    algo.fit(mdp, n_steps=steps, n_steps_per_epoch=steps, logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
             show_progress=False)
    seconds = time.perf_counter() - start
    result = evaluate(lambda obs: algo.predict(np.asarray(obs, dtype=np.float32)), task, episodes, EVAL_SEED)
    return {"score": float(result.score_mean), "ms_per_step": 1e3 * seconds / steps}


def train_and_score(agent: str, dataset: str, seed: int, args: argparse.Namespace, runs_root: Path) -> dict:
    if agent == "d3rlpy BC":
        return d3rlpy_bc(parse_dataset_name(dataset)[0], dataset, seed, args.steps, args.eval_episodes)
    head = agent.removeprefix("rlgen BC-")
    return rlgen_bc(head, dataset, seed, args.steps, args.eval_episodes, runs_root)


def mean_se(values: list[float]) -> tuple[float, float]:
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
    return statistics.fmean(values), se


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["hopper-medium", "halfcheetah-medium"])
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=HEADS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=20_000, help="gradient steps per run (default: 20000)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--data-steps", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()
    torch.set_num_threads(1)  # both libraries on one thread: small MLPs, and a fair comparison
    rows = []
    with tempfile.TemporaryDirectory() as runs_root:
        for dataset in args.datasets:
            ensure_dataset(dataset, args.data_steps)
            for agent in [*(f"rlgen BC-{h}" for h in args.heads), "d3rlpy BC"]:
                runs = [train_and_score(agent, dataset, seed, args, Path(runs_root)) for seed in args.seeds]
                score, score_se = mean_se([r["score"] for r in runs])
                ms = statistics.fmean(r["ms_per_step"] for r in runs)
                rows.append({"dataset": dataset, "agent": agent, "score": score, "score_se": score_se,
                             "scores": [r["score"] for r in runs], "ms_per_step": ms})
                print(f"{dataset:20s} {agent:18s} {score:6.1f} ± {score_se:4.1f}   {ms:.2f} ms/step")
    write_report(rows, args)
    return 0


def write_report(rows: list[dict], args: argparse.Namespace) -> None:
    machine = (f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} (1 thread), "
               f"Python {platform.python_version()}")
    command = "python scripts/bench_bc.py " + " ".join(sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"command": command, "machine": machine, "steps": args.steps, "seeds": args.seeds,
               "eval_episodes": args.eval_episodes, "rows": rows}
    (args.out / "bc.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = ["# Behaviour cloning: rlgen heads vs d3rlpy 2.8.0 BC", "", f"Command: `{command}`  ",
             f"Machine: {machine}  ",
             f"{args.steps} gradient steps, batch {BATCH}, lr {LR}, MLP {HIDDEN}, {len(args.seeds)} seeds, "
             f"{args.eval_episodes} evaluation episodes per seed; score = D4RL normalised (mean ± s.e. over seeds).",
             "", "| dataset | agent | normalised score | ms / step | time vs d3rlpy |",
             "| --- | --- | ---: | ---: | ---: |"]
    for row in rows:
        base = next(r for r in rows if r["dataset"] == row["dataset"] and r["agent"] == "d3rlpy BC")
        lines.append(f"| {row['dataset']} | {row['agent']} | {row['score']:.1f} ± {row['score_se']:.1f} | "
                     f"{row['ms_per_step']:.2f} | {row['ms_per_step'] / base['ms_per_step']:.2f}x |")
    (args.out / "bc.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
