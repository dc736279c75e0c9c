"""rlgen generative: autoregressive image and audio models on rlgen's heads.

rlgen generative train image                                   # PixelCNN + AdaCat on 8x8 digits
rlgen generative train image --set agent.head=dlml agent.head.num_mixtures=5
rlgen generative train audio --set train.steps=500            # WaveNet on espeak-ng speech (needs espeak-ng)
rlgen generative train --resume runs/generative/image/seed0-...   # continue after a kill, same numbers
rlgen generative recipes                                       # list the recipes in agents/generative/
"""

from __future__ import annotations

import argparse
from functools import partial

from rlgen.commands.help import add_command
from rlgen.commands.run_options import add_run_options, print_run_summary


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "generative", "train PixelCNN / WaveNet models whose conditionals are rlgen heads", __doc__
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="train a generative recipe (image, audio) or resume a run")
    train.add_argument("recipe", nargs="?", help="a recipe in agents/generative/ (image, audio) or a .yaml path")
    add_run_options(train, "train.steps=1000 agent.head=uniform", "runs/generative/<recipe>/seed<k>-<time>")
    train.set_defaults(run=run_train)
    recipes = actions.add_parser("recipes", help="list the generative recipes")
    recipes.set_defaults(run=run_recipes)


def run_train(args: argparse.Namespace) -> int:
    from rlgen.runs import acts, list_recipes, load_recipe, resume_run, start_run
    from rlgen.scale.distributed import distributed_training

    progress = not args.no_progress
    if args.resume:
        if args.recipe or args.run_dir:
            raise ValueError("--resume takes the recipe and run directory from the run; give only RUN_DIR")
        start = partial(resume_run, args.resume, args.overrides)
    else:
        if not args.recipe:
            raise ValueError(f"give a recipe, e.g. `rlgen generative train image`; "
                             f"recipes: {', '.join(list_recipes(generative=True))}")  # fmt: skip
        recipe = load_recipe(args.recipe, generative=True)
        if acts(recipe.agent_class):
            raise ValueError(f"{args.recipe} is an agent that acts in a task; train it with `rlgen train`")
        start = partial(start_run, recipe, overrides=args.overrides, run_dir=args.run_dir)
    with distributed_training(args.device) as (replicas, device):  # one process of several under torchrun
        run, result = start(device=device, progress=progress, replicas=replicas)
    if replicas is None or replicas.is_writer:
        print_run_summary(run, result)
    return 0


def run_recipes(args: argparse.Namespace) -> int:
    from rlgen.runs import list_recipes

    print("\n".join(list_recipes(generative=True)))
    return 0
