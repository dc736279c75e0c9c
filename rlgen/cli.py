"""The ``rlgen`` command line: one sub-command group per module in :mod:`rlgen.commands`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rlgen.commands import COMMAND_MODULES

DESCRIPTION = "rlgen: offline RL and imitation learning on one family of generative heads."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlgen", description=DESCRIPTION)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as error:
        # User-facing errors (bad names, bad files) are reported without a traceback.
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"rlgen {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
