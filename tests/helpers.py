"""Test data shared by several test files: ``from helpers import random_episodes, minari_store``."""

from __future__ import annotations

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
