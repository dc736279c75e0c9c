"""Benchmark: SB3 PPO (or A2C, sb3-contrib TRPO) with a Gaussian (SB3's own MlpPolicy) vs rlgen DLML vs rlgen
AdaCat action heads.

Same hyperparameters (the algorithm's SB3 defaults), same step budget and seeds for every head, measured side by
side in one process. Reports the final policy's mean return (separate eval env; deterministic actions,
stochastic ones, and the distribution's mean as the action), training env-steps/s and the seconds each head's
policy updates take, relative to the Gaussian's.

    python scripts/bench_sb3_heads.py                                # Hopper-v5 + HalfCheetah-v5, 3 seeds, 50k steps
    python scripts/bench_sb3_heads.py --steps 100000 --envs Hopper-v5 --label after
    python scripts/bench_sb3_heads.py --algo trpo --steps 20000 --envs InvertedPendulum-v5
    python scripts/bench_sb3_heads.py --heads adacat --head-set adacat.num_bins=11 --label adacat-11-bins
    python scripts/bench_sb3_heads.py --heads adacat --head-set adacat.output_scale=auto --label adacat-scaled
    python scripts/bench_sb3_heads.py --algo trpo --algo-set cg_damping=0.01 --label damping-0.01

Resumable: runs already in the output JSON (same algorithm, env, head, seed, steps and label) are kept and not
run again, so a stopped benchmark continues; several invocations (labels, algorithms, envs, seeds), one after another
or at once, share one table (merged under a file lock).
Writes benchmarks/sb3_heads.json and benchmarks/sb3_heads.md.
"""

from __future__ import annotations

import argparse
import fcntl
import inspect
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch
import yaml
from bench_notes import with_notes
from sb3_contrib import TRPO
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from tqdm import tqdm

from rlgen.config import apply_overrides
from rlgen.heads import DLMLHeadConfig
from rlgen.sb3 import ADACAT_POLICY_HEAD, AdaCatPolicy, DLMLPolicy, HeadPolicy

# Policy class and policy_kwargs per head; the Gaussian is SB3's default policy, the baseline users know.
HEADS: dict[str, tuple[Any, dict[str, Any]]] = {
    "gaussian": ("MlpPolicy", {}),
    "dlml": (DLMLPolicy, {"head": DLMLHeadConfig(num_mixtures=3, num_classes=256)}),
    "adacat": (AdaCatPolicy, {"head": ADACAT_POLICY_HEAD}),
}
ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "trpo": TRPO}
#: the options ``--head-set`` passes to the policy rather than to its head's config.
POLICY_OPTIONS = tuple(
    name
    for name, parameter in inspect.signature(HeadPolicy.__init__).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name != "head"
)
RUN_KEY = ("algo", "env", "head", "seed", "steps", "label")
#: SB3 logger values of each policy update averaged over the run (PPO's clip fraction and approximate KL, the
#: entropy term, TRPO's KL and line-search success); a key the algorithm does not log is left out.
TRAIN_STATS = ("clip_fraction", "approx_kl", "entropy_loss", "kl_divergence_loss", "is_line_search_success")
#: the Markdown after this line is kept when the table is rewritten (findings written by hand).


