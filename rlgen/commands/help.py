"""The help texts: each sub-command's parser (its docstring printed as written) and the agents and datasets it lists
by name, read from the recipe folders by rlgen.catalog."""

from __future__ import annotations

import argparse
import textwrap

from rlgen.catalog import agent_names, task_levels


def add_command(
    subparsers: argparse._SubParsersAction, name: str, summary: str, doc: str | None, epilog: str | None = None
) -> argparse.ArgumentParser:
    """Add the sub-command ``rlgen NAME`` and return its parser: ``summary`` in rlgen's list of commands, the
    module docstring ``doc`` above its options and ``epilog`` below them, both printed as written."""
    return subparsers.add_parser(name, help=summary, description=doc, epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip


def agents_text() -> str:
    """``agents (agents/*.yaml):`` and the names, wrapped and indented, for a command's help."""
    names = textwrap.fill(", ".join(agent_names()) or "(none found)", 100, initial_indent="  ",
                          subsequent_indent="  ", break_on_hyphens=False)  # fmt: skip
    return f"agents (agents/*.yaml):\n{names}"


def datasets_text() -> str:
    """The ``<task>-<level>`` names, one task a line (``hopper-{random,medium,...}``), for a command's help."""
    lines = [f"  {task}-{{{','.join(levels)}}}" for task, levels in task_levels().items()] or ["  (none found)"]
    return "\n".join(["datasets (<task>-<level>, levels from envs/<task>/task.yaml):", *lines])
