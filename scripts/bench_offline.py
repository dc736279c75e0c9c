"""Benchmark: rlgen's offline agents (BC, TD3+BC, IQL on three heads) beside d3rlpy 2.8.0's IQL and TD3+BC.

Every agent trains on the same locally made dataset, with MLPs 256-256, batch 256, the same number of gradient
steps, observations standardised by the dataset's mean and std (+1e-3), and is scored by the same evaluation
(``rlgen.rollout.evaluate``: episode i resets with seed 100000 + i; deterministic actions). rlgen agents run their
shipped recipes through the launcher; d3rlpy's get the same paper settings (IQL: expectile 0.7, beta 3, weights
clipped at 100, rewards scaled by 1000 / episode-return range, cosine actor lr over the run; TD3+BC: alpha 2.5).

The rlgen runs go first, as one ``rlgen sweep`` (:mod:`rlgen.scale.sweep`: Ray, ``--workers`` runs at once, one
CPU each; run folders under ``--runs``, with the sweep's ``summary.md``); then d3rlpy's, one after another. Every
result is added to ``--out/offline.json`` and the Markdown table rewritten from it, so a killed or later invocation
with the same settings continues the grid (the sweep resumes a run killed mid-way from its checkpoint).
``--timing`` measures ms per gradient step (sampling a batch + one update) in a separate phase that interleaves the
agents in short blocks and keeps each one's median, so load that comes and goes hits every agent alike.

    python scripts/bench_offline.py --datasets hopper-medium-replay walker2d-medium-replay --seeds 0 1 2 \\
        --steps 20000 --data-dir runs/offline-data
    python scripts/bench_offline.py --datasets hopper-medium-replay --timing --data-dir runs/offline-data

Missing datasets are generated into ``--data-dir`` (D4RL HDF5 files, ``--data-steps`` steps) first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from bench_bc import interleaved_ms_per_step
from bench_stats import mean_se

from rlgen.data import Episodes
from rlgen.rollout import evaluate
from rlgen.rollout.generate import make_dataset
from rlgen.runs import load_recipe
from rlgen.runs.launch import load_training_data
from rlgen.scale.sweep import Grid, last_evaluation, plan_sweep, run_sweep, write_summary
from rlgen.tasks import TaskSpec, parse_dataset_name

ROOT = Path(__file__).resolve().parents[1]
HIDDEN, BATCH = (256, 256), 256
EVAL_SEED = 100_000
TIMING_BLOCK = 25  # training steps per agent per round of the interleaved timing phase
RLGEN_RECIPES = {
    "rlgen BC-gaussian": "bc-gaussian",
    "rlgen BC-dlml": "bc-dlml",
    "rlgen TD3+BC": "td3-bc",
    "rlgen IQL-gaussian": "iql-gaussian",
    "rlgen IQL-dlml": "iql-dlml",
    "rlgen IQL-adacat": "iql-adacat",
}
D3RLPY = ("d3rlpy TD3+BC", "d3rlpy IQL")
AGENTS = (*RLGEN_RECIPES, *D3RLPY)
BASELINE = {"TD3+BC": "d3rlpy TD3+BC", "IQL": "d3rlpy IQL"}  # what each rlgen row's time is compared with


def dataset_path(data_dir: Path, name: str, steps: int) -> Path:
    """``data_dir/<name>.hdf5``, generated from the task's behaviour policies if missing."""
    path = data_dir / f"{name}.hdf5"
    if not path.exists():
        print(f"generating {name} ({steps:,} steps) into {path}", flush=True)
        make_dataset(name, steps=steps, seed=0, out=path, progress=False)
    return path


def point_action(recipe: str) -> str | None:
    """The deterministic action ``recipe`` evaluates with (``mode``, ``mean``, ``peak:<width>``), if it has a choice."""
    agent = load_recipe(recipe).agent
    action = getattr(agent, "action", None)
    return f"peak:{agent.peak_width:g}" if action == "peak" else action


