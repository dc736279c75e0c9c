"""Benchmark: rlgen behaviour cloning with every head vs d3rlpy 2.8.0's BC, side by side in one run.

Same locally made datasets, same network (MLP 256-256, ReLU), batch size, learning rate, gradient steps and
evaluation protocol (rlgen.rollout.evaluate: episode i resets with seed 100000 + i; deterministic actions);
several training seeds. Reports the D4RL normalised score (mean ± standard error over seeds) and the time per
training step (sampling a batch + one gradient update), measured in a separate phase that interleaves the agents
in short blocks and keeps each one's median: on a shared machine, load that comes and goes then hits every agent
alike, which timing whole training runs one after another does not.

The rlgen runs go first, as one ``rlgen sweep`` (:mod:`rlgen.scale.sweep`: Ray, ``--workers`` runs at once, one
CPU each; run folders under ``--runs``, with the sweep's ``summary.md``); then d3rlpy's, one after another, and the
timing phase. Invoked again with the same settings, the sweep skips the runs already finished in ``--runs`` and
resumes any killed mid-way, so only the d3rlpy runs and the timing are repeated.

    pip install -e ".[bench]"
    python scripts/bench_bc.py --datasets hopper-medium halfcheetah-medium --seeds 0 1 2 --steps 20000

Missing datasets are generated from the shipped behaviour policies first, at the size their name fixes
(``hopper-medium``: 1M steps, ``hopper-medium-200k``: 200k).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from bench_notes import with_notes
from bench_stats import mean_se

from rlgen.data import Episodes, load_dataset, locate
from rlgen.rollout import evaluate
from rlgen.rollout.generate import make_dataset
from rlgen.runs import get_algo, load_recipe
from rlgen.scale.sweep import Grid, plan_sweep, run_sweep, write_summary
from rlgen.tasks import TaskSpec, parse_dataset_name

ROOT = Path(__file__).resolve().parents[1]
HEADS = ("gaussian", "uniform", "quantile", "adacat", "dlml")
HIDDEN, BATCH, LR = (256, 256), 256, 1e-3
EVAL_SEED = 100_000
TIMING_BLOCK = 50  # training steps per agent per round of the interleaved timing phase


def ensure_dataset(name: str) -> None:
    try:
        locate(name)
    except FileNotFoundError:
        make_dataset(name, seed=0)


AGENT_OVERRIDES = [f"agent.hidden=[{HIDDEN[0]},{HIDDEN[1]}]", f"agent.lr={LR}"]


def rlgen_scores(args: argparse.Namespace) -> dict[tuple[str, str], list[float]]:
    """Train rlgen BC with every head of ``--heads`` on every dataset and seed as one sweep (finished runs in
    ``--runs`` skipped); the normalised scores of each (dataset, agent), in the order of ``--seeds``."""
    overrides = [f"train.steps={args.steps}", f"train.batch_size={BATCH}", f"train.eval_every={args.steps}",
                 f"train.eval_episodes={args.eval_episodes}", f"train.eval_seed={EVAL_SEED}",
                 f"train.checkpoint_every={args.steps}", *AGENT_OVERRIDES]  # fmt: skip
    grid = Grid([f"bc-{head}" for head in args.heads], args.datasets, args.seeds, overrides)
    records = run_sweep(plan_sweep(grid, args.runs), num_cpus=args.workers, sequential=args.workers == 1,
                        device="cpu")  # fmt: skip
    write_summary(args.runs, records)
    failed = [record for record in records if record.status == "failed"]
    if failed:
        raise SystemExit(f"{len(failed)} rlgen runs failed (see {args.runs / 'summary.md'}), e.g. {failed[0].path}: "
                         f"{failed[0].error}")  # fmt: skip
    scores: dict[tuple[str, str], list[float]] = {}
    for record in records:
        agent = f"rlgen BC-{record.agent.removeprefix('bc-')}"
        scores.setdefault((record.dataset, agent), []).append(float(record.score))  # type: ignore[arg-type]
    return scores


def d3rlpy_setup(task: TaskSpec, data: Episodes):
    """d3rlpy's BC with the same network, batch, learning rate and observation standardisation, and its dataset."""
    import d3rlpy

    mdp = d3rlpy.dataset.MDPDataset(
        observations=data.observations, actions=data.actions, rewards=data.rewards.astype(np.float32),
        terminals=data.terminals.astype(np.float32), timeouts=data.timeouts.astype(np.float32),
    )  # fmt: skip
    # Statistics passed in: d3rlpy's own scaler fit loops over transitions in Python (seconds per dataset),
    # which is preprocessing, not the per-step cost compared here.
    obs = data.observations
    scaler = d3rlpy.preprocessing.StandardObservationScaler(mean=obs.mean(0), std=obs.std(0))
    algo = d3rlpy.algos.BCConfig(
        batch_size=BATCH, learning_rate=LR,
        encoder_factory=d3rlpy.models.encoders.VectorEncoderFactory(list(HIDDEN)), observation_scaler=scaler,
    ).create(device="cpu:0")  # fmt: skip
    return algo, mdp


