"""Benchmark: behaviour cloning with each head on data mixed from two behaviour policies, and on each one's alone.

The data (``--mixture``): ``<task>-two-experts-200k``, half the steps from the task's expert (PPO seed 0) and half
from its second expert (PPO seed 1), ``<task>-switching-experts-200k``, the two experts taking turns at random at
every step (so both act in the same states), or ``<task>-medium-expert-200k``, half from its medium and half from its
expert policy; all sampling their stochastic actions (``rlgen data make``, seed 0; docs/datasets.md). On ``hopper``
two gaits give two different actions for similar states; on ``detour`` one expert passes the wall on the right and
the other on the left, from the same start states. As a control every head also learns from each part's data
alone at the same size (e.g. ``<task>-expert-200k``, ``<task>-second-expert-200k``). The disagreement that makes the
mixture bimodal is measured first: on the states of each part's data, the mean absolute difference between the two
policies' deterministic actions, beside each one's own sampling noise (its mean ``|a - mean|``).

Every run is a cell of one rlgen sweep (:mod:`rlgen.scale.sweep`; run folders under ``--runs``, finished ones
skipped, interrupted ones resumed), run one after another in this process (one core), seed-major. Recipes
``agents/bc-<head>.yaml`` with MLP 256-256, batch 256, ``--steps`` gradient steps, scored at the end on
``--eval-episodes`` deterministic episodes (seeds 100000+i) as the D4RL normalised return.

    python scripts/bench_two_experts.py --seeds 0 1 2 --steps 10000
    python scripts/bench_two_experts.py --task detour --steps 5000 --set agent.action=peak   # -> two_experts_detour.md
    python scripts/bench_two_experts.py --task walker2d --mixture medium-expert     # -> medium_expert_walker2d.md
    python scripts/bench_two_experts.py --mixture switching-experts --control-heads   # -> switching_experts_hopper.md

Datasets are generated into ``--data-dir`` (a D4RL and a Minari store of its own) if missing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from bench_notes import with_notes
from bench_stats import bootstrap_interval, iqm, probability_of_improvement
from state_classifier import fit_state_classifier

from rlgen.data import load_dataset
from rlgen.data.store import D4RL_DIR_VAR
from rlgen.rollout.behavior import BehaviorPolicy
from rlgen.rollout.generate import MIXTURES, SWITCHING, make_dataset
from rlgen.runs import load_recipe
from rlgen.scale.sweep import Grid, RunRecord, plan_sweep, run_sweep, summarise
from rlgen.tasks import load_task

ROOT = Path(__file__).resolve().parents[1]
HIDDEN, BATCH = (256, 256), 256
EVAL_SEED = 100_000
HEADS = ("gaussian", "dlml", "adacat")


#: the mixed levels and the two levels each is made of (its controls)
MIXED_LEVELS = {**MIXTURES, **SWITCHING}


def dataset_names(task: str, mixture: str, size: str) -> dict[str, str]:
    """Level -> dataset name of ``task`` at ``size`` (``200k``), for ``mixture`` and its two parts."""
    return {level: f"{task}-{level}-{size}" for level in (mixture, *MIXED_LEVELS[mixture])}


def ensure_datasets(names: dict[str, str], data_dir: Path) -> None:
    """Point the dataset stores at ``data_dir`` and make the datasets missing there (D4RL HDF5, seed 0)."""
    os.environ[D4RL_DIR_VAR] = str(data_dir / "d4rl")
    os.environ["MINARI_DATASETS_PATH"] = str(data_dir / "minari")  # none there: only this script's files are found
    for name in names.values():
        path = data_dir / "d4rl" / f"{name}.hdf5"
        if not path.exists():
            make_dataset(name, seed=0, fmt="d4rl", progress=False)
            print(f"made {name} into {path}", flush=True)


def rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 3) for v in values]


def disagreement(task_name: str, parts: tuple[str, str], names: dict[str, str]) -> dict:
    """How far apart the two behaviour policies act: on the states of each one's data, the mean |a1 - a2| of their
    deterministic actions, each one's own noise (mean |a - its deterministic action| in its data), and the
    share of states and action dimensions where the two deterministic actions differ by more than that noise."""
    task = load_task(task_name)
    policies = {level: BehaviorPolicy.load(task.policies_for_level(level)[0].path) for level in parts}
    rng = np.random.default_rng(0)
    out: dict = {"behaviour_noise_std": {k: rounded(np.exp(p.log_std)) for k, p in policies.items()}}
    for level in parts:
        data = load_dataset(names[level], observation_shape=(task.obs_dim,), action_shape=(task.act_dim,))
        det = {k: policies[k].act(data.observations, rng, deterministic=True) for k in parts}
        noise = float(np.abs(data.actions - det[level]).mean())
        gap = np.abs(det[parts[0]] - det[parts[1]])
        out[f"on {level} states"] = {
            "mean_abs_a1_minus_a2": float(gap.mean()),
            "mean_abs_a1_minus_a2_per_dim": rounded(gap.mean(0)),
            "own_noise_mean_abs": noise,
            "share_beyond_noise": float((gap > noise).mean()),
            "episodes": int(data.num_episodes),
            "mean_episode_return": float(data.episode_returns()[:-1].mean()),  # the last one is cut by the size
        }
    return out


def separability(
    task_name: str, parts: tuple[str, str], names: dict[str, str], steps: int = 3000, early: int = 20
) -> dict:
    """How well the state alone tells which expert acts: held-out accuracy of a :func:`fit_state_classifier` on
    both policies' data, over all held-out states and over those in the first ``early`` steps of their episode
    (where both gaits start from the same states)."""
    task = load_task(task_name)
    parts = [load_dataset(names[level], observation_shape=(task.obs_dim,), action_shape=(task.act_dim,))
             for level in parts]  # fmt: skip
    obs = np.concatenate([d.observations for d in parts])
    label = np.concatenate([np.full(d.num_steps, k) for k, d in enumerate(parts)])
    in_episode = np.concatenate([np.arange(d.num_steps) - d.episode_starts[d.episode_index()] for d in parts])
    classifier = fit_state_classifier(obs, label, steps)
    correct = classifier.held_out_correct
    first = in_episode[classifier.held_out] < early
    return {"held_out_accuracy": classifier.held_out_accuracy,
            f"accuracy_first_{early}_steps": float(correct[first].mean()),
            "accuracy_later_steps": float(correct[~first].mean()), "held_out_states": int(len(correct))}  # fmt: skip


def run_grid(names: dict[str, str], args: argparse.Namespace) -> list[RunRecord]:
    """Every head on the mixed data (``--seeds``) and ``--control-heads`` on each expert's alone
    (``--control-seeds``), seed-major; one record each."""
    common = [f"train.steps={args.steps}", f"train.batch_size={BATCH}", f"train.eval_every={args.steps}",
              f"train.eval_episodes={args.eval_episodes}", f"train.eval_seed={EVAL_SEED}",
              f"train.checkpoint_every={min(5000, args.steps)}", f"agent.hidden=[{HIDDEN[0]},{HIDDEN[1]}]",
              *args.set]  # fmt: skip
    controls = [names[s] for s in MIXED_LEVELS[args.mixture]]
    parts = [(args.heads, [names[args.mixture]], args.seeds), (args.control_heads, controls, args.control_seeds)]
    grids = [Grid([f"bc-{h}" for h in heads], data, seeds, common) for heads, data, seeds in parts if heads]
    cells = [cell for grid in grids for cell in plan_sweep(grid, args.runs)]
    cells.sort(key=lambda c: (c.seed, c.dataset != names[args.mixture], c.dataset, c.agent))
    return run_sweep(cells, sequential=True, device="cpu")


def verdict(rows: list[dict], dataset: str) -> list[str]:
    """For each expressive head on ``dataset``: its mean score minus the Gaussian's and whether that exceeds twice
    the standard error of the difference; then both heads' interquartile means and the probability that the
    head's score on a seed beats the Gaussian's, with 95% bootstrap intervals (:mod:`bench_stats`)."""
    by_agent = {r["agent"]: r for r in rows if r["dataset"] == dataset and r["score_mean"] is not None}
    base = by_agent.get("bc-gaussian")
    lines = []
    rng = np.random.default_rng(0)
    for agent, row in by_agent.items():
        if base is None or agent == "bc-gaussian":
            continue
        diff = row["score_mean"] - base["score_mean"]
        se = float(np.hypot(row["score_se"], base["score_se"]))
        beyond = "beyond noise (|diff| > 2 s.e.)" if abs(diff) > 2 * se else "within noise (|diff| <= 2 s.e.)"
        lines.append(f"- {dataset}: {agent} - bc-gaussian = {diff:+.1f} ± {se:.1f} (s.e.), {beyond}")
        x, y = row["scores"], base["scores"]
        if min(len(x), len(y)) > 1:
            iqms = [
                f"{iqm(v):.1f} [{', '.join(f'{b:.1f}' for b in bootstrap_interval(iqm, v, rng=rng))}]" for v in (x, y)
            ]
            low, high = bootstrap_interval(probability_of_improvement, x, y, rng=rng)
            lines.append(f"  - IQM {iqms[0]} vs {iqms[1]}; P({agent} > bc-gaussian) = "
                         f"{probability_of_improvement(x, y):.2f} [{low:.2f}, {high:.2f}]")  # fmt: skip
    return lines


def failed_episodes(runs: list[dict]) -> dict[tuple[str, str], tuple[int, int, int]]:
    """Per (agent, dataset): evaluation episodes scoring below 50 (nearer the random policy than the expert), all
    evaluated episodes, and seeds with at least one such episode; read from each finished run's last evaluation."""
    counts: dict[tuple[str, str], tuple[int, int, int]] = {}
    for run in runs:
        evals = sorted((Path(run["path"]) / "evals").glob("step_*.json")) if run["status"] != "failed" else []
        if not evals:
            continue
        scores = np.asarray(json.loads(evals[-1].read_text())["scores"])
        failed, total, seeds = counts.get((run["agent"], run["dataset"]), (0, 0, 0))
        low = int((scores < 50).sum())
        counts[(run["agent"], run["dataset"])] = (failed + low, total + len(scores), seeds + (low > 0))
    return counts


