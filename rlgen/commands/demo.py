"""rlgen demo: the main job end to end on the default dataset.

Makes the dataset from the shipped behaviour policies if it is not on disk yet, trains behaviour cloning with
each requested head, evaluates every agent on the D4RL normalised scale, prints the table and plots the
learning curves.

    rlgen demo                                   # hopper-medium-200k, BC-DLML vs BC-Gaussian
    rlgen demo --dataset invertedpendulum-medium --train-steps 20000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rlgen.commands.help import add_command, datasets_text
from rlgen.commands.plot import plot_runs

if TYPE_CHECKING:
    from rlgen.data import DatasetRef

DEFAULT_DATASET = "hopper-medium-200k"  # 200k steps of hopper-medium: generated in about a minute
DEFAULT_HEADS = ("dlml", "gaussian")


def ensure_dataset(ref: DatasetRef, seed: int) -> DatasetRef:
    """``ref``, generated from the shipped policies first unless a copy is already on disk."""
    from rlgen.data import resolve_dataset
    from rlgen.rollout.generate import make_dataset

    if ref.path is not None or ref.level is None:  # a dataset given by path or id is not made here
        print(f"dataset {ref.name}: found on disk at {ref.path}")
        return ref
    print(f"dataset {ref.name}: not on disk, making it from the shipped behaviour policies")
    result = make_dataset(str(ref.name), seed=seed)
    print(f"dataset {ref.name}: written to {result.path}")
    return resolve_dataset(str(ref.name))


def check_outputs(out: Path, heads: list[str]) -> None:
    """Refuse before any work if a head is unknown or an output the demo writes is already in ``out``."""
    from rlgen.heads import head_config

    for head in heads:
        head_config(head)
    taken = [str(path) for path in (*(out / f"bc-{head}" for head in heads), out / "curves.png") if path.exists()]
    if taken:
        raise FileExistsError(f"{', '.join(taken)} already exist; choose another --out")


def run(args: argparse.Namespace) -> int:
    import torch

    from rlgen.data import load_dataset, resolve_dataset, summarize
    from rlgen.runs import start_run
    from rlgen.tasks import load_task

    torch.set_num_threads(1)  # batched inference of small MLPs during generation: extra threads only cost
    heads = list(dict.fromkeys(args.heads))  # a head named twice is trained once
    check_outputs(args.out, heads)
    ref = ensure_dataset(resolve_dataset(args.dataset), args.seed)
    task = load_task(ref.require_task())
    data = summarize(load_dataset(ref.require_path()), task.ref_min_score, task.ref_max_score)
    rows = [(f"{args.dataset} data (behaviour policy)", f"{data['normalized_score']:.1f}", "-", "-")]
    runs = []
    overrides = [f"train.steps={args.train_steps}", f"train.eval_every={max(args.train_steps // 4, 1)}",
                 f"train.eval_episodes={args.eval_episodes}", f"train.seed={args.seed}"]  # fmt: skip
    for head in heads:
        start = time.perf_counter()
        run_dir, result = start_run(f"bc-{head}", ref, overrides, run_dir=args.out / f"bc-{head}",
                                    device=args.device)  # fmt: skip
        runs.append(run_dir)
        scalars = result.last_scalars
        rows.append((f"BC-{head}", f"{scalars['eval/score']:.1f} ± {scalars['eval/score_se']:.1f}",
                     f"{scalars['eval/return']:.1f}", f"{time.perf_counter() - start:.0f}"))  # fmt: skip
    plot = plot_runs(runs, args.out / "curves.png")
    header = ("agent", "normalised score (mean ± s.e.)", "return", "seconds")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(4)]
    print()
    for row in (header, tuple("-" * w for w in widths), *rows):
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    print(f"\n{args.eval_episodes} evaluation episodes per agent; runs in {args.out}, curves in {plot}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers,
        "demo",
        "make the default dataset, train BC with DLML and Gaussian heads, print normalised scores",
        __doc__,
        datasets_text(),
    )
    parser.add_argument("--dataset", default=DEFAULT_DATASET,
                        help=f"<task>-<level>[-<size>] (default: {DEFAULT_DATASET})")  # fmt: skip
    parser.add_argument("--heads", nargs="+", default=list(DEFAULT_HEADS), metavar="HEAD",
                        help="BC heads to train (default: dlml gaussian)")  # fmt: skip
    parser.add_argument("--train-steps", type=int, default=5_000, help="gradient steps per agent (default: 5000)")
    parser.add_argument("--eval-episodes", type=int, default=10,
                        help="evaluation episodes per agent, at each quarter of training (default: 10)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the dataset and of every run (default: 0)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda (default: auto)")
    parser.add_argument("--out", type=Path, default=Path("runs/demo") / time.strftime("%Y%m%d-%H%M%S"),
                        help="folder for the runs and the plot (default: runs/demo/<date-time>)")  # fmt: skip
    parser.set_defaults(run=run)