def rlgen_rows(agents: list[str], paths: dict[str, Path], seeds: list[int], results: dict,
               args: argparse.Namespace) -> list[dict]:  # fmt: skip
    """Train the rlgen runs of ``agents`` x ``paths`` x ``seeds`` that ``results`` lacks as one sweep (Ray, one CPU
    per run; the sweep resumes interrupted runs and finds finished ones in ``--runs``); their result rows."""
    overrides = [f"train.steps={args.steps}", f"train.batch_size={BATCH}", f"train.eval_every={args.steps}",
                 f"train.eval_episodes={args.eval_episodes}", f"train.eval_seed={EVAL_SEED}",
                 f"train.checkpoint_every={min(5000, args.steps)}",
                 f"agent.hidden=[{HIDDEN[0]},{HIDDEN[1]}]"]  # fmt: skip
    recipes = [RLGEN_RECIPES[agent] for agent in agents]
    grid = Grid(agents=recipes, datasets=[str(path) for path in paths.values()], seeds=seeds, overrides=overrides)
    agent_of = {recipe: agent for agent, recipe in RLGEN_RECIPES.items()}
    dataset_of = {str(path): name for name, path in paths.items()}
    done = {(r["dataset"], r["agent"], r["seed"]) for r in results["runs"]}
    cells = [c for c in plan_sweep(grid, args.runs) if (dataset_of[c.dataset], agent_of[c.agent], c.seed) not in done]
    if not cells:
        return []
    load = os.getloadavg()[0]
    records = run_sweep(cells, num_cpus=args.workers, sequential=args.workers == 1, device="cpu")
    write_summary(args.runs, records)
    rows = []
    for record in records:
        if record.status == "failed":
            print(f"FAILED {record.path}: {record.error}", flush=True)
            continue
        final = last_evaluation(record.path)
        ms = 1e3 * record.update_s / record.step if record.update_s is not None and record.step else float("nan")
        rows.append({"dataset": dataset_of[record.dataset], "agent": agent_of[record.agent], "seed": record.seed,
                     "score": final["score_mean"], "return": final["return_mean"], "train_ms_per_step": ms,
                     "load": load, "minutes": (record.wall_s or float("nan")) / 60,
                     "date": time.strftime("%F %T"), "action": point_action(record.agent)})  # fmt: skip
    return rows


def d3rlpy_setup(agent: str, task: TaskSpec, data: Episodes, steps: int):
    """d3rlpy's ``agent`` configured like rlgen's recipe, and the dataset as an MDPDataset."""
    import d3rlpy

    # d3rlpy refuses a step flagged both terminal and timeout (gymnasium allows both); the terminal is what counts
    mdp = d3rlpy.dataset.MDPDataset(
        observations=data.observations, actions=data.actions, rewards=data.rewards.astype(np.float32),
        terminals=data.terminals.astype(np.float32), timeouts=(data.timeouts & ~data.terminals).astype(np.float32),
    )  # fmt: skip
    obs, (low, high) = data.observations, task.action_bounds()
    # Statistics passed in: d3rlpy's own scaler fit loops over transitions in Python (preprocessing, not training).
    common = {
        "batch_size": BATCH,
        "observation_scaler": d3rlpy.preprocessing.StandardObservationScaler(mean=obs.mean(0), std=obs.std(0)),
        "action_scaler": d3rlpy.preprocessing.MinMaxActionScaler(minimum=low, maximum=high),
        "actor_encoder_factory": d3rlpy.models.encoders.VectorEncoderFactory(list(HIDDEN)),
        "critic_encoder_factory": d3rlpy.models.encoders.VectorEncoderFactory(list(HIDDEN)),
    }
    if agent == "d3rlpy TD3+BC":
        return d3rlpy.algos.TD3PlusBCConfig(alpha=2.5, update_actor_interval=2, **common).create("cpu:0"), mdp
    returns = data.episode_returns()
    return d3rlpy.algos.IQLConfig(
        value_encoder_factory=d3rlpy.models.encoders.VectorEncoderFactory(list(HIDDEN)),
        reward_scaler=d3rlpy.preprocessing.ReturnBasedRewardScaler(
            return_max=float(returns.max()), return_min=float(returns.min()), multiplier=1000.0
        ),
        actor_optim_factory=d3rlpy.optimizers.AdamFactory(
            lr_scheduler_factory=d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=steps)
        ),
        expectile=0.7, weight_temp=3.0, max_weight=100.0, **common,
    ).create("cpu:0"), mdp  # fmt: skip


