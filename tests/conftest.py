"""Shared test settings: deterministic seeds, one torch thread, and no MuJoCo log files in the repo."""

from __future__ import annotations

import os

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
