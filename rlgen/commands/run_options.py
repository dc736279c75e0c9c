"""The options every training command shares (rlgen train, rlgen imitate, rlgen generative train) and the
summary each prints when a run stops."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlgen.train import FitResult, RunDir


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` for integers ``>= minimum``: a bad value is a usage error naming the option."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def add_run_options(parser: argparse.ArgumentParser, set_example: str, run_dir_default: str) -> None:
    """Add ``--set``, ``--run-dir``, ``--resume``, ``--device`` and ``--no-progress`` to ``parser``.

    :param set_example: overrides shown in ``--set``'s help, e.g. ``train.steps=1000 agent.head=gaussian``.
    :param run_dir_default: where a new run is written when ``--run-dir`` is not given (for the help).
    """
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE", dest="overrides",
                        help=f"override recipe values, e.g. {set_example}")  # fmt: skip
    parser.add_argument("--run-dir", help=f"where to write the run (default: {run_dir_default})")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its newest checkpoint")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda (default: auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def print_run_summary(run: RunDir, result: FitResult) -> None:
    """Where the run is, the step it reached, its last and best score (normalised score or held-out bits/dim) and
    where its samples are, if it wrote any."""
    resumed = f" (resumed at step {result.start_step})" if result.start_step else ""
    print(f"run {run.path}: step {result.step}{resumed}")
    scalars = result.last_scalars
    if "eval/score" in scalars:
        print(f"last normalised score {scalars['eval/score']:.1f} ± {scalars['eval/score_se']:.1f} (return "
              f"{scalars['eval/return']:.1f} ± {scalars['eval/return_se']:.1f}){_best(result, '.1f')}")  # fmt: skip
    if "eval/bits_per_dim" in scalars:
        print(f"last test bits/dim {scalars['eval/bits_per_dim']:.4f}{_best(result, '.4f')}")
    samples = sorted(run.path.glob("samples.*"))
    if samples:
        print(f"samples: {samples[0]}")


def _best(result: FitResult, spec: str) -> str:
    """``"; best X at step N (checkpoints/best.pt)"``, or nothing if the run kept no best checkpoint."""
    if result.best_score is None:
        return ""
    return f"; best {result.best_score:{spec}} at step {result.best_step} (checkpoints/best.pt)"
