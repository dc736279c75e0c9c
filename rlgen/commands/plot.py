"""rlgen plot: learning curves of one or more runs as a PNG (evaluation score and training loss by step).

rlgen plot runs/bc-dlml/hopper-medium/seed0-* runs/bc-gaussian/hopper-medium/seed0-* --out curves.png
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlgen.commands.help import add_command

if TYPE_CHECKING:
    from rlgen.train import RunDir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "plot", "plot learning curves of runs to a PNG", __doc__)
    parser.add_argument("run_dirs", nargs="+", help="run directories written by rlgen train")
    parser.add_argument("--out", type=Path, help="PNG path (default: <first run>/curves.png, replaced if there)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out file")
    parser.set_defaults(run=run)


def curves(rows: list[dict[str, Any]], name: str) -> tuple[list[int], list[float]]:
    """Steps and values of scalar ``name`` in the order logged."""
    points = [(row["step"], row[name]) for row in rows if name in row]
    return [s for s, _ in points], [v for _, v in points]


def plot_runs(runs: list[RunDir], out: Path, force: bool = False) -> Path:
    """Draw the normalised evaluation score (± s.e.) of every run, then the training loss of each recipe in a
    panel of its own: heads' losses are on different scales (a density's NLL, a discrete level's log-mass), so
    one shared axis would flatten all but one of them. Runs on different datasets are labelled with theirs.

    :param force: replace ``out`` if it exists (otherwise that is a ``FileExistsError``).
    """
    import matplotlib

    from rlgen.data.atomic import atomic_path

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = [run.read_config() for run in runs]
    run_recipes = [str(config.get("recipe", run.path.name)) for run, config in zip(runs, configs, strict=True)]
    recipes = list(dict.fromkeys(run_recipes))
    datasets = [str(config.get("dataset") or config.get("task", "")) for config in configs]
    name_datasets = len(set(datasets)) > 1
    fig, axes = plt.subplots(1, 1 + len(recipes), figsize=(6 + 4 * len(recipes), 4), squeeze=False)
    score_ax, loss_axes = axes[0, 0], dict(zip(recipes, axes[0, 1:], strict=True))
    for index, (run, config, recipe) in enumerate(zip(runs, configs, run_recipes, strict=True)):
        rows = run.read_metrics()
        on = f" on {datasets[index]}" if name_datasets else ""
        label = f"{recipe}{on} seed {config.get('train', {}).get('seed', '?')}"
        color = f"C{index % 10}"
        steps, score = curves(rows, "eval/score")
        _, se = curves(rows, "eval/score_se")
        if steps:
            score_ax.plot(steps, score, marker="o", label=label, color=color)
            if len(se) == len(score):
                low = [m - e for m, e in zip(score, se, strict=True)]
                high = [m + e for m, e in zip(score, se, strict=True)]
                score_ax.fill_between(steps, low, high, color=color, alpha=0.2)
        steps, loss = curves(rows, "train/loss")
        loss_axes[recipe].plot(steps, loss, label=label, color=color)
    score_ax.set(xlabel="gradient step", ylabel="normalised score", title="evaluation (mean ± s.e.)")
    for recipe, ax in loss_axes.items():
        ax.set(xlabel="gradient step", ylabel="loss", title=f"training loss: {recipe}")
    for ax in axes[0]:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out, force=force) as path:
        fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return out


def run(args: argparse.Namespace) -> int:
    from rlgen.train import RunDir

    runs = [RunDir.open(path) for path in args.run_dirs]
    empty = [str(r.path) for r in runs if not r.read_metrics()]
    if empty:
        raise ValueError(f"no metrics logged yet in {', '.join(empty)}")
    # The default PNG lives in a run folder and is rlgen's own output: re-plotting replaces it.
    out = plot_runs(runs, args.out or runs[0].path / "curves.png", force=args.force or args.out is None)
    print(f"learning curves written to {out}")
    return 0
