"""Benchmark: rlgen's online agents vs Stable-Baselines3, side by side in one run.

Cases (each library with the same hyperparameters, network sizes and number of envs):

* DQN on CartPole-v1: rl-baselines3-zoo's settings (MLP 256-256, rounds of 256 env steps / 128 gradient
  steps, target copied once per round, ε 1 -> 0.04 over 8k steps), rlgen with its Double-DQN default;
* A2C on CartPole-v1 and on a continuous task (InvertedPendulum-v5, Gaussian head in env units with a free
  log-std starting at 0, as SB3's):
  SB3's A2C defaults (8 envs x 5 steps, RMSprop 7e-4, n-step returns, MLP 64-64 tanh).

Both are evaluated by the same function (rlgen.rollout.evaluate: deterministic actions, episode i reset with
seed 100000 + i) every ``--eval-every`` environment steps; a run stops once the mean return over
``--eval-episodes`` episodes reaches the task's threshold. Reported per case over seeds: the environment steps
to reach it (median and mean over the seeds that did; how many did) and environment steps per second while
training (environment stepping and gradient updates; evaluation excluded).

    python scripts/bench_online.py --seeds 0 1 2 3 4                       # all cases
    python scripts/bench_online.py --cases dqn-cartpole --dqn-budget 50000 --seeds 0 1 2 3 4
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from bench_notes import with_notes

from rlgen.rollout import evaluate, make_env
from rlgen.runs import get_algo, load_recipe
from rlgen.tasks import TaskSpec, load_task
from rlgen.train import RunDir, fit, seed_everything

ROOT = Path(__file__).resolve().parents[1]
EVAL_SEED = 100_000
# SB3 counts DQN's target interval in env steps: the zoo's 10 copies the online net several times while each
# round of 256 env steps is collected, so the target is fixed through every round of 128 gradient steps, as
# rlgen's once-per-round copy (target_update_interval: 128 gradient steps) keeps it.
ZOO_TARGET_UPDATE = 10


@dataclass(frozen=True)
class Case:
    name: str
    algo: str  # rlgen recipe and SB3 class
    task: str
    threshold: float
    budget_flag: str  # the argparse attribute holding the env-step budget


CASES = {
    "dqn-cartpole": Case("dqn-cartpole", "dqn", "cartpole", 475.0, "dqn_budget"),
    "a2c-cartpole": Case("a2c-cartpole", "a2c", "cartpole", 475.0, "a2c_budget"),
    "a2c-invertedpendulum": Case("a2c-invertedpendulum", "a2c", "invertedpendulum", 950.0, "continuous_budget"),
}


class Solved(Exception):
    """Raised by an evaluation that reached the threshold: stops training early."""


class Tracker:
    """Evaluates a policy, records ``(env_steps, mean return)`` and the time spent evaluating."""

    def __init__(self, task: TaskSpec, episodes: int, threshold: float):
        self.task, self.episodes, self.threshold = task, episodes, threshold
        self.curve: list[tuple[int, float]] = []
        self.eval_seconds = 0.0

    def __call__(self, act: Callable[[np.ndarray], np.ndarray], env_steps: int) -> None:
        tick = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            result = evaluate(act, self.task, self.episodes, EVAL_SEED, num_envs=min(self.episodes, 10))
        self.eval_seconds += time.perf_counter() - tick
        self.curve.append((env_steps, float(result.return_mean)))
        if result.return_mean >= self.threshold:
            raise Solved

    def summary(self, env_steps: int, seconds: float) -> dict:
        solved = [s for s, r in self.curve if r >= self.threshold]
        return {"solved_at": solved[0] if solved else None, "env_steps": env_steps,
                "steps_per_second": env_steps / (seconds - self.eval_seconds), "curve": self.curve}  # fmt: skip


def run_rlgen(case: Case, seed: int, budget: int, eval_every: int, episodes: int, root: Path) -> dict:
    recipe = load_recipe(case.algo)
    agent_cfg = recipe.agent
    # train.steps and the intervals count environment steps
    overrides = [
        f"train.steps={budget}",
        f"train.seed={seed}",
        f"train.eval_every={eval_every}",
        f"train.checkpoint_every={budget}",
        f"train.log_every={eval_every}",
    ]
    train = recipe.with_overrides(overrides).train
    task = load_task(case.task)
    torch.set_num_threads(1)
    seed_everything(seed)
    agent = get_algo(case.algo).create(agent_cfg, task, None, torch.device("cpu"))
    tracker = Tracker(task, episodes, case.threshold)

    def evaluator(agent, step: int) -> dict[str, float]:
        tracker(agent.act, agent.collector.env_steps)
        return {"eval/return": tracker.curve[-1][1]}

    run = RunDir.create(root / f"rlgen-{case.name}-{seed}", {"case": case.name})
    tick = time.perf_counter()
    try:
        fit(agent, agent.sampler(None), train, run, evaluator, progress=False)
    except Solved:
        pass
    return tracker.summary(agent.collector.env_steps, time.perf_counter() - tick)


def run_sb3(case: Case, seed: int, budget: int, eval_every: int, episodes: int) -> dict:
    from stable_baselines3 import A2C, DQN
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    task = load_task(case.task)
    recipe = load_recipe(case.algo).agent
    torch.set_num_threads(1)
    if case.algo == "dqn":
        env = make_vec_env(lambda: make_env(task), n_envs=recipe.num_envs, seed=seed)
        model = DQN("MlpPolicy", env, learning_rate=recipe.lr, batch_size=load_recipe("dqn").train.batch_size,
                    buffer_size=recipe.buffer_size, learning_starts=recipe.learning_starts, gamma=recipe.gamma,
                    target_update_interval=ZOO_TARGET_UPDATE, train_freq=recipe.train_frequency,
                    gradient_steps=recipe.gradient_steps, exploration_fraction=recipe.epsilon_steps / budget,
                    exploration_final_eps=recipe.epsilon_end, policy_kwargs={"net_arch": list(recipe.hidden)},
                    seed=seed, device="cpu")  # fmt: skip
    else:
        env = make_vec_env(lambda: make_env(task), n_envs=recipe.num_envs, seed=seed)
        model = A2C("MlpPolicy", env, learning_rate=recipe.lr, n_steps=recipe.n_steps, gamma=recipe.gamma,
                    gae_lambda=recipe.gae_lambda, ent_coef=recipe.entropy_coef, vf_coef=recipe.value_coef,
                    max_grad_norm=recipe.grad_clip, seed=seed, device="cpu")  # fmt: skip
    tracker = Tracker(task, episodes, case.threshold)

    class Evaluate(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_eval = eval_every

        def _on_step(self) -> bool:
            if self.num_timesteps < self.next_eval:
                return True
            self.next_eval += eval_every
            try:
                tracker(lambda obs: model.predict(obs, deterministic=True)[0], self.num_timesteps)
            except Solved:
                return False
            return True

    tick = time.perf_counter()
    model.learn(total_timesteps=budget, callback=Evaluate())
    return tracker.summary(int(model.num_timesteps), time.perf_counter() - tick)


def aggregate(runs: list[dict]) -> dict:
    solved = [r["solved_at"] for r in runs if r["solved_at"] is not None]
    return {
        "solved": len(solved),
        "median_steps_to_solve": statistics.median(solved) if solved else None,
        "mean_steps_to_solve": statistics.fmean(solved) if solved else None,
        "steps_per_second": statistics.fmean(r["steps_per_second"] for r in runs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--dqn-budget", type=int, default=50_000, help="env steps per DQN run (default 50000)")
    parser.add_argument("--a2c-budget", type=int, default=200_000, help="env steps per CartPole A2C run")
    parser.add_argument("--continuous-budget", type=int, default=200_000, help="env steps per continuous run")
    parser.add_argument("--eval-every", type=int, default=5_000, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--libraries", nargs="+", default=["rlgen", "sb3"], choices=["rlgen", "sb3"])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of other cases already in <out>/online.json (each row names its command)",
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            case = CASES[name]
            budget = getattr(args, case.budget_flag)
            for library in args.libraries:
                runs = []
                for seed in args.seeds:
                    if library == "rlgen":
                        runs.append(run_rlgen(case, seed, budget, args.eval_every, args.eval_episodes, Path(tmp)))
                    else:
                        runs.append(run_sb3(case, seed, budget, args.eval_every, args.eval_episodes))
                    print(
                        f"{name} {library} seed {seed}: solved at {runs[-1]['solved_at']}, "
                        f"{runs[-1]['steps_per_second']:.0f} env steps/s",
                        flush=True,
                    )
                rows.append({"case": name, "library": library, "budget": budget, **aggregate(runs), "runs": runs})
                write_report(rows, args)  # after every case: a stopped benchmark keeps what it measured
    return 0


def write_report(rows: list[dict], args: argparse.Namespace) -> None:
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs (shared, loaded), torch {torch.__version__} "
        f"(1 thread), Python {platform.python_version()}"
    )
    command = "python scripts/bench_online.py " + " ".join(sys.argv[1:])
    settings = {"command": command, "machine": machine, "seeds": args.seeds, "eval_every": args.eval_every,
                "eval_episodes": args.eval_episodes}  # fmt: skip
    rows = [{**row, **settings} for row in rows]
    path = args.out / "online.json"
    if args.merge and path.is_file():
        ours = {row["case"] for row in rows}
        old = json.loads(path.read_text())
        shared = {k: old[k] for k in settings if k in old}  # files that kept the settings once, at the top
        rows = [{**row, **shared} for row in old["rows"] if row["case"] not in ours] + rows
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    fmt = lambda v: "—" if v is None else f"{v:,.0f}"  # noqa: E731
    lines = ["# Online RL: rlgen vs Stable-Baselines3", "",
             "Solved = mean return over the evaluation episodes (deterministic actions) >= 475 on CartPole-v1, "
             ">= 950 on InvertedPendulum-v5; env steps / s while training (evaluation excluded), mean over seeds.",
             "", "| case | library | solved | median env steps to solve | mean | env steps / s | budget |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['case']} | {r['library']} | {r['solved']}/{len(r['runs'])} | "
                     f"{fmt(r['median_steps_to_solve'])} | {fmt(r['mean_steps_to_solve'])} | "
                     f"{r['steps_per_second']:,.0f} | {r['budget']:,} |")  # fmt: skip
    lines += ["", "Runs (each row's seeds, evaluation every N env steps with E episodes):", ""]
    for command, machine, seeds, every, episodes in dict.fromkeys(
        (r["command"], r["machine"], tuple(r["seeds"]), r["eval_every"], r["eval_episodes"]) for r in rows
    ):
        cases = ", ".join(dict.fromkeys(r["case"] for r in rows if r["command"] == command))
        lines.append(f"- {cases}: `{command}` on {machine}; seeds {list(seeds)}, N={every:,}, E={episodes}")
    (args.out / "online.md").write_text(with_notes(args.out / "online.md", "\n".join(lines) + "\n"))


if __name__ == "__main__":
    sys.exit(main())
