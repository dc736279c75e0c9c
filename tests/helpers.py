"""Test data shared by several test files: ``from helpers import random_episodes, minari_store``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rlgen.data import Episodes
from rlgen.rollout.generate import make_dataset


def random_episodes(n: int = 40, obs_dim: int = 3, act_dim: int = 2, **metadata: Any) -> Episodes:
    """Two episodes of ``n // 2`` and ``n - n // 2`` standard-normal steps with actions in ``[-1, 1]``, each ending in a
    timeout, drawn from seed 0; ``metadata`` is stored with them."""
    rng = np.random.default_rng(0)
    ends = np.array([n // 2, n])
    return Episodes(
        observations=rng.normal(size=(n, obs_dim)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        terminals=np.zeros(n, bool),
        timeouts=np.isin(np.arange(n), ends - 1),
        episode_ends=ends,
        final_observations=rng.normal(size=(2, obs_dim)).astype(np.float32),
        metadata=metadata,
    )


def minari_store(tmp_path_factory: pytest.TempPathFactory, steps: dict[str, int], **options: Any) -> Path:
    """A new Minari store folder holding, for each dataset name in ``steps``, that many steps made by
    :func:`~rlgen.rollout.generate.make_dataset` with ``options`` (e.g. ``num_envs=2``)."""
    root = tmp_path_factory.mktemp("minari")
    for name, count in steps.items():
        make_dataset(name, steps=count, out=root, progress=False, **options)
    return root
