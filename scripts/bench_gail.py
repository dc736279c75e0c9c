"""Benchmark: GAIL vs behaviour cloning from few expert trajectories, the shape of the thesis' Figure 2.1.

For each task, number of expert trajectories N and seed s, both methods get the same demonstrations: N
trajectories of ``<task>-<level>`` (``--level``, ``expert`` by default; ``two-experts`` imitates a mixture of two
experts) subsampled to 50 state-action pairs each (``agent.demo_seed = s``), and the
same policy network (2 x 100 tanh MLP, Gaussian head with a free log-std, inputs standardised by the
demonstrations' states):

* **GAIL**: ``agents/gail-trpo.yaml`` trained for ``--iterations`` GAIL iterations of 1024 environment steps;
* **BC**: the thesis' baseline (70/30 split, Adam, minibatches of 128, stop when the validation loss stops
  improving), i.e. exactly GAIL's optional warm start, with no environment interaction;
* **GAIL+BC** (``--methods gail-bc``): GAIL warm-started by that BC.

Each final policy is evaluated with deterministic actions on ``--eval-episodes`` episodes (episode i reset with
seed 100000 + i) and scored on the thesis' scale: ``(R - R_random) / (R_expert - R_random)``, with the task
recipe's measured returns of the uniform-random policy and of the expert's deterministic actions (the expert
that generated the data; its stochastic return is kept in the JSON too).

``--set`` overrides the recipe for every run (``agent.*`` ones reach BC's network and demonstrations too);
the table lists them per row. The GAIL runs go first, as one ``rlgen sweep`` (:mod:`rlgen.scale.sweep`: Ray,
``--workers`` runs at once, one CPU each; run folders ``--runs/gail-trpo/<task>-<level>/<method>-n<N>-i<iterations>/
seed<s>``, with the sweep's ``summary.md``); then the BC runs, in this process. Results go to
``benchmarks/gail.{json,md}`` after the sweep and after every BC run. A GAIL run finished by an earlier invocation
is skipped by the sweep (its times kept in its run folder), one killed mid-way resumed; runs with other ``--set``
overrides need another ``--runs``. ``--merge`` keeps the runs already in
the JSON and skips any (task, method, N, seed, iterations, overrides) measured before, so a later session can
extend the table::

    python scripts/bench_gail.py --tasks invertedpendulum --iterations 50 --set agent.n_steps=256
    python scripts/bench_gail.py --tasks hopper --iterations 300 --trajectories 4 25 --merge
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_bc import ensure_dataset
from bench_notes import with_notes
from which_expert import second_expert_episodes

from rlgen.algos.gail import GAIL, behaviour_clone
from rlgen.algos.gail.demos import subsample_demonstrations
from rlgen.data.episodes import Episodes
from rlgen.rollout import evaluate
from rlgen.runs import load_recipe, load_training_data
from rlgen.scale.sweep import Cell, Grid, RunRecord, last_evaluation, plan_sweep, run_sweep, write_summary
from rlgen.tasks import TaskSpec, load_task
from rlgen.train import seed_everything
from rlgen.train.run_dir import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
RECIPE = "gail-trpo"
EVAL_SEED = 100_000
PAIRS = 50
METHODS = ("gail", "bc", "gail-bc")


def references(task: TaskSpec) -> dict[str, float]:
    """The measured returns that anchor the scale: random 0, expert (deterministic) 1."""
    if task.expert is None or task.random_return is None:
        raise SystemExit(f"task {task.name} has no measured expert/random returns; train its behaviour policies")
    return {"random": task.random_return.mean, "expert": task.expert.deterministic.mean,
            "expert_stochastic": task.expert.stochastic.mean}  # fmt: skip


def gail_results(args: argparse.Namespace, done: set[tuple]) -> dict[tuple, dict]:
    """Train the GAIL runs of ``--methods`` (gail, gail-bc) that ``done`` lacks as one sweep (finished runs in
    ``--runs`` skipped, interrupted ones resumed); each by its :func:`key`: its return, env steps and seconds."""
    agent = load_recipe(RECIPE).with_overrides([o for o in args.overrides if o.startswith("agent.")]).agent
    env_steps = args.iterations * agent.num_envs * agent.n_steps  # train.steps counts environment steps
    common = [*args.overrides, f"agent.pairs_per_trajectory={PAIRS}", f"train.steps={env_steps}",
              "train.eval_every=0", f"train.eval_episodes={args.eval_episodes}", f"train.eval_seed={EVAL_SEED}",
              f"train.checkpoint_every={env_steps}"]  # fmt: skip
    methods = {f"{method}-n{n}-i{args.iterations}": (method, n) for n in args.trajectories
               for method in args.methods if method != "bc"}  # fmt: skip
    cells = []
    for seed in args.seeds:  # a grid per seed: the seed also picks the demonstrations, which a grid's seeds do not
        variants = {name: [f"agent.trajectories={n}", f"agent.bc_warm_start={str(method == 'gail-bc').lower()}",
                           f"agent.demo_seed={seed}"] for name, (method, n) in methods.items()}  # fmt: skip
        grid = Grid([RECIPE], [f"{task}-{args.level}" for task in args.tasks], [seed], common, variants)
        cells += plan_sweep(grid, args.runs)

    def key_of(cell_or_record: Cell | RunRecord) -> tuple:
        method, trajectories = methods[cell_or_record.variant]
        task = cell_or_record.dataset.removesuffix(f"-{args.level}")
        return task, args.level, method, trajectories, cell_or_record.seed, args.iterations, " ".join(args.overrides)

    cells = [cell for cell in cells if key_of(cell) not in done]
    if not cells:
        return {}
    records = run_sweep(cells, num_cpus=args.workers, sequential=args.workers == 1, device="cpu")
    write_summary(args.runs, records)
    results = {}
    for record in (record for record in records if record.status != "failed"):
        final = last_evaluation(record.path)
        # a run trained by an older rlgen has no recorded times
        wall_s = float("nan") if record.wall_s is None else record.wall_s
        update_s = float("nan") if record.update_s is None else record.update_s
        results[key_of(record)] = {"return": final["return_mean"], "env_steps": record.step, "wall_seconds": wall_s,
                                   "train_seconds": update_s}  # fmt: skip
    return results


def run_bc(task: TaskSpec, level: str, trajectories: int, seed: int, episodes: int, extra: list[str]) -> dict:
    """The same demonstrations and network as GAIL (built by GAIL.create), cloned as in the thesis."""
    overrides = [*extra, f"agent.demo_seed={seed}", f"agent.trajectories={trajectories}",
                 f"agent.pairs_per_trajectory={PAIRS}"]  # fmt: skip
    recipe = load_recipe(RECIPE).with_overrides([o for o in overrides if o.startswith("agent.")])
    torch.set_num_threads(1)
    seed_everything(seed)
    tick = time.perf_counter()
    agent = GAIL.create(recipe.agent, task, load_training_data(task, f"{task.name}-{level}"), torch.device("cpu"))
    assert agent.demos is not None
    clone = behaviour_clone(agent.policy, agent.demos, recipe.agent.bc, np.random.default_rng(seed))
    train_seconds = time.perf_counter() - tick
    result = evaluate(agent.act, task, episodes, EVAL_SEED)
    return {"return": result.return_mean, "env_steps": 0, "wall_seconds": time.perf_counter() - tick,
            "train_seconds": train_seconds, "bc_epochs": clone.epochs}  # fmt: skip


def second_expert_trajectories(data: Episodes, trajectories: int, seed: int) -> int:
    """How many of the demonstrations run ``seed`` imitates come from a ``two-experts`` dataset's second half (the
    second expert's; ``rlgen.rollout.generate``): the same draw as :meth:`GAIL.create` makes with ``demo_seed``."""
    demos = subsample_demonstrations(data, trajectories, PAIRS, np.random.default_rng(seed))
    return second_expert_episodes(data, demos.episodes)


