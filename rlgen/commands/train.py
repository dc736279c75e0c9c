"""rlgen train: train an agent recipe on a dataset (or a task's default dataset), or resume a run.

rlgen train bc-dlml hopper-medium                          # agents/bc-dlml.yaml on rlgen/hopper/medium-v0
rlgen train bc-gaussian hopper-medium --set train.steps=20000 agent.hidden=[512,512]
rlgen train bc-dlml path/to/file.hdf5 --task hopper        # any D4RL file or Minari dataset
rlgen train dqn cartpole                                   # online agents (dqn, a2c, reinforce) act in the task
rlgen train --resume runs/bc-dlml/hopper-medium/seed0-...  # continue after a kill, same numbers (any run folder)
torchrun --nproc_per_node 2 -m rlgen train bc-dlml hopper-medium   # data-parallel: train.batch_size is the global batch
"""

from __future__ import annotations

import argparse
from functools import partial

from rlgen.commands.help import add_command, agents_text, datasets_text
from rlgen.commands.run_options import add_run_options, print_run_summary


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers,
        "train",
        "train an agent recipe on a dataset, or resume a run",
        __doc__,
        f"{agents_text()}\n{datasets_text()}",
    )
    parser.add_argument("agent", nargs="?", help="agent recipe: a name in agents/ (bc-dlml, ...) or a .yaml path")
    parser.add_argument("target", nargs="?", help="dataset (<task>-<level>, Minari id or path) or task name "
                        "(offline agents then use <task>-medium)")  # fmt: skip
    parser.add_argument("--task", help="task file of a dataset given by path (default: recorded in the dataset)")
    add_run_options(parser, "train.steps=1000 agent.head=gaussian", "runs/<agent>/<dataset>/seed<k>-<time>")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rlgen.runs import list_recipes, resume_run, start_run
    from rlgen.scale.distributed import distributed_training

    if args.resume:
        if args.agent or args.target or args.task or args.run_dir:
            raise ValueError("--resume takes the agent, dataset and run directory from the run; give only RUN_DIR")
        start = partial(resume_run, args.resume, args.overrides)
    else:
        if not (args.agent and args.target):
            raise ValueError(f"give an agent and a dataset or task, e.g. `rlgen train bc-dlml hopper-medium`; "
                             f"agents: {', '.join(list_recipes())}")  # fmt: skip
        start = partial(start_run, args.agent, args.target, args.overrides, run_dir=args.run_dir, task=args.task)
    with distributed_training(args.device) as (replicas, device):  # one process of several under torchrun
        run_dir, result = start(device=device, progress=not args.no_progress, replicas=replicas)
    if replicas is None or replicas.is_writer:
        print_run_summary(run_dir, result)
    return 0
