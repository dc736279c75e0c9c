"""``rlgen train`` / ``eval`` / ``plot`` end to end on a small InvertedPendulum dataset."""

from __future__ import annotations

import json

import pytest

from rlgen.cli import main
from rlgen.data.generate import make_dataset

FAST = ["train.steps=60", "train.batch_size=32", "train.log_every=20", "train.eval_every=30",
        "train.eval_episodes=2", "train.checkpoint_every=30", "agent.hidden=[32]"]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("minari")
    make_dataset("invertedpendulum-medium", steps=2000, out=root, progress=False)
    return root


def test_train_eval_plot(store, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(store))
    run = tmp_path / "run"
    # a task name trains on its medium dataset
    argv = ["train", "bc-quantile", "invertedpendulum", "--run-dir", str(run), "--device", "cpu", "--no-progress"]
    assert main([*argv, "--set", *FAST]) == 0
    out = capsys.readouterr().out
    assert f"run {run}: step 60" in out and "normalised score" in out
    assert sorted(p.name for p in (run / "evals").iterdir()) == ["step_00000030.json", "step_00000060.json"]

    assert main(["eval", str(run), "--episodes", "3", "--device", "cpu"]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["step"] == 60 and results["episodes"] == len(results["returns"]) == 3
    assert "normalised score" in capsys.readouterr().out

    assert main(["train", "--resume", str(run), "--set", "train.steps=90", "--no-progress"]) == 0
    assert "step 90 (resumed at step 60)" in capsys.readouterr().out

    png = tmp_path / "curves.png"
    assert main(["plot", str(run), str(run), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "bc-nope", "invertedpendulum"], "unknown agent 'bc-nope'; valid agents: a2c, bc-adacat"),
        (["train", "bc-dlml", "pendulum"], "neither a task (cartpole"),
        (["train", "bc-dlml", "invertedpendulum", "--set", "agent.heads=x"], "unknown key 'agent.heads'; valid"),
        (["train", "bc-dlml", "invertedpendulum", "--set", "train.seed=1.5"], "train.seed must be an integer"),
        (["train", "bc-dlml"], "give an agent and a dataset or task"),
        (["train", "--resume", "nowhere"], "is not a run directory"),
        (["eval", "nowhere"], "is not a run directory"),
        (["plot", "nowhere"], "is not a run directory"),
    ],
)
def test_bad_input_is_reported_without_a_traceback(argv, message, store, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(store))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
