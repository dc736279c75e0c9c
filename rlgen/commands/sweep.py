"""rlgen sweep: train every agent on every dataset for every seed (and override set) as Ray tasks, then write
summary.json, summary.md and curves.png in the sweep folder. Each run is an ordinary run folder
<out>/<agent>/<dataset>/<variant>/seed<k>; running the same sweep again skips finished runs and resumes
interrupted ones.

rlgen sweep --agents bc-gaussian bc-dlml --datasets hopper-medium walker2d-medium --seeds 0 1 2 \\
    --set train.steps=5000 --out sweeps/bc                       # a local Ray instance, one CPU per run
rlgen sweep grid.yaml                                            # the same grid from a file (see docs/scale.md)
rlgen sweep grid.yaml --address head-node:6379                   # on a Ray cluster (or set RAY_ADDRESS)
rlgen sweep ... --variant small agent.hidden=[64,64] --variant large agent.hidden=[512,512]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rlgen.commands.help import add_command, agents_text, datasets_text
from rlgen.commands.plot import plot_runs
from rlgen.commands.run_options import int_at_least

if TYPE_CHECKING:
    from rlgen.scale import Grid

CURVES = "curves.png"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers,
        "sweep",
        "train agents x datasets x seeds on Ray and summarise the scores",
        __doc__,
        f"{agents_text()}\n{datasets_text()}",
    )
    parser.add_argument("grid", nargs="?", type=Path, help="a grid file (YAML); the flags below replace its fields")
    parser.add_argument("--agents", nargs="+", help="agent recipes (names in agents/ or .yaml paths)")
    parser.add_argument("--datasets", nargs="+", help="datasets (<task>-<level>, Minari ids, paths) or tasks")
    parser.add_argument("--seeds", nargs="+", type=int_at_least(0), help="seeds (default: 0)")
    parser.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE", dest="overrides",
                        help="overrides of every run, e.g. train.steps=5000")  # fmt: skip
    parser.add_argument("--variant", nargs="+", action="append", metavar=("NAME", "KEY=VALUE"), dest="variants",
                        help="a named override set, one more axis of the grid (repeat it)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="the sweep folder (required unless the grid file names one)")
    parser.add_argument("--address", help="join the Ray cluster at host:port (default: $RAY_ADDRESS, else a local "
                        "instance)")  # fmt: skip
    parser.add_argument("--cpus", type=int_at_least(1), help="CPUs of the local instance (default: all cores)")
    parser.add_argument("--gpus-per-run", type=float, default=0.0, help="GPUs Ray reserves per run (default: 0)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if the run has one), cpu or cuda")
    parser.add_argument("--sequential", action="store_true", help="run one after another in this process, no Ray")
    parser.set_defaults(run=run)


def grid_from_args(args: argparse.Namespace) -> tuple[Grid, Path]:
    """The grid and sweep folder the command line names: a grid file's, with the flags given replacing its fields."""
    from rlgen.scale import Grid, load_grid

    grid, out = load_grid(args.grid) if args.grid is not None else (None, None)
    variants = {v[0]: v[1:] for v in args.variants} if args.variants else None
    if args.variants and len(variants) < len(args.variants):  # type: ignore[arg-type]
        raise ValueError("--variant names must differ")

    def pick(flag: object, key: str, default: object) -> object:
        return flag if flag is not None else getattr(grid, key) if grid is not None else default

    grid = Grid(
        pick(args.agents, "agents", []),  # type: ignore[arg-type]
        pick(args.datasets, "datasets", []),  # type: ignore[arg-type]
        pick(args.seeds, "seeds", [0]),  # type: ignore[arg-type]
        pick(args.overrides, "overrides", []),  # type: ignore[arg-type]
        pick(variants, "variants", {}),  # type: ignore[arg-type]
        # an agent's own overrides go with the file's agents, unless --agents names others
        grid.agent_overrides if grid is not None and args.agents is None else {},
    )
    out = args.out or out
    if out is None:
        raise ValueError("give the sweep folder with --out (or `out:` in the grid file)")
    return grid, out


def run(args: argparse.Namespace) -> int:
    from rlgen.scale import plan_sweep, run_sweep, write_summary
    from rlgen.train import RunDir

    grid, out = grid_from_args(args)
    cells = plan_sweep(grid, out)
    print(f"sweep of {len(cells)} runs in {out}")
    records = run_sweep(cells, address=args.address, num_cpus=args.cpus, gpus_per_run=args.gpus_per_run,
                        device=args.device, sequential=args.sequential)  # fmt: skip
    rows = write_summary(out, records)
    runs = [RunDir(r.path) for r in records if r.status != "failed"]
    runs = [run for run in runs if run.metrics_path.is_file()]
    if runs:
        plot_runs(runs, out / CURVES, force=True)
    for row in rows:
        score = "-" if row["score_mean"] is None else f"{row['score_mean']:.1f} ± {row['score_se']:.1f}"
        print(f"{row['agent']} on {row['dataset']} [{row['variant']}]: normalised score {score} "
              f"over seeds {row['seeds']}")  # fmt: skip
    counts = {s: sum(r.status == s for r in records) for s in ("trained", "resumed", "finished", "failed")}
    print(f"{len(records)} runs: {counts['trained']} trained, {counts['resumed']} resumed, {counts['finished']} "
          f"already finished, {counts['failed']} failed; summary in {out / 'summary.md'}")  # fmt: skip
    return 1 if counts["failed"] else 0