def key(run: dict) -> tuple:
    # runs recorded before --level existed imitated the expert level
    level = run.get("level", "expert")
    return run["task"], level, run["method"], run["trajectories"], run["seed"], run["iterations"], run["overrides"]


def data_label(run: dict) -> str:
    """The table's task column: the task, and the dataset level where it is not the expert's."""
    level = run.get("level", "expert")
    return run["task"] if level == "expert" else f"{run['task']} ({level})"


def write_report(runs: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "gail.json", json.dumps({"runs": runs}, indent=2) + "\n")
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        group = (data_label(run), run["trajectories"], run["method"], run["iterations"], run["overrides"])
        groups.setdefault(group, []).append(run)
    lines = ["# GAIL vs BC from few expert trajectories (thesis Figure 2.1)", "",
             "Expert-normalised return of the final policy (deterministic actions): 0 = uniform-random policy, "
             "1 = the expert that generated the data (its deterministic return); mean ± std over seeds. "
             f"Each trajectory is subsampled to {PAIRS} state-action pairs. Env steps and wall time per run "
             "(wall: training and the final evaluation; BC uses no environment steps).", "",
             "| task | trajectories | method | iterations | overrides | normalised return | seeds | env steps | "
             "wall s / run |", "| --- | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for (task, trajectories, method, iterations, overrides), group in sorted(groups.items()):
        scores = [r["normalised"] for r in group]
        spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
        lines.append(f"| {task} | {trajectories} | {method} | {iterations} | {overrides or '—'} | "
                     f"{statistics.mean(scores):.2f} ± "
                     f"{spread:.2f} | {len(group)} | {group[0]['env_steps']:,} | "
                     f"{statistics.mean(r['wall_seconds'] for r in group):.0f} |")  # fmt: skip
    # the draw depends only on the data, N and the seed (agent.demo_seed), the same for every method and head
    splits: dict[tuple[str, int], dict[int, int]] = {}
    for run in (run for run in runs if "second_expert_trajectories" in run):
        splits.setdefault((data_label(run), run["trajectories"]), {})[run["seed"]] = run["second_expert_trajectories"]
    if splits:
        lines += ["", "Demonstrations from the second expert (of a two-experts mixture's N), per seed, the same for "
                  "every method and head:", ""]  # fmt: skip
        for (task, trajectories), by_seed in sorted(splits.items()):
            split = ", ".join(f"seed {seed}: {count}" for seed, count in sorted(by_seed.items()))
            lines.append(f"- {task}, N={trajectories}: {split}")
    lines += ["", "References (measured returns in the task files, mean ± std over episodes; a learner that falls "
              "less often than the expert scores above 1):", ""]  # fmt: skip
    for name in sorted({r["task"] for r in runs}):
        task = load_task(name)
        assert task.random_return is not None and task.expert is not None  # checked by references()
        rand, det, sto = task.random_return, task.expert.deterministic, task.expert.stochastic
        lines.append(
            f"- {name}: random {rand.mean:.1f} ± {rand.std:.1f}, expert {det.mean:.1f} ± {det.std:.1f} "
            f"(deterministic, {det.episodes} episodes; stochastic {sto.mean:.1f} ± {sto.std:.1f})"
        )
        if task.second_expert is not None and any(r["task"] == name and r.get("level", "expert") != "expert"
                                                  for r in runs):  # fmt: skip
            second = task.second_expert.deterministic
            lines.append(
                f"  - {name}'s second expert (the other half of a two-experts mixture): "
                f"{second.mean:.1f} ± {second.std:.1f} (deterministic, {second.episodes} episodes)"
            )
    lines += ["", "Runs:", ""]
    for command, machine, seeds in dict.fromkeys((r["command"], r["machine"], r["seeds"]) for r in runs):
        lines.append(f"- `{command}` on {machine}; seeds {seeds}")
    write_text_atomic(out / "gail.md", with_notes(out / "gail.md", "\n".join(lines) + "\n"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["invertedpendulum", "hopper"])
    parser.add_argument(
        "--level",
        default="expert",
        help="the dataset level imitated: <task>-<level> (e.g. two-experts: a mixture of two experts)",
    )
    parser.add_argument("--trajectories", nargs="+", type=int, default=[4, 11, 18, 25])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["gail", "bc"], choices=METHODS)
    parser.add_argument("--iterations", type=int, default=300, help="GAIL iterations (1024 env steps each)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="recipe overrides for every run, e.g. agent.n_steps=256")  # fmt: skip
    parser.add_argument("--merge", action="store_true", help="keep the runs in <out>/gail.json, skip those measured")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench-gail", help="GAIL run folders")
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help="GAIL runs trained at once by the sweep (1: one after another, without Ray)")  # fmt: skip
    args = parser.parse_args()
    machine = (f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs), torch {torch.__version__} "
               f"(1 thread), Python {platform.python_version()}")  # fmt: skip
    settings = {"command": "python scripts/bench_gail.py " + shlex.join(sys.argv[1:]), "machine": machine,
                "seeds": " ".join(map(str, args.seeds))}  # fmt: skip
    path = args.out / "gail.json"
    runs: list[dict] = json.loads(path.read_text())["runs"] if args.merge and path.is_file() else []
    done = {key(r) for r in runs}
    tasks = {name: load_task(name) for name in args.tasks}
    references_of = {name: references(task) for name, task in tasks.items()}  # before any run: refused if missing
    for name, task in tasks.items():  # made from the task's shipped behaviour policies where missing
        if args.level not in task.levels:
            raise SystemExit(f"task {name} has no dataset level {args.level!r}; its levels: {', '.join(task.levels)}")
        ensure_dataset(f"{name}-{args.level}")
    mixtures = {name: load_training_data(task, f"{name}-{args.level}") for name, task in tasks.items()
                if args.level == "two-experts"}  # fmt: skip
    gail = gail_results(args, done)
    for name, task in tasks.items():
        refs = references_of[name]
        for trajectories in args.trajectories:
            for method in args.methods:
                for seed in args.seeds:
                    iterations = 0 if method == "bc" else args.iterations
                    run = {"task": name, "level": args.level, "method": method, "trajectories": trajectories,
                           "seed": seed, "iterations": iterations, "overrides": " ".join(args.overrides)}  # fmt: skip
                    if key(run) in done or key(run) not in gail and method != "bc":  # measured, or its run failed
                        continue
                    if method == "bc":
                        run.update(run_bc(task, args.level, trajectories, seed, args.eval_episodes, args.overrides))
                    else:
                        run.update(gail[key(run)])
                    if name in mixtures:
                        run["second_expert_trajectories"] = second_expert_trajectories(mixtures[name], trajectories,
                                                                                       seed)  # fmt: skip
                    run["normalised"] = (run["return"] - refs["random"]) / (refs["expert"] - refs["random"])
                    runs.append({**run, "references": refs, "eval_episodes": args.eval_episodes, **settings})
                    done.add(key(run))
                    write_report(runs, args.out)  # after every run: a stopped benchmark keeps what it measured
                    print(f"{data_label(run)} N={trajectories} {method} seed {seed}: return {run['return']:.1f} "
                          f"(normalised {run['normalised']:.2f}), {run['env_steps']:,} env steps, "
                          f"{run['wall_seconds']:.0f} s", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
