"""What the help texts list: the agents and datasets by name, read from the recipe folders by rlgen.catalog."""

from __future__ import annotations

import textwrap

from rlgen.catalog import agent_names, task_levels


def agents_text() -> str:
    """``agents (agents/*.yaml):`` and the names, wrapped and indented, for a command's help."""
    names = textwrap.fill(", ".join(agent_names()) or "(none found)", 100, initial_indent="  ",
                          subsequent_indent="  ", break_on_hyphens=False)  # fmt: skip
    return f"agents (agents/*.yaml):\n{names}"


def datasets_text() -> str:
    """The ``<task>-<level>`` names, one task a line (``hopper-{random,medium,...}``), for a command's help."""
    lines = [f"  {task}-{{{','.join(levels)}}}" for task, levels in task_levels().items()] or ["  (none found)"]
    return "\n".join(["datasets (<task>-<level>, levels from envs/<task>/task.yaml):", *lines])