def training_steps(task: TaskSpec, data: Episodes, heads: list[str]) -> dict[str, Callable[[], object]]:
    """One training step per agent, as each library's fit loop takes it: sample a batch, one gradient update."""
    rng = np.random.default_rng(0)
    steps: dict[str, Callable[[], object]] = {}
    for head in heads:
        config = load_recipe(f"bc-{head}").with_overrides(AGENT_OVERRIDES).agent
        agent = get_algo("bc").create(config, task, data, torch.device("cpu"))
        sampler = agent.sampler(data)
        steps[f"rlgen BC-{head}"] = lambda agent=agent, sampler=sampler: agent.update(sampler.sample(BATCH, rng))
    algo, mdp = d3rlpy_setup(task, data)
    algo.build_with_dataset(mdp)
    steps["d3rlpy BC"] = lambda: algo.update(mdp.sample_transition_batch(BATCH))
    return steps


def interleaved_ms_per_step(steps: dict[str, Callable[[], object]], rounds: int, block: int) -> dict[str, float]:
    """Median over ``rounds`` of each agent's mean time per step in a block of ``block`` steps; every round
    runs one block of every agent, in a fresh random order."""
    for step in steps.values():  # warm-up: first-call allocations and lazy initialisation
        for _ in range(10):
            step()
    order = list(steps)
    times: dict[str, list[float]] = {name: [] for name in steps}
    shuffle = np.random.default_rng(1)
    for _ in range(rounds):
        shuffle.shuffle(order)
        for name in order:
            start = time.perf_counter()
            for _ in range(block):
                steps[name]()
            times[name].append(1e3 * (time.perf_counter() - start) / block)
    return {name: statistics.median(values) for name, values in times.items()}


def d3rlpy_bc(task: TaskSpec, dataset: str, seed: int, steps: int, episodes: int) -> dict:
    import d3rlpy

    data = load_dataset(dataset, observation_shape=(task.obs_dim,), action_shape=(task.act_dim,))
    d3rlpy.seed(seed)
    algo, mdp = d3rlpy_setup(task, data)
    algo.fit(mdp, n_steps=steps, n_steps_per_epoch=steps, logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
             show_progress=False)  # fmt: skip
    result = evaluate(lambda obs: algo.predict(np.asarray(obs, dtype=np.float32)), task, episodes, EVAL_SEED)
    return {"score": float(result.score_mean)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["hopper-medium", "halfcheetah-medium"])
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=HEADS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=20_000, help="gradient steps per run (default: 20000)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument(
        "--timing-rounds",
        type=int,
        default=15,
        help=f"rounds of the interleaved timing phase ({TIMING_BLOCK} steps per agent each)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench-bc", help="rlgen run folders")
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help="rlgen runs trained at once by the sweep (1: one after another, without Ray)")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)  # both libraries on one thread: small MLPs, and a fair comparison
    for dataset in args.datasets:
        ensure_dataset(dataset)
    scores = rlgen_scores(args)
    rows = []
    for dataset in args.datasets:
        task = parse_dataset_name(dataset)[0]
        for agent in [*(f"rlgen BC-{h}" for h in args.heads), "d3rlpy BC"]:
            if agent == "d3rlpy BC":
                runs = [d3rlpy_bc(task, dataset, seed, args.steps, args.eval_episodes)["score"] for seed in args.seeds]
            else:
                runs = scores[dataset, agent]
            score, score_se = mean_se(runs)
            rows.append({"dataset": dataset, "agent": agent, "score": score, "score_se": score_se, "scores": runs})
            print(f"{dataset:20s} {agent:18s} {score:6.1f} ± {score_se:4.1f}")
        data = load_dataset(dataset, observation_shape=(task.obs_dim,), action_shape=(task.act_dim,))
        timing = interleaved_ms_per_step(training_steps(task, data, args.heads), args.timing_rounds, TIMING_BLOCK)
        for row in rows:
            if row["dataset"] == dataset:
                row["ms_per_step"] = timing[row["agent"]]
                print(f"{dataset:20s} {row['agent']:18s} {row['ms_per_step']:.2f} ms/step")
    write_report(rows, args)
    return 0


def write_report(rows: list[dict], args: argparse.Namespace) -> None:
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} (1 thread), "
        f"Python {platform.python_version()}"
    )
    command = "python scripts/bench_bc.py " + " ".join(sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"command": command, "machine": machine, "steps": args.steps, "seeds": args.seeds,
               "eval_episodes": args.eval_episodes, "timing_rounds": args.timing_rounds,
               "timing_block": TIMING_BLOCK, "rows": rows}  # fmt: skip
    (args.out / "bc.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# Behaviour cloning: rlgen heads vs d3rlpy 2.8.0 BC",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}  ",
        f"{args.steps} gradient steps, batch {BATCH}, lr {LR}, MLP {HIDDEN}, {len(args.seeds)} seeds, "
        f"{args.eval_episodes} evaluation episodes per seed; score = D4RL normalised (mean ± s.e. over seeds). "
        f"ms / step: sampling a batch + one update, median of {args.timing_rounds} interleaved rounds of "
        f"{TIMING_BLOCK} steps per agent (training runs excluded).",
        "",
        "| dataset | agent | normalised score | ms / step | time vs d3rlpy |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        base = next(r for r in rows if r["dataset"] == row["dataset"] and r["agent"] == "d3rlpy BC")
        lines.append(
            f"| {row['dataset']} | {row['agent']} | {row['score']:.1f} ± {row['score_se']:.1f} | "
            f"{row['ms_per_step']:.2f} | {row['ms_per_step'] / base['ms_per_step']:.2f}x |"
        )
    (args.out / "bc.md").write_text(with_notes(args.out / "bc.md", "\n".join(lines) + "\n"))


if __name__ == "__main__":
    sys.exit(main())
