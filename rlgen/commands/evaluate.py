"""``rlgen eval``: evaluate a run's newest (or a given) checkpoint and write ``results.json`` in the run.

rlgen eval runs/bc-dlml/hopper-medium/seed0-...                 # 10 episodes, the run's evaluation seed
rlgen eval RUN --episodes 50 --video                             # and an mp4 of one episode (render extra)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rlgen.rollout import evaluate, record_video
from rlgen.train import RunDir, load_agent


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a trained run and write results.json",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", help="a run directory written by `rlgen train`")
    parser.add_argument("--checkpoint", help="checkpoint file (default: the run's newest)")
    parser.add_argument("--episodes", type=int, help="episodes (default: the run's train.eval_episodes)")
    parser.add_argument("--seed", type=int, help="episode i resets with seed + i (default: train.eval_seed)")
    parser.add_argument("--envs", type=int, default=10, help="environments stepped side by side (default: 10)")
    parser.add_argument("--out", type=Path, help="results JSON (default: RUN_DIR/results.json)")
    parser.add_argument("--video", action="store_true", help="also write RUN_DIR/episode.mp4 of one episode")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    agent, task, config, step = load_agent(args.run_dir, args.checkpoint, args.device)
    train = config.recipe.train
    episodes = train.eval_episodes if args.episodes is None else args.episodes
    seed = train.eval_seed if args.seed is None else args.seed
    result = evaluate(agent.eval_policy(), task, episodes, seed, num_envs=args.envs, step=step)
    path = result.write(args.out or RunDir(args.run_dir).path / "results.json")
    print(f"step {step}: {result.summary()}")
    print(f"results written to {path}")
    if args.video:
        video = record_video(agent.eval_policy(), task, RunDir(args.run_dir).path / "episode.mp4", seed)
        if video is not None:
            print(f"video written to {video}")
    return 0
