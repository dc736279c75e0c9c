"""Benchmark: normalised score of the Trajectory Transformer with uniform, quantile and AdaCat conditionals
beside BC-DLML, on locally made datasets, equal training budget, several seeds.

Every (dataset, agent, seed) is one case, one run of the agent's recipe (agents/tt-*.yaml, agents/bc-dlml.yaml)
with the budget below, evaluated once after the last step (``rlgen.rollout.evaluate``: episode i resets with seed
100000 + i; TT plans with its recipe's planner from the current observation and the episode's last
``planner.context`` transitions, as ``rlgen eval`` does). The cases the JSON lacks are trained as one
``rlgen sweep`` (:mod:`rlgen.scale.sweep`: Ray, ``--workers`` runs at once, one CPU each; run folders
``--runs/<agent>/<dataset>/default/seed<seed>``, with the sweep's ``summary.md``), then each is merged into the JSON
under a file lock and the Markdown rewritten. A killed invocation keeps its finished runs: started again, the
sweep skips them (their times are kept in each run folder) and resumes interrupted ones, so the benchmark can be run
piece by piece, and several processes may share one table:

    python scripts/bench_tt_scores.py --datasets hopper-medium --seeds 0 1 2
    python scripts/bench_tt_scores.py --datasets halfcheetah-medium --seeds 0     # adds to the same table
    python scripts/bench_tt_scores.py --agents tt-adacat & python scripts/bench_tt_scores.py --agents tt-quantile

``--reevaluate`` evaluates the stored checkpoints of the table's cases again with the current code and the
current recipe's planner block instead of training (after a change to planning, which leaves training alone),
and replaces their scores.

The sweep starts the cases seed-major (every agent on seed 0, then seed 1, ...) so that the runs a stopped sweep
finished compare all agents.
The TT recipes' defaults are TT's own (100k steps at batch 256 of a 4-layer width-128 GPT); that is days of
this 2-core CPU, so the default budget here is a small GPT and a short run, written into the table.
Missing datasets are made from the shipped behaviour policies first (never regenerated).
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from bench_notes import with_notes
from bench_stats import mean_se

from rlgen.data import locate
from rlgen.rollout import evaluate
from rlgen.rollout.generate import make_dataset
from rlgen.runs import load_agent, load_recipe
from rlgen.scale.sweep import Grid, last_evaluation, plan_sweep, run_sweep, write_summary
from rlgen.train.run_dir import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
AGENTS = ("tt-uniform", "tt-quantile", "tt-adacat", "bc-dlml")
EVAL_SEED = 100_000


def budget_grid(args: argparse.Namespace) -> Grid:
    """The cases of ``--agents`` x ``--datasets`` x ``--seeds`` as a sweep: every agent gets the same gradient steps
    and batch size (sequences for TT, transitions for BC) and one evaluation after the last step; TT its GPT size."""
    steps = args.steps
    common = [f"train.steps={steps}", f"train.batch_size={args.batch_size}", f"train.eval_every={steps}",
              f"train.eval_episodes={args.eval_episodes}", f"train.eval_envs={args.eval_episodes}",
              f"train.eval_seed={EVAL_SEED}", f"train.checkpoint_every={steps}", *args.set]  # fmt: skip
    layers, width = args.tt_size
    tt = [f"agent.model.n_layer={layers}", f"agent.model.n_embd={width}",
          f"agent.model.sequence_length={args.sequence_length}", f"agent.warmup_steps={max(1, steps // 10)}",
          f"agent.decay_steps={steps}"]  # fmt: skip
    return Grid(args.agents, args.datasets, args.seeds, common, agent_overrides={
        agent: tt for agent in args.agents if agent.startswith("tt-")})  # fmt: skip


def train_cases(done: set[tuple[str, str, int]], args: argparse.Namespace) -> list[dict]:
    """Train the cases not in ``done`` as one sweep, seed-major (finished runs in ``--runs`` skipped, interrupted
    ones resumed); the cases of the runs that did not fail."""
    cells = [c for c in plan_sweep(budget_grid(args), args.runs) if (c.dataset, c.agent, c.seed) not in done]
    cells.sort(key=lambda cell: cell.seed)  # seed-major: the runs a stopped sweep finished compare all agents
    if not cells:
        return []
    records = run_sweep(cells, num_cpus=args.workers, sequential=args.workers == 1, device="cpu")
    write_summary(args.runs, records)
    cases = []
    for record in (record for record in records if record.status != "failed"):
        final = last_evaluation(record.path)
        # a run trained by an older rlgen has no recorded times
        update_s = float("nan") if record.update_s is None else record.update_s
        wall_s = float("nan") if record.wall_s is None else record.wall_s
        cases.append({"dataset": record.dataset, "agent": record.agent, "seed": record.seed,
                      "score": final["score_mean"], "return": final["return_mean"],
                      "episode_length": statistics.fmean(final["lengths"]), "train_s_per_step": update_s / args.steps,
                      "other_s": wall_s - update_s, "run_dir": record.path})  # fmt: skip
    return cases


def reevaluate_case(case: dict, args: argparse.Namespace) -> dict:
    """``case`` with the score of its run's last checkpoint evaluated by the current code and the current
    recipe's planner (same episodes)."""
    start = time.perf_counter()
    agent, task, _, step = load_agent(case["run_dir"], device="cpu")
    if case["agent"].startswith("tt-"):
        agent.config = dataclasses.replace(agent.config, planner=load_recipe(case["agent"]).agent.planner)
    if step != args.steps:
        raise SystemExit(f"{case['run_dir']} ends at step {step}, not the table's {args.steps}")
    result = evaluate(agent.eval_policy(), task, args.eval_episodes, EVAL_SEED, args.eval_episodes, step=step)
    scalars = result.scalars()
    return {**case, "score": scalars["eval/score"], "return": scalars["eval/return"],
            "episode_length": scalars["eval/length"], "other_s": time.perf_counter() - start}  # fmt: skip


