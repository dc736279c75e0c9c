"""Benchmark: SB3 PPO with a Gaussian (SB3's own MlpPolicy) vs rlgen DLML vs rlgen AdaCat action heads.

Same PPO hyperparameters (SB3 defaults), same step budget and seeds for every head, measured side by side in
one run. Reports the final policy's mean return (deterministic, separate eval env) and training env-steps/s.

    python scripts/bench_sb3_heads.py                        # Hopper-v5 + HalfCheetah-v5, 3 seeds, 50k steps
    python scripts/bench_sb3_heads.py --steps 20000 --envs Hopper-v5

Writes benchmarks/sb3_heads.json and benchmarks/sb3_heads.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch
from bench_notes import with_notes
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy

from rlgen.heads import AdaCatHeadConfig, DLMLHeadConfig
from rlgen.sb3 import AdaCatPolicy, DLMLPolicy

# Policy class and policy_kwargs per head; the Gaussian is SB3's default PPO policy, the baseline users know.
HEADS: dict[str, tuple[Any, dict[str, Any]]] = {
    "gaussian": ("MlpPolicy", {}),
    "dlml": (DLMLPolicy, {"head": DLMLHeadConfig(num_mixtures=3, num_classes=256)}),
    "adacat": (AdaCatPolicy, {"head": AdaCatHeadConfig(num_bins=32)}),
}


@dataclass
class Args:
    envs: list[str] = field(default_factory=lambda: ["Hopper-v5", "HalfCheetah-v5"])
    heads: list[str] = field(default_factory=lambda: list(HEADS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    steps: int = 50_000
    eval_episodes: int = 10
    threads: int = 1
    out: Path = Path("benchmarks/sb3_heads")


def parse_args() -> Args:
    defaults = Args()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=defaults.envs)
    parser.add_argument("--heads", nargs="+", choices=list(HEADS), default=defaults.heads)
    parser.add_argument("--seeds", nargs="+", type=int, default=defaults.seeds)
    parser.add_argument("--steps", type=int, default=defaults.steps, help="env steps of training per run")
    parser.add_argument("--eval-episodes", type=int, default=defaults.eval_episodes)
    parser.add_argument("--threads", type=int, default=defaults.threads, help="torch threads")
    parser.add_argument("--out", type=Path, default=defaults.out, help="output path without suffix")
    args = Args(**vars(parser.parse_args()))
    if len(args.seeds) < 1 or args.steps < 1:
        parser.error("need at least one seed and a positive --steps")
    return args


def train_side_by_side(env_id: str, seed: int, args: Args) -> list[dict[str, Any]]:
    """Train one PPO agent per head with the same seed, in turn one rollout at a time, then evaluate each.

    Taking turns every rollout (``learn(n_steps, reset_num_timesteps=False)`` continues the same run: same env
    state, same counters; SB3's default schedules are constant) makes load from other processes fall on every
    head alike, so the env-steps/s columns compare like with like.

    :param env_id: gymnasium id.
    :param seed: seeds the algorithms, the training envs and the eval env.
    :param args: heads, budget and evaluation settings.
    """
    models = {head: PPO(HEADS[head][0], env_id, seed=seed, policy_kwargs=HEADS[head][1]) for head in args.heads}
    seconds = dict.fromkeys(models, 0.0)
    while any(model.num_timesteps < args.steps for model in models.values()):
        for head, model in models.items():
            start = time.perf_counter()
            model.learn(total_timesteps=model.n_steps, reset_num_timesteps=model.num_timesteps == 0)
            seconds[head] += time.perf_counter() - start
    runs = []
    for head, model in models.items():
        eval_env = gym.make(env_id)
        eval_env.reset(seed=10_000 + seed)
        mean_return, std_return = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes,
                                                  deterministic=True)  # fmt: skip
        eval_env.close()
        runs.append({
            "env": env_id, "head": head, "seed": seed, "steps": model.num_timesteps,
            "final_return": float(mean_return), "final_return_std": float(std_return),
            "train_seconds": seconds[head], "env_steps_per_s": model.num_timesteps / seconds[head],
        })  # fmt: skip
    return runs


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds per (env, head)."""
    rows = []
    for env_id in dict.fromkeys(r["env"] for r in runs):
        for head in dict.fromkeys(r["head"] for r in runs):
            group = [r for r in runs if r["env"] == env_id and r["head"] == head]
            if not group:
                continue
            returns = np.array([r["final_return"] for r in group])
            speed = np.array([r["env_steps_per_s"] for r in group])
            rows.append(
                {
                    "env": env_id,
                    "head": head,
                    "seeds": len(group),
                    "return_mean": float(returns.mean()),
                    "return_std": float(returns.std()),
                    "return_per_seed": returns.round(1).tolist(),
                    "env_steps_per_s": float(speed.mean()),
                }
            )
    return rows


def machine() -> dict[str, Any]:
    model_name = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        model_name = names[0] if names else model_name
    return {
        "cpu": model_name,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "gymnasium": gym.__version__,
        "platform": platform.platform(),
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# SB3 PPO: Gaussian vs DLML vs AdaCat action heads",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']['cpu']}, {report['machine']['cpu_count']} CPUs, "
        f"{report['machine']['torch_threads']} torch thread(s), torch {report['machine']['torch']}, "
        f"SB3 {report['machine']['stable_baselines3']}  ",
        f"Date: {report['date']}. PPO with SB3 defaults, {report['steps']} env steps per run (whole rollouts of 2048); "
        f"final return = mean of {report['eval_episodes']} deterministic episodes of the final policy; env-steps/s "
        "includes PPO updates, the heads of a seed trained in turn one rollout at a time.",
        "",
        "| env | head | seeds | final return (mean ± std over seeds) | per seed | env-steps/s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in report["summary"]:
        per_seed = ", ".join(f"{x:.0f}" for x in row["return_per_seed"])
        lines.append(
            f"| {row['env']} | {row['head']} | {row['seeds']} | {row['return_mean']:.1f} ± "
            f"{row['return_std']:.1f} | {per_seed} | {row['env_steps_per_s']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main() -> None:
    args = parse_args()
    # Small MLPs run fastest on one thread on a 2-core CPU.
    torch.set_num_threads(args.threads)
    runs = []
    for seed in args.seeds:
        for env_id in args.envs:
            for run in train_side_by_side(env_id, seed, args):
                runs.append(run)
                print(
                    f"{env_id:16s} {run['head']:8s} seed {seed}: return {run['final_return']:8.1f}  "
                    f"{run['env_steps_per_s']:6.0f} env-steps/s",
                    flush=True,
                )
            report = {
                "command": shlex.join([sys.executable.rsplit("/", 1)[-1], *sys.argv]),
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": machine(), "steps": args.steps, "eval_episodes": args.eval_episodes,
                "heads": {name: {"policy": getattr(p, "__name__", p), "policy_kwargs": kw}
                          for name, (p, kw) in HEADS.items()},
                "summary": summarise(runs), "runs": runs,
            }  # fmt: skip
            # Rewritten after every (seed, env): a long run that is stopped keeps what it measured.
            write_atomic(args.out.with_suffix(".json"), json.dumps(report, indent=2, default=str) + "\n")
            write_atomic(args.out.with_suffix(".md"), with_notes(args.out.with_suffix(".md"), markdown(report)))
    print(markdown(report))


if __name__ == "__main__":
    main()
