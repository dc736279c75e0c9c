"""Shared test settings: deterministic seeds, one torch thread, no MuJoCo log files in the repo, and every data,
cache and home location of rlgen, Minari and D4RL in temporary folders (the user's datasets are never read or
written)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

torch.set_num_threads(1)

# CI draws the same hypothesis examples on every run: a red CI then means the change, not the draw. Locally the
# examples vary from run to run, which is how new counter-examples get found.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    # Tests draw from explicit numpy Generators; torch's global generator is reset per test.
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _run_in_tmp_cwd(tmp_path, monkeypatch) -> None:
    # MuJoCo writes MUJOCO_LOG.TXT into the working directory for some models: keep it out of the checkout.
    monkeypatch.chdir(tmp_path)
    os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture(scope="session")
def _session_cache(tmp_path_factory) -> Path:
    # Dataset caches are keyed by the source's path, size and mtime: sharing them across tests is safe and fast.
    return tmp_path_factory.mktemp("rlgen-cache")


@pytest.fixture(autouse=True)
def _hermetic_locations(tmp_path_factory, _session_cache, monkeypatch) -> None:
    home = tmp_path_factory.mktemp("home")
    for var, path in (
        ("HOME", home),
        ("XDG_CACHE_HOME", home / ".cache"),
        ("MINARI_DATASETS_PATH", home / ".minari" / "datasets"),
        ("D4RL_DATASET_DIR", home / ".d4rl" / "datasets"),
        ("RLGEN_CACHE_DIR", _session_cache),
    ):
        monkeypatch.setenv(var, str(path))
