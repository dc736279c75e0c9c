"""Which of two experts a policy trained on their mixture moves like, beside the demonstrations it learned from.

On ``<task>-two-experts`` (half the steps from the task's expert, half from its second expert, a PPO run with
another seed; ``rlgen.rollout.generate``) both experts earn about the same return, so the return cannot tell a
policy that reproduces the mixture from one that commits to one expert. This fits a state classifier
(:mod:`state_classifier`) on the dataset's two halves, then, for each trained run, rolls out ``--episodes``
episodes (episode i reset with seed 100000 + i) with the deterministic action and with sampled actions, and
calls an episode the second expert's when the classifier gives its states a mean probability above 1/2. A policy
that imitates the mixture goes the second expert's way about as often as its demonstrations do (GAIL agents keep
theirs; counted from the dataset half each comes from). Prints a markdown table; ``--out`` also writes JSON::

    python scripts/which_expert.py runs/gail-trpo/hopper-two-experts/*/seed* --episodes 20
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from episode_paths import episode_paths
from state_classifier import StateClassifier, fit_state_classifier

from rlgen.data import Episodes
from rlgen.rollout import standard_error
from rlgen.runs import load_training_data
from rlgen.runs.launch import load_agent
from rlgen.tasks import TaskSpec
from rlgen.train.run_dir import write_text_atomic


def halves(data: Episodes) -> np.ndarray:
    """Per step of a two-experts dataset, 1 where the second expert acted (its second half of the steps)."""
    return (np.arange(data.num_steps) >= data.num_steps // 2).astype(np.int64)


def second_expert_episodes(data: Episodes, episodes: np.ndarray) -> int:
    """How many of the distinct ``episodes`` (indices into a two-experts dataset) the second expert acted in."""
    return int(np.sum(data.episode_starts[np.unique(episodes)] >= data.num_steps // 2))


def demonstrations_from_second(agent: object, data: Episodes) -> tuple[int, int] | None:
    """(from the second expert, all) of the trajectories an agent that keeps its demonstrations imitates."""
    demos = getattr(agent, "demos", None)
    if demos is None:
        return None
    return second_expert_episodes(data, demos.episodes), len(np.unique(demos.episodes))


def episode_summary(agent: object, task: TaskSpec, classifier: StateClassifier, episodes: int,
                    deterministic: bool) -> dict:  # fmt: skip
    """Returns, and per episode the classifier's mean probability that the second expert moved so."""
    paths = episode_paths(agent, task, episodes, deterministic)
    second = [float(classifier.second(path.observations).mean()) for path in paths]
    returns = [path.total_return for path in paths]
    return {"returns": returns, "second_probability": second, "return_mean": float(np.mean(returns)),
            "second_episodes": int(sum(p > 0.5 for p in second))}  # fmt: skip


def mixture_gaps(rows: list[dict], episodes: int) -> list[str]:
    """Over the runs that keep their demonstrations: how far each run's share of second-expert episodes is from its
    demonstrations' share (0: the mixture reproduced; up to 1), mean ± s.e. over runs, deterministic and sampled."""
    kept = [row for row in rows if row["demonstrations_from_second"] is not None]
    if not kept:
        return []
    lines = [f"|episodes' share - demonstrations' share| of the second expert, mean ± s.e. over {len(kept)} runs:"]
    for name in ("deterministic", "sampled"):
        gaps = np.array([abs(row[name]["second_episodes"] / episodes - row["demonstrations_from_second"][0]
                             / row["demonstrations_from_second"][1]) for row in kept])  # fmt: skip
        returns = np.array([row[name]["return_mean"] for row in kept])
        lines.append(f"- {name}: {gaps.mean():.3f} ± {standard_error(gaps):.3f} (return {returns.mean():.0f} ± "
                     f"{standard_error(returns):.0f})")  # fmt: skip
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of agents trained on a two-experts dataset")
    parser.add_argument("--dataset", help="the two-experts dataset (default <task>-two-experts)")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="torch seed of the sampled actions")
    parser.add_argument("--out", type=Path, help="also write the results here as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    classifiers: dict[str, tuple[Episodes, StateClassifier]] = {}
    rows = []
    print("| run | demonstrations from the second expert | deterministic: return, second expert's episodes | "
          "sampled: return, second expert's episodes |")  # fmt: skip
    print("| --- | --- | --- | --- |")
    for run in args.runs:
        try:
            agent, task, _, step = load_agent(run, device="cpu")
            dataset = args.dataset or f"{task.name}-two-experts"
            if dataset not in classifiers:
                data = load_training_data(task, dataset)
                classifiers[dataset] = data, fit_state_classifier(data.observations, halves(data))
        except (FileNotFoundError, ValueError) as error:
            print(f"which_expert: {run}: {error}", file=sys.stderr)
            return 1
        data, classifier = classifiers[dataset]
        torch.manual_seed(args.seed)
        demos = demonstrations_from_second(agent, data)
        row = {"run": str(run), "step": step, "dataset": dataset, "demonstrations_from_second": demos,
               "classifier_accuracy": classifier.held_out_accuracy}  # fmt: skip
        for name, deterministic in (("deterministic", True), ("sampled", False)):
            row[name] = episode_summary(agent, task, classifier, args.episodes, deterministic)
        rows.append(row)
        cells = [f"{row[name]['return_mean']:.0f}, {row[name]['second_episodes']} of {args.episodes}"
                 for name in ("deterministic", "sampled")]  # fmt: skip
        demo_cell = "-" if demos is None else f"{demos[0]} of {demos[1]}"
        print(f"| {run} | {demo_cell} | {cells[0]} | {cells[1]} |", flush=True)
    accuracy = {name: round(c.held_out_accuracy, 4) for name, (_, c) in classifiers.items()}
    print(f"\nstate classifier held-out accuracy: {accuracy}")
    for line in mixture_gaps(rows, args.episodes):
        print(line)
    if args.out:
        write_text_atomic(args.out, json.dumps({"episodes": args.episodes, "seed": args.seed, "runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