def point_action(head: str, overrides: list[str]) -> str:
    """How ``agents/bc-<head>.yaml`` with ``overrides`` acts deterministically, e.g. ``peak 0.3`` (the Gaussian's
    mode and peak are its mean, clipped to the box)."""
    agent = load_recipe(f"bc-{head}").with_overrides(overrides).agent
    if head == "gaussian":
        return "mean"
    return f"{agent.action} {agent.peak_width:g}" if agent.action == "peak" else agent.action


def data_description(results: dict) -> str:
    """How the mixed dataset was made from its two policies."""
    s, experts = results["settings"], results["experts"]
    mixture = s["mixture"]
    first, second = MIXED_LEVELS[mixture]
    name = s["datasets"][mixture]
    if mixture in SWITCHING:
        made = (f"`{name}`: at every step, in every environment, the action of {s['task']}'s {first} policy "
                f"({experts[first]}) or of its {second} policy ({experts[second]}), picked with equal probability, "
                "each sampling its stochastic action (`rlgen data make`, seed 0). Both act in the same states, so "
                "the actions are bimodal given the state.")  # fmt: skip
    else:
        made = (f"`{name}`: the first half of the steps from {s['task']}'s {first} policy ({experts[first]}), the "
                f"second half from its {second} policy ({experts[second]}), both sampling their stochastic actions; "
                f"each half is exactly `{s['task']}-{first}` / `{s['task']}-{second}` at half the size "
                "(`rlgen data make`, seed 0).")  # fmt: skip
    return made + " Controls: each policy's data alone at the same size."


