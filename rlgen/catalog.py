"""Where the recipe folders are and the names they hold, found with the standard library and yaml only.

Cheap to import (no torch, no numpy), so ``rlgen --help`` can list the agents and datasets:

>>> from rlgen.catalog import agent_names, dataset_names
>>> agent_names()      # ['a2c', 'bc-adacat', ...]: agents/*.yaml
>>> dataset_names()    # ['cartpole-random', ..., 'hopper-medium', ...]: <task>-<level> of envs/*/task.yaml
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

AGENTS_DIR_VAR = "RLGEN_AGENTS_DIR"
ENVS_DIR_VAR = "RLGEN_ENVS_DIR"
TASK_FILE = "task.yaml"
_CHECKOUT = Path(__file__).resolve().parent.parent  # agents/ and envs/ sit next to the rlgen package


def agents_root() -> Path:
    """``$RLGEN_AGENTS_DIR`` if set, else the ``agents/`` folder next to the ``rlgen`` package."""
    env = os.environ.get(AGENTS_DIR_VAR)
    root = Path(env) if env else _CHECKOUT / "agents"
    if not root.is_dir():
        raise FileNotFoundError(f"agent recipes folder not found: {root}; set {AGENTS_DIR_VAR} to the folder of *.yaml")
    return root


def tasks_root() -> Path:
    """``$RLGEN_ENVS_DIR`` if set, else the ``envs/`` folder next to the ``rlgen`` package (a source checkout)."""
    env = os.environ.get(ENVS_DIR_VAR)
    root = Path(env) if env else _CHECKOUT / "envs"
    if not root.is_dir():
        where = f"${ENVS_DIR_VAR}={env}" if env else f"{root} (next to the rlgen package)"
        raise FileNotFoundError(
            f"task files folder not found: {where}; set {ENVS_DIR_VAR} to the folder holding envs/<task>/task.yaml"
        )
    return root


def list_recipe_files(root: Path) -> list[str]:
    """Names of the recipes in folder ``root`` (its ``*.yaml`` files without the suffix)."""
    return sorted(p.stem for p in root.glob("*.yaml"))


def list_tasks() -> list[str]:
    """Names of all task files (folders of ``tasks_root()`` that hold a ``task.yaml``)."""
    return sorted(p.parent.name for p in tasks_root().glob(f"*/{TASK_FILE}"))


def agent_names() -> list[str]:
    """The agents ``rlgen train`` takes by name (``agents/*.yaml``); empty if the folder is missing."""
    try:
        return list_recipe_files(agents_root())
    except FileNotFoundError:
        return []


def task_levels() -> dict[str, list[str]]:
    """The dataset levels each task file declares (its ``levels:`` list), read without validating the rest of the
    file: an unreadable file adds no task (loading the task reports what is wrong with it)."""
    try:
        tasks = list_tasks()
    except FileNotFoundError:
        return {}
    found = {}
    for task in tasks:
        try:
            levels = yaml.safe_load((tasks_root() / task / TASK_FILE).read_text()).get("levels")
        except (OSError, yaml.YAMLError, AttributeError):
            continue
        if isinstance(levels, list):
            found[task] = [str(level) for level in levels]
    return found


def dataset_names() -> list[str]:
    """Every ``<task>-<level>`` the task files declare (see :func:`task_levels`)."""
    return [f"{task}-{level}" for task, levels in task_levels().items() for level in levels]
