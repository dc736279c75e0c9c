"""Benchmark: which deterministic action a trained BC or IQL agent should act with, per head.

A head's distribution offers several deterministic actions (:meth:`rlgen.heads.BoxDistribution.point`): its
``mode`` (the densest bin or most probable level), its ``mean``, and its ``peak`` (the centre of mass of the most
probable window spanning a fraction of the box). They coincide for a Gaussian and can differ widely for the
expressive heads. This script evaluates the *same checkpoints* with each action, so the differences are the
action's alone, and tabulates the D4RL normalised score per (dataset, agent), mean ± s.e. over the runs' seeds:

    python scripts/bench_point_actions.py runs/iql-dlml/walker2d-medium-expert/*/seed* --episodes 10
    python scripts/bench_point_actions.py RUN [RUN ...] --actions mode mean peak:0.1 peak:0.3

Runs already in the JSON at ``--out`` are skipped unless ``--force``; new ones are added, so the table can be
filled piece by piece. Every evaluation uses the run's evaluation seed (episode i resets with seed + i).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
from pathlib import Path

import torch
from bench_notes import with_notes
from bench_stats import mean_se

from rlgen.runs import act_with, evaluate_agent, load_agent
from rlgen.train.run_dir import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_ACTIONS = ("mode", "mean", "peak:0.1", "peak:0.3")


def parse_action(spec: str) -> tuple[str, float | None]:
    """``mode`` / ``mean`` / ``peak:<width>`` -> (kind, peak width or None)."""
    kind, _, width = spec.partition(":")
    if kind not in ("mode", "mean", "peak") or (kind != "peak" and width) or (kind == "peak" and not width):
        raise SystemExit(f"--actions: {spec!r} is not mode, mean or peak:<width> (e.g. peak:0.3)")
    return kind, float(width) if width else None


def evaluate_run(run_dir: Path, actions: list[str], episodes: int) -> dict:
    agent, subject, config, step = load_agent(run_dir, device="cpu")
    scores = {}
    for spec in actions:
        kind, width = parse_action(spec)
        act_with(agent, kind, width)
        result = evaluate_agent(agent, subject, config.recipe.train, step, episodes, progress=False)
        scores[spec] = result.score_mean
        print(f"{run_dir}: {spec} {result.score_mean:.1f} ± {result.score_se:.1f}", flush=True)
    dataset = Path(config.dataset).stem if config.dataset.endswith(".hdf5") else config.dataset  # a file's name
    return {"run_dir": str(run_dir), "agent": config.recipe.name, "dataset": dataset,
            "seed": config.recipe.train.seed, "step": step, "episodes": episodes, "scores": scores}  # fmt: skip


def report(table: dict) -> str:
    runs = table["runs"]
    actions = list(dict.fromkeys(a for r in runs for a in r["scores"]))
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in sorted(runs, key=lambda r: (r["dataset"], r["agent"], r["seed"])):
        groups.setdefault((r["dataset"], r["agent"]), []).append(r)
    lines = [
        "# Deterministic actions: the same checkpoints acting with each head's mode, mean and peak",
        "",
        *(f"Command: `{c}`  " for c in table["commands"]),
        f"Machine: {table['machine']}.  ",
        "Each row: the runs' final checkpoints (trained with their recipe's budget, listed in the JSON), each "
        "evaluated with every deterministic action on the same episodes (the run's evaluation seeds); D4RL "
        "normalised score, mean ± s.e. over training seeds; the best action of a row in bold. peak:w is the centre "
        "of mass of the most probable window spanning w of the box, per action dimension.",
        "",
        "| dataset | agent | seeds | steps | " + " | ".join(actions) + " |",
        "| --- | --- | ---: | ---: | " + " | ".join("---:" for _ in actions) + " |",
    ]
    for (dataset, agent), rows in groups.items():
        stats = {a: mean_se([r["scores"][a] for r in rows if a in r["scores"]]) for a in actions}
        best = max(stats, key=lambda a: stats[a][0])
        cells = []
        for a in actions:
            m, se = stats[a]
            text = f"{m:.1f}" + ("" if math.isnan(se) else f" ± {se:.1f}")
            cells.append(f"**{text}**" if a == best and len(actions) > 1 else text)
        steps = "/".join(str(s) for s in sorted({r["step"] for r in rows}))
        lines.append(f"| {dataset} | {agent} | {len(rows)} | {steps} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of BC or IQL agents")
    parser.add_argument("--actions", nargs="+", default=list(DEFAULT_ACTIONS),
                        help="mode, mean or peak:<width> (default: %(default)s)")  # fmt: skip
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "point_actions")
    parser.add_argument("--force", action="store_true", help="evaluate runs the table already holds again")
    args = parser.parse_args(argv)
    for spec in args.actions:
        parse_action(spec)
    torch.set_num_threads(1)
    path = args.out.with_suffix(".json")
    table = json.loads(path.read_text()) if path.exists() else {"commands": [], "runs": []}
    table["machine"] = (f"{platform.machine()}, {platform.platform()}, 2-core CPU shared with other jobs, torch "
                        f"{torch.__version__} (1 thread)")  # fmt: skip
    command = "python scripts/bench_point_actions.py " + " ".join(argv if argv is not None else sys.argv[1:])
    table["commands"] = list(dict.fromkeys([*table["commands"], command]))
    done = {r["run_dir"] for r in table["runs"]}
    for run_dir in args.runs:
        if str(run_dir) in done and not args.force:
            continue
        record = evaluate_run(run_dir, args.actions, args.episodes)
        table["runs"] = [r for r in table["runs"] if r["run_dir"] != record["run_dir"]] + [record]
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(table, indent=1) + "\n")
        md = args.out.with_suffix(".md")
        write_text_atomic(md, with_notes(md, report(table)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