def report(results: dict) -> str:
    s, dis = results["settings"], results["disagreement"]
    mixture = s["mixture"]
    first, second = MIXED_LEVELS[mixture]
    lines = [
        f"# BC heads on a mixture of two behaviours: {s['task']} {mixture}",
        "",
        f"Machine: {results['machine']}. Generated by `scripts/bench_two_experts.py` from `{s['stem']}.json`.  ",
        f"Command: `{results['command']}`  ",
        f"{s['steps']:,} gradient steps per run, batch {s['batch_size']}, MLP {tuple(s['hidden'])}, recipes "
        f"`agents/bc-<head>.yaml` with {' '.join(s['overrides']) or 'no overrides'} (deterministic action: "
        f"{', '.join(f'{head} {action}' for head, action in s['actions'].items())}); "
        f"score = D4RL normalised return of {s['eval_episodes']} deterministic episodes (seeds "
        f"{s['eval_seed']}+i) at the end, mean ± s.e. over training seeds. One rlgen sweep, run sequentially.",
        "",
        "## The data",
        "",
        data_description(results),
        "",
        "How different the two policies act (deterministic actions of both on the same states; noise = a policy's "
        "mean |sampled - deterministic action| in its own data; behaviour noise std per dimension "
        f"{dis['behaviour_noise_std']}):",
        "",
        "| states of | mean abs(a1 - a2) | per dimension | policy's own noise | share of (state, dim) beyond it | "
        "episodes | mean episode return |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for level in (first, second):
        d = dis[f"on {level} states"]
        lines.append(f"| {level} | {d['mean_abs_a1_minus_a2']:.3f} | {d['mean_abs_a1_minus_a2_per_dim']} | "
                     f"{d['own_noise_mean_abs']:.3f} | {d['share_beyond_noise']:.2f} | {d['episodes']} | "
                     f"{d['mean_episode_return']:.0f} |")  # fmt: skip
    sep = results["separability"]
    lines += [
        "",
        f"How well the state alone tells which policy acts: a classifier (MLP 256-256) tells the two policies' "
        f"states apart with held-out accuracy {sep['held_out_accuracy']:.3f} "
        f"({sep['accuracy_first_20_steps']:.3f} in the first 20 steps of an episode, where both start from the "
        f"same states; {sep['accuracy_later_steps']:.3f} later). Near 1, a half-and-half mixture is bimodal across "
        "states more than given a state: a state-conditioned Gaussian can follow each policy in its own region"
        + (" (not this mixture: its two policies take turns in the same states)." if mixture in SWITCHING else "."),
    ]
    lines += ["", "## Scores", "",
              "Episodes < 50: evaluation episodes scoring below 50, of all (seeds with one or more).", "",
              "| dataset | agent | normalised score | seeds | episodes < 50 | scores | train s (all seeds) |",
              "| --- | --- | ---: | ---: | ---: | --- | ---: |"]  # fmt: skip
    failed_counts = failed_episodes(results["runs"])
    for row in results["rows"]:
        score = "-" if row["score_mean"] is None else f"{row['score_mean']:.1f} ± {row['score_se']:.1f}"
        scores = ", ".join(f"{x:.1f}" for x in row["scores"])
        wall = "-" if row["wall_s"] is None else f"{row['wall_s']:.0f}"
        failed, total, seeds = failed_counts.get((row["agent"], row["dataset"]), (0, 0, 0))
        lines.append(f"| {row['dataset']} | {row['agent']} | {score} | {len(row['scores'])} | "
                     f"{failed} of {total} ({seeds}) | {scores} | {wall} |")  # fmt: skip
    lines += ["", "Expressive heads against the Gaussian on the same data:", ""]
    for dataset in s["datasets"].values():
        lines += verdict(results["rows"], dataset)
    failed = [r for r in results["runs"] if r["status"] == "failed"]
    if failed:
        lines += ["", "Failed runs:", ""] + [f"- `{r['path']}`: {r['error']}" for r in failed]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="hopper", help="hopper, detour (two-experts) or any task (medium-expert)")
    parser.add_argument("--mixture", default="two-experts", choices=sorted(MIXED_LEVELS),
                        help="the mixed level; its two parts are the controls (default: two-experts)")  # fmt: skip
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=10_000, help="gradient steps per run (default: 10000)")
    parser.add_argument("--size", default="200k", help="dataset size (default: 200k)")
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=HEADS, help="heads on the mixed data")
    parser.add_argument("--control-heads", nargs="*", default=list(HEADS), choices=HEADS,
                        help="heads on each expert's data alone (none: no controls)")  # fmt: skip
    parser.add_argument("--control-seeds", nargs="+", type=int, help="seeds of the controls (default: --seeds)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="recipe overrides for every run, e.g. agent.action=peak")  # fmt: skip
    parser.add_argument("--data-dir", type=Path, default=ROOT / "runs" / "two-experts-data")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench-two-experts", help="sweep folder")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()
    args.control_seeds = args.control_seeds or args.seeds
    torch.set_num_threads(1)
    names = dataset_names(args.task, args.mixture, args.size)
    parts = MIXED_LEVELS[args.mixture]
    stem = "two_experts" if (args.task, args.mixture) == ("hopper", "two-experts") else f"{args.mixture}_{args.task}"
    stem = stem.replace("-", "_")
    ensure_datasets(names, args.data_dir)
    task = load_task(args.task)
    experts = {level: task.policies_for_level(level)[0] for level in parts}
    results = {
        "command": "python scripts/bench_two_experts.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} (1 thread), "
        f"Python {platform.python_version()}",
        "date": time.strftime("%F %T"),
        "settings": {
            "task": args.task,
            "mixture": args.mixture,
            "stem": stem,
            "overrides": args.set,
            "actions": {head: point_action(head, args.set) for head in sorted({*args.heads, *args.control_heads})},
            "steps": args.steps,
            "batch_size": BATCH,
            "hidden": list(HIDDEN),
            "eval_episodes": args.eval_episodes,
            "eval_seed": EVAL_SEED,
            "seeds": args.seeds,
            "control_seeds": args.control_seeds,
            "datasets": names,
        },  # fmt: skip
        "experts": {
            level: f"{r.path.name}, {r.train_steps:,} PPO steps, stochastic return {r.stochastic.mean:.0f} ± "
            f"{r.stochastic.std:.0f}, deterministic {r.deterministic.mean:.0f} ({r.stochastic.episodes} episodes)"
            for level, r in experts.items()
        },
        "disagreement": disagreement(args.task, parts, names),
        "separability": separability(args.task, parts, names),
    }
    print(json.dumps({k: results[k] for k in ("disagreement", "separability")}, indent=1), flush=True)
    records = run_grid(names, args)
    results.update(runs=[asdict(r) for r in records], rows=summarise(records))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=1) + "\n")
    md = args.out / f"{stem}.md"
    md.write_text(with_notes(md, report(results)))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
