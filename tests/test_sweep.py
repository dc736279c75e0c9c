"""``rlgen sweep`` on a local Ray instance: a tiny grid trains, summarises and skips finished runs when run again; a
failing run is reported while the others finish; bad names and unreachable clusters fail before any run."""

from __future__ import annotations

import argparse
import json
import socket

import pytest
import yaml
from helpers import minari_store

from rlgen.cli import main
from rlgen.commands.sweep import add_parser, grid_from_args
from rlgen.scale import Grid, plan_sweep, summarise
from rlgen.scale.sweep import RunRecord

pytest.importorskip("ray")

TINY = ["train.steps=4", "train.batch_size=16", "train.log_every=2", "train.eval_every=0", "train.eval_episodes=1",
        "train.eval_envs=1", "agent.hidden=[8]"]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return minari_store(tmp_path_factory, {"invertedpendulum-medium": 300})


def _sweep(out, *extra: str) -> list[str]:
    return ["sweep", "--agents", "bc-gaussian", "bc-dlml", "--datasets", "invertedpendulum-medium", "--seeds", "0",
            "1", "--set", *TINY, "--out", str(out), "--cpus", "2", "--device", "cpu", *extra]  # fmt: skip


def test_sweep_runs_summarises_and_skips_finished_runs(store, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(store))
    out = tmp_path / "sweep"
    # a folder in the way of one run: that run fails, the other three finish
    blocked = out / "bc-dlml" / "invertedpendulum-medium" / "default" / "seed1"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a run")
    assert main(_sweep(out)) == 1
    printed = capsys.readouterr().out
    assert "[4/4]" in printed and "FAILED bc-dlml on invertedpendulum-medium seed 1: FileExistsError" in printed
    assert "4 runs: 3 trained, 0 resumed, 0 already finished, 1 failed" in printed
    summary = json.loads((out / "summary.json").read_text())
    rows = {row["agent"]: row for row in summary["rows"]}
    assert rows["bc-gaussian"]["seeds"] == [0, 1] and rows["bc-gaussian"]["steps"] == 4
    assert rows["bc-dlml"]["seeds"] == [0] and rows["bc-dlml"]["failed_seeds"] == [1]
    assert isinstance(rows["bc-gaussian"]["score_mean"], float) and rows["bc-gaussian"]["wall_s"] > 0
    assert "| bc-gaussian | invertedpendulum-medium | default |" in (out / "summary.md").read_text()
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    run = out / "bc-gaussian" / "invertedpendulum-medium" / "default" / "seed0"
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["seed"] == 0
    assert main(["eval", str(run), "--episodes", "1", "--device", "cpu"]) == 0  # an ordinary run folder

    # again, with the way cleared: the finished runs are skipped and keep their wall times, the failed one trains
    blocked.unlink()
    capsys.readouterr()
    assert main(_sweep(out, "--sequential")) == 0
    printed = capsys.readouterr().out
    assert "3 of 4 runs already finished (skipped)" in printed and "[1/1] trained bc-dlml" in printed
    again = json.loads((out / "summary.json").read_text())
    assert [r["status"] for r in again["runs"]] == ["finished", "finished", "finished", "trained"]
    assert again["runs"][0]["wall_s"] == summary["runs"][0]["wall_s"]
    assert again["runs"][0]["update_s"] == summary["runs"][0]["update_s"]
    assert 0 < summary["runs"][0]["update_s"] < summary["runs"][0]["wall_s"]  # training without evaluation

    # a sweep killed before writing its summary: the times live in each run folder too
    (out / "summary.json").unlink()
    assert main(_sweep(out, "--sequential")) == 0
    last = json.loads((out / "summary.json").read_text())
    assert [r["wall_s"] for r in last["runs"]] == [r["wall_s"] for r in again["runs"]]


