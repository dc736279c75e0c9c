"""PPO from Stable-Baselines3 with an rlgen DLML action head, on InvertedPendulum-v5 by default.

    python scripts/sb3_dlml_ppo.py                      # short default budget, prints the final mean return
    python scripts/sb3_dlml_ppo.py --steps 100000 --save runs/dlml_ppo.zip

The policy is SB3's own actor-critic with the Gaussian replaced by a discretised logistic mixture
(``rlgen.sb3.DLMLPolicy``); the head's options travel in ``policy_kwargs`` and are saved with the model.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy

from rlgen.heads import DLMLHeadConfig
from rlgen.sb3 import DLMLPolicy


@dataclass
class Args:
    env: str = "InvertedPendulum-v5"
    steps: int = 30_000
    seed: int = 0
    num_mixtures: int = 3
    num_classes: int = 256
    n_steps: int = 1024
    eval_episodes: int = 10
    save: str | None = None
    threads: int = 1


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in vars(Args()).items():
        kind = type(default) if default is not None else str
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default)
    return Args(**vars(parser.parse_args()))


def main() -> float:
    args = parse_args()
    # Small MLPs run fastest on one thread (two were slower on the reference 2-core machine).
    torch.set_num_threads(args.threads)
    model = PPO(
        DLMLPolicy,
        args.env,
        n_steps=args.n_steps,
        seed=args.seed,
        policy_kwargs={"head": DLMLHeadConfig(num_mixtures=args.num_mixtures, num_classes=args.num_classes)},
    )
    model.learn(total_timesteps=args.steps)
    if args.save:
        model.save(args.save)
    mean_return, std_return = evaluate_policy(
        model, model.get_env(), n_eval_episodes=args.eval_episodes, deterministic=True
    )
    print(
        f"{args.env}: PPO + DLML head, {args.steps} steps, seed {args.seed}: "
        f"mean return {mean_return:.1f} +- {std_return:.1f} over {args.eval_episodes} episodes"
    )
    return mean_return


if __name__ == "__main__":
    main()