@dataclass
class Args:
    envs: list[str] = field(default_factory=lambda: ["Hopper-v5", "HalfCheetah-v5"])
    heads: list[str] = field(default_factory=lambda: list(HEADS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    algo: str = "ppo"
    steps: int = 50_000
    eval_episodes: int = 10
    threads: int = 1
    label: str = "current"
    out: Path = Path("benchmarks/sb3_heads")
    save_dir: Path | None = None
    head_set: list[str] = field(default_factory=list)
    algo_set: list[str] = field(default_factory=list)


def parse_args() -> Args:
    defaults = Args()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=defaults.envs)
    parser.add_argument("--heads", nargs="+", choices=list(HEADS), default=defaults.heads)
    parser.add_argument("--seeds", nargs="+", type=int, default=defaults.seeds)
    parser.add_argument("--algo", choices=list(ALGOS), default=defaults.algo)
    parser.add_argument("--steps", type=int, default=defaults.steps, help="env steps of training per run")
    parser.add_argument("--eval-episodes", type=int, default=defaults.eval_episodes)
    parser.add_argument("--threads", type=int, default=defaults.threads, help="torch threads")
    parser.add_argument("--label", default=defaults.label, help="names this code version in the table")
    parser.add_argument("--out", type=Path, default=defaults.out, help="output path without suffix")
    parser.add_argument("--save-dir", type=Path, default=None, help="save each final model here (.zip)")
    parser.add_argument("--head-set", nargs="+", default=[], metavar="HEAD.KEY=VALUE",
                        help="set an rlgen head's or its policy's option for this invocation (e.g. "
                        "adacat.width_grad_scale=0, adacat.output_scale=auto); "
                        "give the variant its own --label")  # fmt: skip
    parser.add_argument("--algo-set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="set an algorithm argument for every head (e.g. cg_damping=0.01 for TRPO); give the "
                        "variant its own --label")  # fmt: skip
    args = Args(**vars(parser.parse_args()))
    if len(args.seeds) < 1 or args.steps < 1:
        parser.error("need at least one seed and a positive --steps")
    try:
        head_options(args.head_set)
        algo_options(args.algo_set)
    except ValueError as error:
        parser.error(str(error))
    return args


def head_options(head_set: list[str]) -> dict[str, tuple[Any, dict[str, Any]]]:
    """:data:`HEADS` with ``HEAD.KEY=VALUE`` options applied: a :class:`HeadPolicy` option (:data:`POLICY_OPTIONS`)
    to the policy's kwargs, any other key to the rlgen head's config."""
    heads = dict(HEADS)
    for item in head_set:
        name, _, override = item.partition(".")
        if name not in HEADS or "head" not in HEADS[name][1]:
            rlgen_heads = [head for head, (_, kwargs) in HEADS.items() if "head" in kwargs]
            raise ValueError(f"--head-set {item!r}: the head must be one of {rlgen_heads}")
        policy, kwargs = heads[name]
        if override.partition("=")[0] in POLICY_OPTIONS:
            key, value = key_value(override, "--head-set")
            heads[name] = (policy, {**kwargs, key: value})
        else:
            heads[name] = (policy, {**kwargs, "head": apply_overrides(kwargs["head"], [override], where=name)})
    return heads


def algo_options(algo_set: list[str]) -> dict[str, Any]:
    """The algorithm's keyword arguments from ``KEY=VALUE`` items."""
    return dict(key_value(item, "--algo-set") for item in algo_set)


def key_value(item: str, flag: str) -> tuple[str, Any]:
    """The keyword argument a ``KEY=VALUE`` item of ``flag`` names, its value read as YAML."""
    key, equals, text = item.partition("=")
    if not equals or not key.isidentifier():
        raise ValueError(f"{flag} {item!r}: expected KEY=VALUE")
    return key, yaml.safe_load(text)


class MeanActor:
    """Acts with the mean of ``model``'s action distribution (clipped to the box), for ``evaluate_policy``."""

    def __init__(self, model: BaseAlgorithm):
        self.model = model

    def predict(self, observation: np.ndarray, *args: Any, **kwargs: Any) -> tuple[np.ndarray, None]:
        policy = self.model.policy
        with torch.no_grad():
            obs, _ = policy.obs_to_tensor(observation)
            mean = policy.get_distribution(obs).distribution.mean.cpu().numpy()
        return np.clip(mean, policy.action_space.low, policy.action_space.high), None


def evaluate(model: BaseAlgorithm, env_id: str, seed: int, episodes: int, action: str) -> float:
    """Mean return over ``episodes`` with the ``action`` ``deterministic`` (SB3's), ``stochastic`` or ``mean``."""
    eval_env = Monitor(gym.make(env_id))  # SB3's evaluate_policy reads whole episodes from the Monitor
    eval_env.reset(seed=10_000 + seed)
    actor = MeanActor(model) if action == "mean" else model
    mean_return, _ = evaluate_policy(actor, eval_env, n_eval_episodes=episodes, deterministic=action != "stochastic")
    eval_env.close()
    return float(mean_return)


def timed_update(model: BaseAlgorithm, seconds: list[float], stats: dict[str, list[float]]) -> Callable[[], None]:
    """``model.train`` adding its wall time to ``seconds[0]`` and the :data:`TRAIN_STATS` it logs to ``stats``."""
    train = model.train

    def wrapper() -> None:
        start = time.perf_counter()
        train()
        seconds[0] += time.perf_counter() - start
        for key in TRAIN_STATS:
            value = model.logger.name_to_value.get(f"train/{key}")
            if value is not None:
                stats.setdefault(key, []).append(float(value))

    return wrapper


def train_side_by_side(env_id: str, seed: int, heads: list[str], args: Args) -> list[dict[str, Any]]:
    """Train one agent per head with the same seed, in turn one rollout at a time, then evaluate each.

    Taking turns every rollout (``learn(n_steps, reset_num_timesteps=False)`` continues the same run: same env
    state, same counters; SB3's default schedules are constant) makes load from other processes fall on every
    head alike, so the speed columns compare like with like.

    :param env_id: gymnasium id.
    :param seed: seeds the algorithms, the training envs and the eval env.
    :param heads: the heads to train.
    :param args: algorithm, budget and evaluation settings.
    """
    algo = ALGOS[args.algo]
    specs = head_options(args.head_set)
    options = algo_options(args.algo_set)
    models = {head: algo(specs[head][0], env_id, seed=seed, policy_kwargs=specs[head][1], **options) for head in heads}
    seconds = {head: 0.0 for head in models}
    update_seconds = {head: [0.0] for head in models}
    stats: dict[str, dict[str, list[float]]] = {head: {} for head in models}
    for head, model in models.items():
        # learn() calls self.train() after each rollout
        model.train = timed_update(model, update_seconds[head], stats[head])
    bar = tqdm(total=args.steps * len(models), unit="step", desc=f"{args.algo} {env_id} seed {seed}", mininterval=10)
    while any(model.num_timesteps < args.steps for model in models.values()):
        for head, model in models.items():
            start = time.perf_counter()
            before = model.num_timesteps
            turn = model.n_steps * -(-2048 // model.n_steps)  # whole rollouts, about 2048 steps (A2C's are 5)
            model.learn(total_timesteps=turn, reset_num_timesteps=model.num_timesteps == 0)
            seconds[head] += time.perf_counter() - start
            bar.update(model.num_timesteps - before)
    bar.close()
    runs = []
    for head, model in models.items():
        del model.train  # the timing wrapper: the class's method again
        if args.save_dir is not None:
            model.save(args.save_dir / f"{args.algo}-{env_id}-{head}-{seed}-{args.label}.zip")
        updates = model.num_timesteps // model.n_steps
        runs.append({
            "algo": args.algo, "env": env_id, "head": head, "seed": seed, "steps": args.steps, "label": args.label,
            "env_steps": model.num_timesteps,
            "final_return": evaluate(model, env_id, seed, args.eval_episodes, "deterministic"),
            "final_return_stochastic": evaluate(model, env_id, seed, args.eval_episodes, "stochastic"),
            "final_return_mean_action": evaluate(model, env_id, seed, args.eval_episodes, "mean"),
            "train_seconds": seconds[head], "env_steps_per_s": model.num_timesteps / seconds[head],
            "update_seconds": update_seconds[head][0] / updates,
            "policy_kwargs": str(specs[head][1]), "algo_kwargs": options,
            "train_stats": {key: {"mean": float(np.mean(values)), "last": values[-1]}
                            for key, values in stats[head].items()},
        })  # fmt: skip
    return runs


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean, standard deviation and standard error over seeds per (algo, steps, env, label, head); update cost
    relative to the Gaussian of the same group."""
    rows = []
    groups = dict.fromkeys((r["algo"], r["steps"], r["env"], r["label"]) for r in runs)
    for algo, steps, env_id, label in groups:
        same = [r for r in runs if (r["algo"], r["steps"], r["env"], r["label"]) == (algo, steps, env_id, label)]
        heads = dict.fromkeys(r["head"] for r in same)
        mean_update = {h: float(np.mean([r["update_seconds"] for r in same if r["head"] == h])) for h in heads}
        for head in heads:
            group = [r for r in same if r["head"] == head]
            returns = np.array([r["final_return"] for r in group])
            stochastic = np.array([r["final_return_stochastic"] for r in group])
            mean_action = [r["final_return_mean_action"] for r in group if "final_return_mean_action" in r]
            logged = [r.get("train_stats", {}) for r in group]
            stat_keys = [key for key in TRAIN_STATS if all(key in run_stats for run_stats in logged)]
            rows.append({
                "algo": algo, "steps": steps, "env": env_id, "label": label, "head": head, "seeds": len(group),
                "return_mean": float(returns.mean()), "return_std": float(returns.std(ddof=1)) if len(group) > 1
                else 0.0, "return_per_seed": returns.round(1).tolist(),
                "stochastic_mean": float(stochastic.mean()),
                "mean_action_mean": float(np.mean(mean_action)) if mean_action else None,
                "env_steps_per_s": float(np.mean([r["env_steps_per_s"] for r in group])),
                "update_seconds": mean_update[head],
                "update_vs_gaussian": mean_update[head] / mean_update["gaussian"] if "gaussian" in heads else None,
                "train_stats": {key: float(np.mean([run_stats[key]["mean"] for run_stats in logged]))
                                for key in stat_keys},
                "final_entropy": float(-np.mean([run_stats["entropy_loss"]["last"] for run_stats in logged]))
                if "entropy_loss" in stat_keys else None,
            })  # fmt: skip
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
    m = report["machine"]
    lines = [
        "# SB3 on-policy RL: Gaussian vs DLML vs AdaCat action heads",
        "",
        f"Machine: {m['cpu']}, {m['cpu_count']} CPUs (shared), {m['torch_threads']} torch thread(s), "
        f"torch {m['torch']}, SB3 {m['stable_baselines3']}. Each algorithm with its SB3 defaults; heads: "
        + "; ".join(
            f"{name} = `{spec['policy']}` {spec['policy_kwargs']}".rstrip() for name, spec in report["heads"].items()
        )  # fmt: skip
        + ". Final return: mean of the eval episodes of the final policy (deterministic action; stochastic in its "
        "own column; mean action: the distribution's mean, clipped), mean ± standard deviation over seeds (SE: "
        "standard error). Update s: wall seconds of one policy update (after each rollout), the heads of a seed "
        "trained in turn one rollout at a time. Clip fraction and KL (PPO's approximate KL, TRPO's KL of each "
        "step): SB3's logged values averaged over the updates and seeds; entropy: after the last update (SB3's "
        "-log pi estimate where the head gives none).",
        "",
        "| algo | steps | env | code | head | seeds | final return | SE | per seed | stochastic | mean action "
        "| clip fraction | KL | entropy | env-steps/s | update s | update / Gaussian |",
        "| --- | ---: | --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
    ]
    for row in report["summary"]:
        per_seed = ", ".join(f"{x:.0f}" for x in row["return_per_seed"])
        ratio = "" if row["update_vs_gaussian"] is None else f"{row['update_vs_gaussian']:.2f}"
        stderr = row["return_std"] / np.sqrt(row["seeds"])
        mean_action = "" if row["mean_action_mean"] is None else f"{row['mean_action_mean']:.0f}"
        logged = row.get("train_stats", {})
        clip = f"{logged['clip_fraction']:.3f}" if "clip_fraction" in logged else ""
        kl = logged.get("approx_kl", logged.get("kl_divergence_loss"))
        entropy = row.get("final_entropy")
        entropy_text = "" if entropy is None else f"{entropy:.2f}"
        lines.append(
            f"| {row['algo']} | {row['steps']:,} | {row['env']} | {row['label']} | {row['head']} | {row['seeds']} "
            f"| {row['return_mean']:.0f} ± {row['return_std']:.0f} | {stderr:.0f} | {per_seed} "
            f"| {row['stochastic_mean']:.0f} | {mean_action} | {clip} | {'' if kl is None else f'{kl:.4f}'} "
            f"| {entropy_text} | {row['env_steps_per_s']:.0f} "
            f"| {row['update_seconds']:.2f} | {ratio} |"
        )
    lines += ["", "Commands:", ""] + [f"- `{command}`" for command in report["commands"]]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def load_previous(path: Path) -> dict[str, Any]:
    """The runs and commands of an earlier report at ``path`` (empty if there is none)."""
    if not path.exists():
        return {"runs": [], "commands": []}
    previous = json.loads(path.read_text())
    runs = [r for r in previous.get("runs", []) if all(key in r for key in RUN_KEY)]
    return {"runs": runs, "commands": previous.get("commands", [])}


def save(args: Args, new_runs: list[dict], command: str) -> dict[str, Any]:
    """Merge ``new_runs`` and ``command`` into the JSON at ``--out`` and rewrite its Markdown; returns the report.
    Read, merge and write happen under a file lock, so several processes (seeds, envs) can share one table."""
    json_path = args.out.with_suffix(".json")
    with open(args.out.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        table = load_previous(json_path)
        keys = {run_key(r) for r in new_runs}
        runs = [r for r in table["runs"] if run_key(r) not in keys] + new_runs
        report = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
            "eval_episodes": args.eval_episodes, "commands": list(dict.fromkeys([*table["commands"], command])),
            "heads": {name: {"policy": getattr(p, "__name__", p), "policy_kwargs": str(kw) if kw else ""}
                      for name, (p, kw) in HEADS.items()},
            "summary": summarise(runs), "runs": runs,
        }  # fmt: skip
        write_atomic(json_path, json.dumps(report, indent=2, default=str) + "\n")
        write_atomic(args.out.with_suffix(".md"), with_notes(args.out.with_suffix(".md"), markdown(report)))
    return report


def run_key(run: dict) -> tuple:
    return tuple(run[k] for k in RUN_KEY)


def main() -> None:
    args = parse_args()
    # Small MLPs run fastest on one thread on a 2-core CPU.
    torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    command = f"{shlex.join([sys.executable.rsplit('/', 1)[-1], *sys.argv])} (commit {commit or 'unknown'})"
    report: dict[str, Any] = save(args, [], command)
    for seed in args.seeds:
        for env_id in args.envs:
            runs = load_previous(args.out.with_suffix(".json"))["runs"]  # other processes may have added some
            done = {
                r["head"] for r in runs if run_key(r) == (args.algo, env_id, r["head"], seed, args.steps, args.label)
            }
            todo = [head for head in args.heads if head not in done]
            new_runs = train_side_by_side(env_id, seed, todo, args) if todo else []
            for run in new_runs:
                print(
                    f"{args.algo} {env_id:16s} {run['head']:8s} seed {seed}: return {run['final_return']:8.1f} "
                    f"(stochastic {run['final_return_stochastic']:8.1f})  {run['env_steps_per_s']:6.0f} env-steps/s  "
                    f"{run['update_seconds']:.2f} s/update",
                    flush=True,
                )
            # Saved after every (seed, env): a long run that is stopped keeps what it measured.
            report = save(args, new_runs, command)
    print(markdown(report))


if __name__ == "__main__":
    main()