def d3rlpy_run(agent: str, path: Path, task: TaskSpec, seed: int, args: argparse.Namespace) -> dict:
    import d3rlpy

    d3rlpy.seed(seed)
    algo, mdp = d3rlpy_setup(agent, task, load_training_data(task, path), args.steps)
    start = time.perf_counter()
    algo.fit(mdp, n_steps=args.steps, n_steps_per_epoch=args.steps, show_progress=False,
             logger_adapter=d3rlpy.logging.NoopAdapterFactory())  # fmt: skip
    ms = 1e3 * (time.perf_counter() - start) / args.steps
    result = evaluate(lambda obs: algo.predict(np.asarray(obs, dtype=np.float32)), task, args.eval_episodes, EVAL_SEED)
    return {"score": result.score_mean, "return": result.return_mean, "train_ms_per_step": ms}


def training_steps(task: TaskSpec, data: Episodes, steps: int) -> dict[str, Callable[[], object]]:
    """One training step per agent, as each library's fit loop takes it: sample a batch, one update."""
    rng = np.random.default_rng(0)
    out: dict[str, Callable[[], object]] = {}
    for agent, recipe_name in RLGEN_RECIPES.items():
        recipe = load_recipe(recipe_name).with_overrides([f"agent.hidden=[{HIDDEN[0]},{HIDDEN[1]}]"])
        learner = recipe.agent_class.create(recipe.agent, task, data, torch.device("cpu"))
        learner.set_total_steps(steps)
        sampler = learner.sampler(data)
        out[agent] = lambda learner=learner, sampler=sampler: learner.update(sampler.sample(BATCH, rng))
    for agent in D3RLPY:
        algo, mdp = d3rlpy_setup(agent, task, data, steps)
        algo.build_with_dataset(mdp)
        out[agent] = lambda algo=algo, mdp=mdp: algo.update(mdp.sample_transition_batch(BATCH))
    return out


def load_results(path: Path, args: argparse.Namespace) -> dict:
    settings = {"steps": args.steps, "eval_episodes": args.eval_episodes, "eval_seed": EVAL_SEED,
                "hidden": list(HIDDEN), "batch_size": BATCH}  # fmt: skip
    if not path.exists():
        return {"settings": settings, "runs": [], "timing": {}}
    results = json.loads(path.read_text())
    if results["settings"] != settings:
        raise SystemExit(f"{path} holds runs with settings {results['settings']}; these are {settings}: pass the "
                         f"same --steps / --eval-episodes to continue it, or another --out")  # fmt: skip
    return results


