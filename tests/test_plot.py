"""``rlgen plot`` on hand-written run folders: labels, the default output and refusing to overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.axes
import pytest
import yaml

from rlgen.cli import main
from rlgen.commands.plot import plot_runs
from rlgen.train import RunDir


def fake_run(path: Path, recipe: str, dataset: str) -> Path:
    path.mkdir(parents=True)
    config = {"recipe": recipe, "dataset": dataset, "train": {"seed": 0}}
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [{"step": s, "train/loss": 1.0 / s, "eval/score": float(s), "eval/score_se": 1.0} for s in (1, 2, 3)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_runs_on_different_datasets_are_labelled_with_them(tmp_path: Path, monkeypatch) -> None:
    runs = [RunDir.open(fake_run(tmp_path / d, "bc-dlml", d)) for d in ("hopper-medium", "walker2d-medium")]
    labels: list[str] = []
    original = matplotlib.axes.Axes.plot
    monkeypatch.setattr(
        matplotlib.axes.Axes, "plot", lambda ax, *a, **k: labels.append(k["label"]) or original(ax, *a, **k)
    )
    plot_runs(runs, tmp_path / "curves.png")
    assert set(labels) == {"bc-dlml on hopper-medium seed 0", "bc-dlml on walker2d-medium seed 0"}


def test_an_existing_out_file_is_kept_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = fake_run(tmp_path / "run", "bc-dlml", "hopper-medium")
    mine = tmp_path / "fig.png"
    mine.write_text("a figure of mine")
    assert main(["plot", str(run), "--out", str(mine)]) == 2
    assert "already exists" in capsys.readouterr().err and mine.read_text() == "a figure of mine"
    assert main(["plot", str(run), "--out", str(mine), "--force"]) == 0
    assert mine.read_bytes()[:4] == b"\x89PNG"
    for _ in range(2):  # the default PNG inside the run folder is rlgen's own: re-plotting replaces it
        assert main(["plot", str(run)]) == 0
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
