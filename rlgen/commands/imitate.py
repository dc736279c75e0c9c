"""rlgen imitate: imitate a task's expert from a few of its trajectories.

rlgen imitate gail invertedpendulum --trajectories 4           # agents/gail-trpo.yaml on invertedpendulum-expert
rlgen imitate gail hopper --trajectories 11 --pairs-per-trajectory 50 --set agent.bc_warm_start=true
rlgen imitate gail hopper --dataset path/to/expert.hdf5 --trajectories 25
rlgen imitate --resume runs/gail-trpo/hopper-expert/seed0-...   # continue after a kill, same numbers
"""

from __future__ import annotations

import argparse
from functools import partial

from rlgen.commands.help import add_command
from rlgen.commands.run_options import add_run_options, print_run_summary

#: imitation method -> the agent recipe that implements it
METHODS = {"gail": "gail-trpo"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "imitate", "imitate a task's expert from a few demonstrations (GAIL), or resume such a run", __doc__
    )
    parser.add_argument("method", nargs="?", choices=sorted(METHODS), help="imitation method")
    parser.add_argument("task", nargs="?", help="task name (see 'rlgen data list'); demonstrations come from "
                        "<task>-expert unless --dataset is given")  # fmt: skip
    parser.add_argument("--trajectories", type=int, help="expert trajectories to imitate (default: the recipe's)")
    parser.add_argument("--pairs-per-trajectory", type=int, help="state-action pairs kept per trajectory "
                        "(default: the recipe's; --set agent.pairs_per_trajectory=null keeps all)")  # fmt: skip
    parser.add_argument("--dataset", help="expert dataset: <task>-<level>, Minari id or path (default <task>-expert)")
    parser.add_argument("--recipe", help="agent recipe (default: the method's, e.g. gail-trpo)")
    add_run_options(parser, "train.steps=500 agent.bc_warm_start=true", "runs/<recipe>/<dataset>/seed<k>-<time>")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rlgen.runs import resume_run, start_run
    from rlgen.scale.distributed import distributed_training

    progress = not args.no_progress
    if args.resume:
        options = {"method": args.method, "task": args.task, "--dataset": args.dataset, "--recipe": args.recipe,
                   "--trajectories": args.trajectories, "--pairs-per-trajectory": args.pairs_per_trajectory,
                   "--run-dir": args.run_dir}  # fmt: skip
        given = [flag for flag, value in options.items() if value is not None]
        if given:
            raise ValueError(f"--resume takes everything from the run; drop {', '.join(given)}")
        start = partial(resume_run, args.resume, args.overrides)
    else:
        if not (args.method and args.task):
            raise ValueError(f"give a method and a task, e.g. `rlgen imitate gail invertedpendulum --trajectories 4`; "
                             f"methods: {', '.join(sorted(METHODS))}")  # fmt: skip
        overrides = list(args.overrides)
        if args.trajectories is not None:
            overrides.append(f"agent.trajectories={args.trajectories}")
        if args.pairs_per_trajectory is not None:
            overrides.append(f"agent.pairs_per_trajectory={args.pairs_per_trajectory}")
        dataset = args.dataset or f"{args.task}-expert"
        start = partial(start_run, args.recipe or METHODS[args.method], dataset, overrides, run_dir=args.run_dir,
                        task=args.task)  # fmt: skip
    with distributed_training(args.device) as (replicas, device):  # under torchrun: refused, GAIL steps envs
        run_dir, result = start(device=device, progress=progress, replicas=replicas)
    print_run_summary(run_dir, result)
    return 0
