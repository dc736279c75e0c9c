"""rlgen eval: evaluate a run's newest (or a given) checkpoint and write results.json in the run.

An agent that acts is scored by episodes in its task; a generative model (rlgen generative train) by its
held-out bits/dim.

rlgen eval runs/bc-dlml/hopper-medium/seed0-...                 # 10 episodes, the run's evaluation seed
rlgen eval RUN --episodes 50 --video                             # and an mp4 of one episode (render extra)
rlgen eval RUN --checkpoint best --out best.json                 # the best evaluation during training
rlgen eval RUN --checkpoint RUN/checkpoints/step_00010000.pt --out step10k.json
rlgen eval RUN --action mode --out mode.json                     # a BC / IQL / GAIL agent acting with another action
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rlgen.commands.help import add_command
from rlgen.commands.run_options import int_at_least


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "eval", "evaluate a trained run and write results.json", __doc__)
    parser.add_argument("run_dir", help="a run directory written by rlgen train, imitate or generative train")
    parser.add_argument("--checkpoint", default="last", metavar="best|last|PATH",
                        help="last (the run's newest checkpoint, default), best (its best evaluation during "
                        "training) or a checkpoint file")  # fmt: skip
    parser.add_argument("--episodes", type=int_at_least(1), help="episodes (default: the run's train.eval_episodes)")
    parser.add_argument(
        "--seed", type=int_at_least(0), help="episode i resets with seed + i (default: train.eval_seed)"
    )
    parser.add_argument(
        "--envs", type=int_at_least(1), help="environments stepped side by side (default: train.eval_envs)"
    )
    parser.add_argument("--async-envs", action="store_true", default=None, help="step each environment in a "
                        "worker process of its own (default: train.eval_async)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="results JSON (default: RUN_DIR/results.json, replaced if there)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out file")
    parser.add_argument("--action", metavar="mode|mean|peak", help="the deterministic action of a BC, IQL or GAIL "
                        "agent (default: its recipe's agent.action)")  # fmt: skip
    parser.add_argument("--peak-width", type=float, metavar="FRACTION", help="the window of --action peak, as a "
                        "fraction of the action box (default: its recipe's agent.peak_width)")  # fmt: skip
    parser.add_argument("--video", action="store_true", help="also write RUN_DIR/episode.mp4 of one episode")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rlgen.data.atomic import check_writable
    from rlgen.rollout import record_video
    from rlgen.runs import act_with, acts, evaluate_agent, load_agent
    from rlgen.train import Agent, RunDir

    run_path = RunDir(args.run_dir).path
    # The default results.json is rlgen's own output in the run folder: a new evaluation replaces it.
    out, force = (args.out, args.force) if args.out is not None else (run_path / "results.json", True)
    agent, subject, config, step = load_agent(args.run_dir, args.checkpoint, args.device)
    if args.video and not acts(config.recipe.agent_class):
        raise ValueError(f"--video records an episode in a task; {run_path} is a generative run (its samples are "
                         f"in the run folder)")  # fmt: skip
    if args.action is not None or args.peak_width is not None:
        act_with(agent, args.action, args.peak_width)
    check_writable(out, force)  # before evaluating, so a taken --out costs no episodes
    train = config.recipe.train
    result = evaluate_agent(agent, subject, train, step, args.episodes, args.seed, args.envs, args.async_envs,
                            progress=not args.no_progress)  # fmt: skip
    result.write(out, force=force)
    print(f"step {step}: {result.summary()}")
    print(f"results written to {out}")
    if args.video and isinstance(agent, Agent):
        seed = train.eval_seed if args.seed is None else args.seed
        video = record_video(agent.eval_policy(), subject, run_path / "episode.mp4", seed)
        if video is not None:
            print(f"video written to {video}")
    return 0
