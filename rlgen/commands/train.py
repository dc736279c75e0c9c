"""``rlgen train``: train an agent recipe on a dataset (or a task's default dataset), or resume a run.

rlgen train bc-dlml hopper-medium                          # agents/bc-dlml.yaml on rlgen/hopper/medium-v0
rlgen train bc-gaussian hopper-medium --set train.steps=20000 agent.hidden=[512,512]
rlgen train bc-dlml path/to/file.hdf5 --task hopper        # any D4RL file or Minari dataset
rlgen train dqn cartpole                                   # online agents (dqn, a2c, reinforce) act in the task
rlgen train --resume runs/bc-dlml/hopper-medium/seed0-...  # continue after a kill, same numbers
"""

from __future__ import annotations

import argparse

from rlgen.train import list_recipes, resume_run, start_run


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train an agent recipe on a dataset, or resume a run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("agent", nargs="?", help="agent recipe: a name in agents/ (bc-dlml, ...) or a .yaml path")
    parser.add_argument("target", nargs="?", help="dataset (<task>-<level>, Minari id or path) or task name "
                        "(offline agents then use <task>-medium)")  # fmt: skip
    parser.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override recipe values, e.g. train.steps=1000 agent.head=gaussian",
    )
    parser.add_argument("--task", help="task recipe of a dataset given by path (default: recorded in the dataset)")
    parser.add_argument("--run-dir", help="where to write the run (default: runs/<agent>/<dataset>/seed<k>-<time>)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its newest checkpoint")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda (default: auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    progress = not args.no_progress
    if args.resume:
        if args.agent or args.target or args.task or args.run_dir:
            raise ValueError("--resume takes the agent, dataset and run directory from the run; give only RUN_DIR")
        run_dir, result = resume_run(args.resume, args.overrides, device=args.device, progress=progress)
    else:
        if not (args.agent and args.target):
            raise ValueError(f"give an agent and a dataset or task, e.g. `rlgen train bc-dlml hopper-medium`; "
                             f"agents: {', '.join(list_recipes())}")  # fmt: skip
        run_dir, result = start_run(args.agent, args.target, args.overrides, run_dir=args.run_dir,
                                    device=args.device, task=args.task, progress=progress)  # fmt: skip
    resumed = f" (resumed at step {result.start_step})" if result.start_step else ""
    print(f"run {run_dir.path}: step {result.step}{resumed}")
    if "eval/score" in result.last_scalars:
        s = result.last_scalars
        print(f"normalised score {s['eval/score']:.1f} ± {s['eval/score_se']:.1f} "
              f"(return {s['eval/return']:.1f} ± {s['eval/return_se']:.1f})")  # fmt: skip
    return 0
