"""``rlgen heads``: the toy comparison runs end to end and the multimodal heads beat the Gaussian."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlgen.cli import main
from rlgen.commands.heads import fit_head


def test_heads_command_writes_the_plot_and_the_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    plot = tmp_path / "densities.png"
    assert main(["heads", "--steps", "20", "--heads", "uniform", "dlml", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "uniform" in out and "dlml" in out and plot.stat().st_size > 10_000


def test_unknown_head_is_reported_without_a_traceback(capsys: pytest.CaptureFixture) -> None:
    assert main(["heads", "--heads", "flow"]) == 2
    assert "unknown head 'flow'; valid heads: gaussian" in capsys.readouterr().err


def test_multimodal_heads_fit_the_bimodal_target_better_than_a_gaussian() -> None:
    nll = {kind: fit_head(kind, steps=300, seed=0)[2] for kind in ("gaussian", "uniform", "adacat", "dlml")}
    # Two branches of width 0.05: a single Gaussian cannot fall below ~0.3 nats, the binned heads can.
    for kind in ("uniform", "adacat", "dlml"):
        assert nll[kind] < nll["gaussian"] - 0.5, nll
