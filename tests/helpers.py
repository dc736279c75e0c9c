"""Test data and loaders shared by several test files: ``from helpers import random_episodes, minari_store``."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from rlgen.data import Episodes
from rlgen.rollout.generate import make_dataset


def random_episodes(n: int = 40, obs_dim: int = 3, act_dim: int = 2, **metadata: Any) -> Episodes:
    """Two episodes of ``n // 2`` and ``n - n // 2`` random steps (:meth:`Episodes.random`, seed 0), each ending in a
    timeout; ``metadata`` is stored with them."""
    episodes = Episodes.random(n, obs_dim, act_dim, episode_length=n // 2, **metadata)
    assert episodes.num_episodes == 2, "random_episodes needs an even n"
    return episodes


def minari_store(tmp_path_factory: pytest.TempPathFactory, steps: dict[str, int], **options: Any) -> Path:
    """A new Minari store folder holding, for each dataset name in ``steps``, that many steps made by
    :func:`~rlgen.rollout.generate.make_dataset` with ``options`` (e.g. ``num_envs=2``)."""
    root = tmp_path_factory.mktemp("minari")
    for name, count in steps.items():
        make_dataset(name, steps=count, out=root, progress=False, **options)
    return root


def import_script(name: str, monkeypatch: pytest.MonkeyPatch | None = None) -> types.ModuleType:
    """``scripts/<name>.py`` (a script, not part of the package) imported as module ``name``, registered in
    ``sys.modules`` as dataclasses need: for this test only with ``monkeypatch``, else for the session."""
    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    if monkeypatch is not None:
        monkeypatch.setitem(sys.modules, name, module)
    else:
        module = sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module