def save(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "offline.json.tmp"
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(out / "offline.json")
    (out / "offline.md").write_text(report(results))


def report(results: dict) -> str:
    s = results["settings"]
    machine = (f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} (1 thread), "
               f"Python {platform.python_version()}")  # fmt: skip
    lines = [
        "# Offline RL: rlgen BC, TD3+BC and IQL beside d3rlpy 2.8.0",
        "",
        f"Machine: {machine}. Generated by `scripts/bench_offline.py` from `offline.json`.  ",
        f"{s['steps']:,} gradient steps per run, batch {s['batch_size']}, MLPs {tuple(s['hidden'])}; score = D4RL "
        f"normalised return of {s['eval_episodes']} deterministic evaluation episodes (seeds {s['eval_seed']}+i), "
        "mean ± s.e. over training seeds. ms / step: sampling + one update, median of interleaved blocks "
        "(`--timing`); in brackets, the mean over the training runs (load varies between runs: for the record "
        "only). Load: the 1-minute load average at the start of each run (2 cores).",
        "",
        *([results["note"], ""] if results.get("note") else []),
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in results["runs"]):
        timing = results["timing"].get(dataset, {})
        lines += [f"## {dataset}", "",
                  "| agent | normalised score | seeds | action | ms / step | vs d3rlpy | load |",
                  "| --- | ---: | ---: | --- | ---: | ---: | ---: |"]  # fmt: skip
        for agent in AGENTS:
            runs = [r for r in results["runs"] if r["dataset"] == dataset and r["agent"] == agent]
            if not runs:
                continue
            score, se = mean_se([r["score"] for r in runs])
            train_ms = np.mean([r["train_ms_per_step"] for r in runs])
            ms = f"{timing[agent]:.1f} ({train_ms:.1f})" if agent in timing else f"({train_ms:.1f})"
            base = next((b for key, b in BASELINE.items() if key in agent), None)
            ratio = f"{timing[agent] / timing[base]:.2f}x" if base in timing and agent in timing else ""
            loads = ", ".join(f"{r['load']:.1f}" for r in runs)
            se_text = f" ± {se:.1f}" if len(runs) > 1 else ""
            action = ", ".join(dict.fromkeys(r["action"] for r in runs if r.get("action")))
            lines.append(f"| {agent} | {score:.1f}{se_text} | {len(runs)} | {action} | {ms} | {ratio} | {loads} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["hopper-medium-replay", "walker2d-medium-replay",
                                                         "hopper-medium-expert", "walker2d-medium-expert"])  # fmt: skip
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=AGENTS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=20_000, help="gradient steps per run (default: 20000)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "runs" / "offline-data")
    parser.add_argument("--data-steps", type=int, default=200_000, help="size of generated datasets")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench-offline", help="rlgen run folders")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help="rlgen runs trained at once by the sweep (1: one after another, without Ray)")  # fmt: skip
    parser.add_argument("--timing", action="store_true", help="measure ms / step instead of training")
    parser.add_argument("--timing-rounds", type=int, default=10)
    parser.add_argument(
        "--note", help="record this Markdown text under the report's header (replacing the one recorded) and exit"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)  # both libraries on one thread: small MLPs on a shared CPU, and a fair comparison
    results = load_results(args.out / "offline.json", args)
    if args.note is not None:
        results["note"] = args.note
        save(results, args.out)
        return 0
    if args.timing:
        for dataset in args.datasets:
            task = parse_dataset_name(dataset)[0]
            data = load_training_data(task, dataset_path(args.data_dir, dataset, args.data_steps))
            steps = training_steps(task, data, args.steps)
            results["timing"][dataset] = interleaved_ms_per_step(steps, args.timing_rounds, TIMING_BLOCK)
            save(results, args.out)
            print(json.dumps(results["timing"][dataset], indent=1), flush=True)
        return 0
    paths = {dataset: dataset_path(args.data_dir, dataset, args.data_steps) for dataset in args.datasets}
    rlgen_agents = [agent for agent in args.agents if agent in RLGEN_RECIPES]
    if rlgen_agents:
        results["runs"] += rlgen_rows(rlgen_agents, paths, args.seeds, results, args)
        save(results, args.out)
    for seed in args.seeds:
        for dataset, path in paths.items():
            task = parse_dataset_name(dataset)[0]
            for agent in (agent for agent in args.agents if agent in D3RLPY):
                if any((r["dataset"], r["agent"], r["seed"]) == (dataset, agent, seed) for r in results["runs"]):
                    continue
                load = os.getloadavg()[0]
                start = time.time()
                run = d3rlpy_run(agent, path, task, seed, args)
                minutes = (time.time() - start) / 60
                results["runs"].append({"dataset": dataset, "agent": agent, "seed": seed, **run, "load": load,
                                        "minutes": minutes, "date": time.strftime("%F %T")})  # fmt: skip
                save(results, args.out)
                print(f"{dataset} {agent} seed {seed}: score {run['score']:.1f}, "
                      f"{run['train_ms_per_step']:.1f} ms/step, load {load:.1f}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
