"""Shared test settings: deterministic seeds, one torch thread, no MuJoCo log files in the repo, and every data,
cache, log and home location of rlgen, Minari, D4RL and SB3 in temporary folders (the user's datasets are never read or
written)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings

from rlgen.runs import load_agent, resume_run, start_run
from rlgen.train import list_checkpoints, load_checkpoint

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
        ("SB3_LOGDIR", home / "sb3"),  # SB3's learn() makes a log folder, by default a new one in the system's /tmp
    ):
        monkeypatch.setenv(var, str(path))


@pytest.fixture
def in_store(store: Path, monkeypatch) -> Path:
    """The test module's ``store`` fixture (a Minari store folder), set as MINARI_DATASETS_PATH for one test."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(store))
    return store


@pytest.fixture
def check_resume() -> Callable[[str, str], None]:
    """``check_resume(recipe, dataset)`` trains a small run 30 steps, drops its last checkpoint as a kill would and
    resumes it: weights, optimisers, RNG and metrics must equal the uninterrupted run's, and the run must load as
    ``rlgen eval`` loads it."""
    return _check_resume


def _tensors_equal(a: object, b: object) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_tensors_equal(a[k], b[k]) for k in a)  # type: ignore[union-attr]
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)  # type: ignore[arg-type]
    return a == b


def _check_resume(recipe: str, dataset: str) -> None:
    small = ["train.batch_size=32", "train.log_every=7", "train.eval_episodes=1", "train.eval_envs=1",
             "agent.hidden=[32, 32]"]  # fmt: skip
    run, _ = start_run(recipe, dataset, [*small, "train.steps=30", "train.checkpoint_every=20", "train.eval_every=0"],
                       run_dir="run", device="cpu", progress=False)  # fmt: skip
    _, (_, last) = list_checkpoints(run.checkpoints)
    whole, metrics = load_checkpoint(last), run.read_metrics()
    last.unlink()
    torch.manual_seed(12345)  # whatever happened in between must not matter
    _, result = resume_run(run.path, device="cpu", progress=False)
    assert (result.start_step, result.step) == (20, 30)
    assert _tensors_equal(load_checkpoint(last), whole)
    assert run.read_metrics() == metrics
    agent, task, _, step = load_agent(run.path, device="cpu")  # what `rlgen eval` loads
    assert step == 30 and agent.act(np.zeros((2, task.obs_dim), np.float32)).shape == (2, task.act_dim)
