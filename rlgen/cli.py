"""The ``rlgen`` command line: one sub-command group per module in :mod:`rlgen.commands`.

Building the parser imports no torch (``rlgen --help`` answers at once); a command's heavy modules and the
plugins are imported when it runs.

Every failure ends in one line ``rlgen <command>: error: ...`` on stderr: exit status 2 for bad input (names,
files, values), 1 for faults of the machine (permissions, a full disk, other I/O errors), 130 on Ctrl-C (143 on
SIGTERM while training, which ends like Ctrl-C: the step under way is checkpointed).
``--debug`` (or ``RLGEN_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from rlgen.commands import COMMAND_MODULES

DESCRIPTION = "rlgen: offline RL and imitation learning on one family of generative heads."
DEBUG_VAR = "RLGEN_DEBUG"
BAD_INPUT, FAULT, INTERRUPTED = 2, 1, 130
BROKEN_PIPE = 141  # what a shell reports for a process ended by SIGPIPE, as `yes | head -1` does


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlgen", description=DESCRIPTION)
    parser.add_argument("--debug", action="store_true", help=f"show the traceback of an error (also: {DEBUG_VAR}=1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get(DEBUG_VAR, "") not in ("", "0")
    try:
        from rlgen.runs import load_plugins

        load_plugins()  # agents and heads that installed packages or $RLGEN_PLUGINS add
        status = int(args.run(args) or 0)
        sys.stdout.flush()  # here, not at interpreter exit, so that a closed pipe is caught below
        return status
    except BrokenPipeError:
        # The reader went away (`rlgen data list | head -1`): stop quietly, and keep the interpreter's final
        # flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    except KeyboardInterrupt as interrupt:
        if debug:
            raise
        from rlgen.train import Interrupted

        detail = f" by {interrupt}" if isinstance(interrupt, Interrupted) else ""
        print(f"\nrlgen {args.command}: interrupted{detail}", file=sys.stderr)
        # 128 + the signal, as a shell reports a process the signal ended: 130 for Ctrl-C, 143 for SIGTERM
        return 128 + interrupt.signum if isinstance(interrupt, Interrupted) else INTERRUPTED
    except Exception as error:
        if debug:
            raise
        status, message = describe(error)
        print(f"rlgen {args.command}: error: {message}", file=sys.stderr)
        return status


def describe(error: Exception) -> tuple[int, str]:
    """The exit status and the one-line message for an error that ends a command."""
    if isinstance(error, KeyError):
        return BAD_INPUT, str(error.args[0] if error.args else error)
    if isinstance(error, ValueError | FileNotFoundError | FileExistsError | NotADirectoryError | IsADirectoryError):
        return BAD_INPUT, _one_line(error)
    if isinstance(error, PermissionError):
        return FAULT, f"permission denied: {error.filename}" if error.filename else _one_line(error)
    if isinstance(error, OSError):
        from rlgen.data.atomic import NO_SPACE

        if error.errno in NO_SPACE:
            if str(error.strerror).startswith("no space left on"):  # rlgen's own, with the detail
                return FAULT, error.strerror
            return FAULT, f"no space left on {error.filename or 'the output filesystem'}"
        return FAULT, f"{error.strerror}: {error.filename}" if error.filename and error.strerror else _one_line(error)
    if isinstance(error, RuntimeError | MemoryError):
        return FAULT, _one_line(error)
    return FAULT, f"{type(error).__name__}: {_one_line(error)} (an rlgen bug? rerun with --debug for the traceback)"


def _one_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