def test_a_longer_sweep_resumes_its_runs(store, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(store))
    out = tmp_path / "sweep"
    argv = ["sweep", "--agents", "bc-gaussian", "--datasets", "invertedpendulum-medium", "--out", str(out),
            "--device", "cpu", "--sequential", "--set", *TINY]  # fmt: skip
    assert main(argv) == 0
    assert "eval/score" not in capsys.readouterr().out  # one line per run, not the run's own evaluation lines
    first = json.loads((out / "summary.json").read_text())["runs"][0]
    assert main([*argv, "train.steps=6"]) == 0
    assert "[1/1] resumed bc-gaussian on invertedpendulum-medium seed 0" in capsys.readouterr().out
    resumed = json.loads((out / "summary.json").read_text())["runs"][0]
    assert resumed["wall_s"] > first["wall_s"] and resumed["update_s"] > first["update_s"]  # both invocations'
    # a changed config is not mixed into the same folder
    assert main([*argv, "train.batch_size=8"]) == 2
    assert "holds a run with train.batch_size=16, but this sweep asks for 8" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--agents", "bc-nope"], "unknown agent 'bc-nope'"),
        (["--agents", "image"], "image is a generative recipe"),
        (["--datasets", "nowhere-medium"], "'nowhere-medium'"),
        (["--datasets", "hopper-medium"], "dataset hopper-medium of the sweep is not on this machine"),
        (["--set", "agent.nope=1"], "--set of agent bc-gaussian: unknown key 'agent.nope'"),
        (["--variant", "a", "train.seed=3"], "a sweep sets train.seed from its seeds"),
        (["--variant", "v", "agent.nope=1"], "variant v of agent bc-gaussian: unknown key 'agent.nope'"),
        (["--seeds", "1", "1"], "seeds named twice in the sweep: 1"),
        (["--address", "headnode"], "Ray address 'headnode' must be host:port, ray://host:port or auto"),
    ],
)
def test_bad_names_fail_before_any_run(extra, message, store, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(store))
    argv = ["sweep", "--agents", "bc-gaussian", "--datasets", "invertedpendulum-medium", "--out", str(tmp_path / "s")]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_an_unreachable_address_is_one_line(store, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(store))
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = ["sweep", "--agents", "bc-gaussian", "--datasets", "invertedpendulum-medium", "--out", str(tmp_path / "s"),
            "--address", f"127.0.0.1:{port}"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"rlgen sweep: error: cannot reach a Ray cluster at 127.0.0.1:{port} (Connection refused); start "
                   f"one with `ray start --head` or leave out --address for a local instance")  # fmt: skip


def test_grid_file_and_flags(store, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(store))
    grid = tmp_path / "grid.yaml"
    grid.write_text("agents: [bc-gaussian]\ndatasets: [invertedpendulum-medium]\nseeds: [3]\nset: [train.steps=7]\n"
                    "variants:\n  small: ['agent.hidden=[8]']\n  wide: ['agent.hidden=[64]']\nout: here\n")  # fmt: skip

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["sweep", str(grid), "--seeds", "0", "1"])
    parsed, out = grid_from_args(args)
    assert out.name == "here" and parsed.seeds == [0, 1] and list(parsed.variants) == ["small", "wide"]
    cells = plan_sweep(parsed, tmp_path / "s")
    assert len(cells) == 4 and cells[0].path == tmp_path / "s/bc-gaussian/invertedpendulum-medium/small/seed0"
    assert cells[0].recipe.train.steps == 7 and list(cells[3].recipe.agent.hidden) == [64]
    assert cells[3].ref.path.is_absolute() and not cells[3].finished
    # agents with overrides of their own: keys one agent has and the other lacks
    grid.write_text("agents:\n  bc-gaussian: ['agent.hidden=[16]']\n  bc-dlml: [agent.head.num_mixtures=3]\n"
                    "datasets: [invertedpendulum-medium]\nset: [train.steps=7]\n")  # fmt: skip
    gaussian, dlml = plan_sweep(grid_from_args(parser.parse_args(["sweep", str(grid), "--out", "x"]))[0], "x")
    assert list(gaussian.recipe.agent.hidden) == [16] and dlml.recipe.agent.head.num_mixtures == 3
    assert gaussian.recipe.train.steps == dlml.recipe.train.steps == 7
    grid.write_text("agents: [bc-gaussian]\ndataset: [x]\n")
    with pytest.raises(ValueError, match="grid.yaml: unknown key 'dataset'; valid keys: agents, datasets"):
        grid_from_args(parser.parse_args(["sweep", str(grid)]))


def test_summary_rows() -> None:
    records = [RunRecord("a", "d", "default", seed, f"p{seed}", "trained", 10, score, 2.0)
               for seed, score in ((0, 10.0), (1, 20.0))]  # fmt: skip
    records.append(RunRecord("a", "d", "default", 2, "p2", "failed", error="boom"))
    (row,) = summarise(records)
    assert row["score_mean"] == 15.0 and row["score_se"] == pytest.approx(5.0)
    assert row["seeds"] == [0, 1] and row["failed_seeds"] == [2] and row["wall_s"] == 4.0 and row["steps"] == 10
    with pytest.raises(ValueError, match="at least one of agents"):
        Grid([], ["d"])
