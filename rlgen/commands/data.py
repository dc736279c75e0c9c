"""rlgen data: make D4RL-style datasets from the shipped behaviour policies, list and inspect datasets.

rlgen data make hopper-medium                    # Minari dataset rlgen/hopper/medium-v0 (1M steps, D4RL's size)
rlgen data make hopper-medium-200k               # 200k steps of the same level: rlgen/hopper/medium-200k-v0
rlgen data make hopper-medium --format d4rl      # ~/.d4rl/datasets/hopper-medium.hdf5
rlgen data make hopper-medium --out hm.hdf5      # D4RL format, from the suffix
rlgen data list                                  # local datasets (steps, episodes, size, where), names `make` accepts
rlgen data info hopper-medium                    # sizes, returns and the normalised score of the data
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from rlgen.commands.help import add_command, datasets_text

if TYPE_CHECKING:
    from rlgen.data import DatasetLocation


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    datasets = datasets_text()
    parser = add_command(subparsers, "data", "make, list and inspect datasets", __doc__, datasets)
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    make = sub.add_parser(
        "make", help="generate <task>-<level>[-<size>] from the task file's behaviour policies",
        description="Generate a dataset from the behaviour policies of envs/<task>/.",
        epilog=datasets, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    make.add_argument("name", help="<task>-<level>[-<size>]: hopper-medium is D4RL's 1M steps (2M for "
                      "medium-expert), hopper-medium-200k 200k steps (see 'rlgen data list')")  # fmt: skip
    make.add_argument("--seed", type=int, default=0, help="the same seed gives the same dataset (default: 0)")
    make.add_argument(
        "--format", dest="fmt",
        help="minari or d4rl (default: d4rl if --out names a .hdf5/.h5 file, else minari)",
    )  # fmt: skip
    make.add_argument(
        "--out", help="minari: the store root folder (default $MINARI_DATASETS_PATH or ~/.minari/datasets); "
        "d4rl: the .hdf5/.h5 file (default ~/.d4rl/datasets/<name>.hdf5)",
    )  # fmt: skip
    make.add_argument("--force", action="store_true", help="overwrite an existing dataset")
    make.add_argument("--envs", type=int, default=8, help="parallel environments (part of the seed's recipe)")
    make.set_defaults(run=run_make)

    listing = sub.add_parser("list", help="local datasets and the dataset names 'make' accepts")
    listing.set_defaults(run=run_list)

    info = sub.add_parser("info", help="summary of a dataset given by Minari id, rlgen/D4RL name, path or task")
    info.add_argument("dataset", help="<task>-<level>, a Minari id, a D4RL name, a path, or a task (its medium data)")
    info.add_argument("--task", help="task file to check shapes and score against (default: from the data)")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.set_defaults(run=run_info)


def run_make(args: argparse.Namespace) -> int:
    import torch

    from rlgen.data import summarize
    from rlgen.rollout.generate import make_dataset
    from rlgen.tasks import parse_dataset_name

    torch.set_num_threads(1)  # batches of a few observations through small MLPs: extra threads only cost
    result = make_dataset(args.name, seed=args.seed, fmt=args.fmt, out=args.out, force=args.force, num_envs=args.envs)
    where = f"Minari dataset {result.dataset_id} at {result.path}" if result.dataset_id else str(result.path)
    print(f"wrote {where}")
    _print_summary(summarize(result.episodes))
    task, level = parse_dataset_name(args.name)
    record = {"medium": task.medium, "expert": task.expert}.get(level)
    if record is not None:  # what the data's returns should match
        s = record.stochastic
        print(f"  recipe's {level} policy, stochastic: return {s.mean:,.1f} +- {s.std:,.1f} ({s.episodes} episodes)")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from rlgen.data import DatasetError, dataset_size, list_local_datasets
    from rlgen.rollout.generate import expected_seconds, format_duration
    from rlgen.tasks import TaskFileError, list_tasks, load_task

    local = list_local_datasets()
    print("local datasets:" if local else "local datasets: none")
    if local:
        print(f"  {'name':<36} {'format':<7} {'steps':>10} {'episodes':>9} {'MB':>8}  where")
    for found in local:
        name = _rlgen_name(found)
        try:
            size = dataset_size(found)
        except (DatasetError, OSError) as e:
            print(f"  {name:<36} {found.format:<7} unreadable ({e})")
            continue
        print(f"  {name:<36} {found.format:<7} {size.steps:>10,} {size.episodes:>9,} {size.bytes / 1e6:>8,.1f}  "
              f"{found.path}{_size_note(name, size.steps)}")  # fmt: skip
    print("makeable (rlgen data make NAME; NAME-<size> for another size, e.g. hopper-medium-200k):")
    for name in list_tasks():
        try:
            task = load_task(name, allow_untrained=True)
        except TaskFileError as e:
            print(f"  {name}: unreadable task file ({e})")
            continue
        for level in task.levels:
            steps = task.level_steps(level)
            try:
                task.policies_for_level(level)
                seconds = expected_seconds(task, steps)
                note = f"{steps:>9,} steps" + ("" if seconds is None else f", about {format_duration(seconds)}")
            except TaskFileError:
                note = "behaviour policies not trained yet"
            print(f"  {name + '-' + level:<36} {note}")
    return 0


def _rlgen_name(found: DatasetLocation) -> str:
    """The name a local dataset is found by: ``rlgen/hopper/medium-200k-v0`` -> ``hopper-medium-200k``."""
    parts = found.name.split("/")
    if found.format == "minari" and len(parts) == 3 and parts[0] == "rlgen" and parts[2].endswith("-v0"):
        return f"{parts[1]}-{parts[2].removesuffix('-v0')}"
    return found.name


def _size_note(name: str, steps: int) -> str:
    """A warning if an rlgen dataset holds another size than its name means (made by an older rlgen)."""
    from rlgen.tasks import dataset_steps

    try:
        expected = dataset_steps(name)
    except (ValueError, KeyError):  # not an rlgen name
        return ""
    return "" if expected == steps else f"  (!) {name} means {expected:,} steps: remake it with --force"


def run_info(args: argparse.Namespace) -> int:
    from rlgen.data import load_dataset, resolve_dataset, summarize
    from rlgen.tasks import load_task

    ref = resolve_dataset(args.dataset, args.task)
    path = ref.require_path()
    episodes = load_dataset(path)
    task = load_task(ref.task, allow_untrained=True) if ref.task is not None else None
    refs: dict[str, Any] = {}
    if task is not None:
        act_shape = () if task.discrete else (task.act_dim,)
        episodes.check_shapes((task.obs_dim,), act_shape, expected_by=f"task {task.name} ({task.env_id})")
        if "ref_min_score" not in episodes.metadata and task.ref_max_score > task.ref_min_score:
            refs = {"ref_min_score": task.ref_min_score, "ref_max_score": task.ref_max_score}
    summary = summarize(episodes, **refs)
    summary["location"] = str(path)
    if task is not None:
        summary["task"] = task.name
    for key in ("level", "seed", "policy_files", "rlgen_version"):
        if key in episodes.metadata:
            summary[key] = episodes.metadata[key]
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    return 0


def _print_summary(summary: dict[str, Any]) -> None:
    for key, value in summary.items():
        text = f"{value:,.3f}" if isinstance(value, float) else str(value)
        print(f"  {key:<26} {text}")
