"""``rlgen demo`` end to end at toy size: makes the missing dataset, trains, evaluates, prints and plots."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlgen.cli import main
from rlgen.data import locate


def test_demo_makes_the_dataset_trains_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    out = tmp_path / "demo"
    args = ["demo", "--dataset", "hopper-medium-3k", "--train-steps", "40", "--eval-episodes", "2", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "hopper-medium-3k: generating 3,000 steps of Hopper-v5" in printed
    path = locate("hopper-medium-3k").path
    assert path == tmp_path / "minari" / "rlgen" / "hopper" / "medium-3k-v0"
    # where the dataset went, and where training reads it and its cache from
    assert f"dataset hopper-medium-3k: written to {path}" in printed and "cached as .npz in" in printed
    for agent in ("BC-dlml", "BC-gaussian"):
        assert agent in printed
    assert (out / "curves.png").stat().st_size > 10_000
    assert (out / "bc-dlml" / "metrics.jsonl").is_file()
    # A second demo reuses the dataset instead of regenerating it.
    assert main([*args[:-1], str(tmp_path / "again")]) == 0
    assert "found on disk" in capsys.readouterr().out


def test_demo_refuses_before_any_work_when_its_outputs_exist_or_a_head_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    (tmp_path / "mine" / "bc-dlml").mkdir(parents=True)
    assert main(["demo", "--out", str(tmp_path / "mine")]) == 2
    assert "bc-dlml already exist; choose another --out" in capsys.readouterr().err
    assert main(["demo", "--heads", "dlml", "dlmll", "--out", str(tmp_path / "new")]) == 2
    assert "unknown head 'dlmll'" in capsys.readouterr().err
    assert not (tmp_path / "minari").exists() and not (tmp_path / "new").exists()  # nothing was generated