def write_report(cases: list[dict], meta: dict, out: Path) -> None:
    write_text_atomic(out.with_suffix(".json"), json.dumps({**meta, "cases": cases}, indent=2) + "\n")
    b = meta["budget"]
    lines = [
        "# Trajectory Transformer scores: uniform vs quantile vs AdaCat conditionals beside BC-DLML",
        "",
        *(f"Command: `{c}`  " for c in meta["commands"]),
        f"Machine: {meta['machine']}  ",
        f"Budget, every agent: {b['steps']} gradient steps at batch {b['batch_size']} (TT: segments of "
        f"{b['sequence_length']} transitions, GPT {b['tt_layers']} layers x width {b['tt_width']}, 4 heads, "
        f"lr 6e-4 with {max(1, b['steps'] // 10)} warmup steps then cosine; BC-DLML: transitions, its recipe's "
        "MLP). TT plans with the recipes' CPU preset (beam 16, horizon 5, n_expand 2) from the current "
        "observation and the episode's last 2 transitions (context 2), ranking bins as its recipe says "
        "(quantile by density, the others by mass). "
        "TT-AdaCat as its recipe: bins start at the data's marginal, piecewise-linear inputs, width logits' "
        "gradient x 0.1. "
        f"{b['eval_episodes']} evaluation episodes per seed (reset seeds {EVAL_SEED}+i); score = D4RL "
        "normalised, mean ± s.e. over seeds."
        + (f" Overrides for every case: `{' '.join(b['overrides'])}`." if b.get("overrides") else ""),
        "",
        "| dataset | agent | seeds | normalised score | per seed | mean episode length | train s / step | "
        "setup + eval s |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for dataset in dict.fromkeys(c["dataset"] for c in cases):
        for agent in AGENTS:
            rows = sorted((c for c in cases if c["dataset"] == dataset and c["agent"] == agent),
                          key=lambda c: c["seed"])  # fmt: skip
            if not rows:
                continue
            score, se = mean_se([r["score"] for r in rows])
            spread = f" ± {se:.1f}" if len(rows) > 1 else ""
            per_seed = ", ".join(f"{r['score']:.1f}" for r in rows)
            length = statistics.fmean(r["episode_length"] for r in rows)
            train = statistics.fmean(r["train_s_per_step"] for r in rows)
            others = statistics.fmean(r["other_s"] for r in rows)
            lines.append(f"| {dataset} | {agent} | {len(rows)} | {score:.1f}{spread} | {per_seed} | "
                         f"{length:.0f} | {train:.3f} | {others:.0f} |")  # fmt: skip
    write_text_atomic(out.with_suffix(".md"), with_notes(out.with_suffix(".md"), "\n".join(lines) + "\n"))


def case_key(case: dict) -> tuple[str, str, int]:
    return case["dataset"], case["agent"], case["seed"]


class Table:
    """The JSON (and its Markdown) at ``out``, shared by every process that runs cases of the same budget."""

    def __init__(self, out: Path, budget: dict, command: str, machine: str):
        self.out, self.budget, self.command, self.machine = out, budget, command, machine
        self.json = out.with_suffix(".json")
        self.lock = out.with_suffix(".lock")
        out.parent.mkdir(parents=True, exist_ok=True)
        self.read()  # refuse a table of another budget before any case runs

    def read(self) -> dict:
        if not self.json.exists():
            return {"commands": [], "machine": self.machine, "budget": self.budget, "cases": []}
        previous = json.loads(self.json.read_text())
        if previous["budget"] != self.budget:
            raise SystemExit(f"{self.json} holds cases of another budget {previous['budget']}; pass another --out")
        return previous

    def cases(self) -> dict[tuple[str, str, int], dict]:
        return {case_key(c): c for c in self.read()["cases"]}

    def put(self, case: dict) -> None:
        """Add ``case``, replacing the case of the same dataset, agent and seed."""
        with open(self.lock, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # read-merge-write as one step against the other processes
            table = self.read()
            cases = [c for c in table["cases"] if case_key(c) != case_key(case)] + [case]
            commands = list(dict.fromkeys([*table["commands"], self.command]))
            write_report(cases, {"commands": commands, "machine": self.machine, "budget": self.budget}, self.out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["hopper-medium"])
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=AGENTS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1500, help="gradient steps of every agent")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--tt-size", type=int, nargs=2, default=[2, 64], metavar=("LAYERS", "WIDTH"))
    parser.add_argument("--sequence-length", type=int, default=8, help="TT training segment (>= 2 + 5 planned)")
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="recipe overrides for every case (part of the budget: write them to another --out), "
                        "e.g. agent.model.head.bandwidth=0.002")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "tt_scores")
    parser.add_argument("--runs", type=Path, help="run folders (default: runs/bench_tt_scores/<name of --out>)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help="runs trained at once by the sweep (1: one after another, without Ray)")  # fmt: skip
    parser.add_argument(
        "--reevaluate",
        action="store_true",
        help="evaluate the stored checkpoints of the table's cases again instead of training",
    )
    args = parser.parse_args(argv)
    args.runs = args.runs or ROOT / "runs" / "bench_tt_scores" / args.out.name  # a table of another budget: its own
    torch.set_num_threads(1)
    budget = {"steps": args.steps, "batch_size": args.batch_size, "tt_layers": args.tt_size[0],
              "tt_width": args.tt_size[1], "sequence_length": args.sequence_length,
              "eval_episodes": args.eval_episodes, **({"overrides": args.set} if args.set else {})}  # fmt: skip
    command = "python scripts/bench_tt_scores.py " + " ".join(argv if argv is not None else sys.argv[1:])
    machine = f"{platform.machine()}, 2-core CPU shared with other jobs, torch {torch.__version__} (1 thread)"
    table = Table(args.out, budget, command, machine)
    for dataset in args.datasets:
        try:
            locate(dataset)
        except FileNotFoundError:
            print(f"making {dataset}", flush=True)
            make_dataset(dataset, seed=0)
    if args.reevaluate:
        cases = table.cases()
        keys = [(dataset, agent, seed) for dataset in args.datasets for seed in args.seeds for agent in args.agents]
        new: Iterable[dict] = (reevaluate_case(cases[key], args) for key in keys if key in cases)  # one at a time
    else:
        new = train_cases(set(table.cases()), args)
    for case in new:
        table.put(case)
        timing = f"{case['train_s_per_step']:.3f} s/step, setup + eval {case['other_s']:.0f} s"
        print(f"{case['dataset']} {case['agent']} seed {case['seed']}: score {case['score']:.1f} ({timing})",
              flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
