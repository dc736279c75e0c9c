"""Which way round the wall trained Detour policies go, beside the demonstrations they learned from.

Detour's two ways round are equally good, so the return cannot tell a policy that reproduces a two-expert mixture
from one that commits to one expert. This counts, per run: the demonstrations' trajectories by side (for agents
that keep theirs, e.g. GAIL), then, over ``--episodes`` episodes (episode i reset with seed 100000 + i), how many
reach the goal and on which side, with the deterministic action and with sampled actions (torch seeded with
``--seed``). Prints a markdown table; ``--out`` also writes the counts as JSON::

    python scripts/detour_sides.py runs/gail-trpo/detour-two-experts-200k/*/seed*
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from episode_paths import episode_paths

from rlgen.rollout.detour import passing_side
from rlgen.runs.launch import load_agent
from rlgen.tasks import TaskSpec
from rlgen.train.run_dir import write_text_atomic


def demonstration_sides(agent: object) -> list[int]:
    """Side of each demonstrated trajectory, for agents that keep their demonstrations (else none)."""
    demos = getattr(agent, "demos", None)
    if demos is None:
        return []
    return [passing_side(demos.observations[demos.episodes == episode]) for episode in np.unique(demos.episodes)]


def episode_sides(agent: object, task: TaskSpec, episodes: int, deterministic: bool) -> list[int]:
    """Side of each episode that reaches the goal; 0 for one that does not."""
    paths = episode_paths(agent, task, episodes, deterministic)
    return [passing_side(path.observations) if path.info.get("reached") else 0 for path in paths]


def counts(sides: list[int]) -> dict[str, int]:
    return {"left": sides.count(-1), "right": sides.count(1), "neither": sides.count(0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of agents trained on detour")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="torch seed of the sampled actions")
    parser.add_argument("--out", type=Path, help="also write the counts here as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    print("| run | demonstrations left / right | deterministic: goal (left / right) | sampled: goal (left / right) |")
    print("| --- | --- | --- | --- |")
    for run in args.runs:
        try:
            agent, task, _, step = load_agent(run, device="cpu")
        except (FileNotFoundError, ValueError) as error:
            print(f"detour_sides: {run}: {error}", file=sys.stderr)
            return 1
        if task.name != "detour":
            print(f"detour_sides: {run} was trained on {task.name}, not detour", file=sys.stderr)
            return 1
        torch.manual_seed(args.seed)
        row = {"run": str(run), "step": step, "demonstrations": counts(demonstration_sides(agent))}
        for name, deterministic in (("deterministic", True), ("sampled", False)):
            row[name] = counts(episode_sides(agent, task, args.episodes, deterministic))
        rows.append(row)
        demos, cells = row["demonstrations"], []
        for name in ("deterministic", "sampled"):
            c = row[name]
            cells.append(f"{c['left'] + c['right']} of {args.episodes} ({c['left']} / {c['right']})")
        print(f"| {run} | {demos['left']} / {demos['right']} | {cells[0]} | {cells[1]} |")
    if args.out:
        write_text_atomic(args.out, json.dumps({"episodes": args.episodes, "seed": args.seed, "runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
