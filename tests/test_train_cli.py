"""``rlgen train`` / ``imitate`` / ``eval`` / ``plot`` end to end on a small InvertedPendulum dataset: results,
and bad input refused before any run folder is written or any file replaced."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml
from helpers import minari_store

from rlgen.cli import main
from rlgen.data import load_dataset, write_d4rl
from rlgen.runs import act_with, load_agent

FAST = ["train.steps=60", "train.batch_size=32", "train.log_every=20", "train.eval_every=30",
        "train.eval_episodes=2", "train.checkpoint_every=30", "agent.hidden=[32]"]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return minari_store(tmp_path_factory, {"invertedpendulum-medium": 2000})


def test_train_eval_plot(store, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(store))
    run = tmp_path / "run"
    # a task name trains on its medium dataset
    argv = ["train", "bc-quantile", "invertedpendulum", "--run-dir", str(run), "--device", "cpu"]
    assert main([*argv, "--set", *FAST]) == 0
    out, err = capsys.readouterr()
    assert f"run {run}: step 60" in out and "last normalised score" in out
    # where the run and its data are, before training; the progress bar names the agent, dataset and seed
    assert out.startswith(f"run {run}\ndataset invertedpendulum-medium: {store}")
    assert "bc-quantile invertedpendulum-medium seed0" in err and "loss=" in err
    evals = {p.name: json.loads(p.read_text())["score_mean"] for p in (run / "evals").iterdir()}
    assert sorted(evals) == ["step_00000030.json", "step_00000060.json"]
    best_step = 30 if evals["step_00000030.json"] > evals["step_00000060.json"] else 60
    assert f"; best {max(evals.values()):.1f} at step {best_step} (checkpoints/best.pt)" in out

    assert main(["eval", str(run), "--episodes", "3", "--device", "cpu"]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["step"] == 60 and results["episodes"] == len(results["returns"]) == 3
    out, err = capsys.readouterr()
    assert "normalised score" in out and "evaluating in invertedpendulum" in err and "3/3" in err
    best = tmp_path / "best.json"
    assert main(["eval", str(run), "--checkpoint", "best", "--episodes", "2", "--out", str(best)]) == 0
    assert json.loads(best.read_text())["step"] == best_step
    assert main(["eval", str(run), "--checkpoint", "last", "--episodes", "2", "--out", str(best), "--force"]) == 0
    assert json.loads(best.read_text())["step"] == 60

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
        (["train", "bc-dlml", "nowhere/file.hdf5"], "dataset path nowhere/file.hdf5 does not exist"),
        (["train", "bc-dlml", "hoper-medium"], "dataset 'hoper-medium' not found (did you mean 'hopper-medium'?)"),
        (
            ["train", "dqn", "cartpole-medium"],
            "takes a task, not a dataset (cartpole-medium); e.g. `rlgen train dqn cartpole`",
        ),
        (
            ["train", "bc-dlml", "invertedpendulum", "--set", "train.steps"],
            "override 'train.steps' is not key=value; give it a value: train.steps=<value>",
        ),
        (
            ["train", "bc-dlml", "invertedpendulum", "--set", "agent.head.num_mixturez=3"],
            "unknown key 'agent.head.num_mixturez'; valid keys: agent.head.type, agent.head.num_mixtures",
        ),
    ],
)
def test_bad_input_is_reported_without_a_traceback(argv, message, store, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(store))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_eval_of_a_folder_of_runs_names_them(tmp_path, capsys) -> None:
    for name in ("bc-dlml", "bc-gaussian"):  # what rlgen demo writes in its folder
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text("{}")
    assert main(["eval", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} is not a run directory but holds runs (bc-dlml, bc-gaussian)" in err
    assert f"give one, e.g. {tmp_path / 'bc-dlml'}" in err


# ------------------------------------------------------------------------------- validation before the run folder

TINY = ["--device", "cpu", "--no-progress", "--set", "train.steps=2", "train.eval_episodes=1", "agent.hidden=[8]"]


def _write_copy(store, path, metadata: dict) -> str:
    """The store's invertedpendulum-medium as a D4RL file at ``path`` whose metadata is ``metadata``."""
    episodes = load_dataset(store / "rlgen" / "invertedpendulum" / "medium-v0")
    write_d4rl(replace(episodes, metadata=metadata), path)
    return str(path)


@pytest.mark.parametrize(
    ("metadata", "recorded"),
    [({"task": "hopper", "env_id": "Hopper-v5"}, "task hopper and env_id Hopper-v5"), ({"env_id": "Pendulum-v1"},
     "env_id Pendulum-v1")],
)  # fmt: skip
def test_a_dataset_recorded_on_another_task_is_refused(metadata, recorded, store, tmp_path, capsys) -> None:
    data = _write_copy(store, tmp_path / "other.hdf5", metadata)
    run = tmp_path / "run"
    assert main(["train", "bc-dlml", data, "--task", "invertedpendulum", "--run-dir", str(run), *TINY]) == 2
    err = capsys.readouterr().err
    assert f"records {recorded}, but task invertedpendulum (InvertedPendulum-v5) was requested" in err
    assert not run.exists()


def test_a_dataset_recording_no_task_trains_on_the_given_task(store, tmp_path, capsys) -> None:
    data = _write_copy(store, tmp_path / "bare.hdf5", {})
    run = tmp_path / "run"
    assert main(["train", "bc-dlml", data, "--task", "invertedpendulum", "--run-dir", str(run), *TINY]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["task"] == "invertedpendulum"


def test_a_dataset_from_another_version_of_the_environment_trains_with_a_warning(store, tmp_path) -> None:
    data = _write_copy(store, tmp_path / "v4.hdf5", {"task": "invertedpendulum", "env_id": "InvertedPendulum-v4"})
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match="recorded on InvertedPendulum-v4; task invertedpendulum evaluates in "):
        assert main(["train", "bc-dlml", data, "--run-dir", str(run), *TINY]) == 0


def test_actions_outside_the_tasks_box_are_refused_before_training(store, tmp_path, capsys) -> None:
    episodes = load_dataset(store / "rlgen" / "invertedpendulum" / "medium-v0")
    actions = episodes.actions.copy()
    actions[1234, 0] = 3.5  # InvertedPendulum's box is [-3, 3]
    data = tmp_path / "wide.hdf5"
    write_d4rl(replace(episodes, actions=actions), data)
    run = tmp_path / "run"
    assert main(["train", "bc-dlml", str(data), "--run-dir", str(run), *TINY]) == 2
    err = capsys.readouterr().err
    assert "has value 3.5 at episode" in err and "(row 1234), dimension 0, outside the action box [-3.0, 3.0]" in err
    assert not run.exists()


def test_imitating_from_another_tasks_dataset_is_refused(store, tmp_path, capsys) -> None:
    data = _write_copy(store, tmp_path / "other.hdf5", {"task": "hopper"})
    argv = ["imitate", "gail", "invertedpendulum", "--dataset", data, "--run-dir", str(tmp_path / "r")]
    assert main(argv) == 2
    assert "records task hopper, but task invertedpendulum" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "dqn", "invertedpendulum"], "DQN needs a discrete action space"),
        (["train", "bc-dlml", "invertedpendulum", "--device", "tpu"], "unknown device 'tpu'"),
        (["train", "bc-dlml", "invertedpendulum", "--device", "cuda"], "torch sees no CUDA device"),
        (["imitate", "gail", "invertedpendulum", "--dataset", "invertedpendulum-medium", "--trajectories", "5000"],
         "asked for 5000 trajectories"),
    ],
)  # fmt: skip
def test_a_failed_validation_writes_no_run_folder(argv, message, store, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(store))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = tmp_path / "run"
    for _ in range(2):  # the same command fails the same way again: nothing was left to block it
        assert main([*argv, "--run-dir", str(run), "--no-progress"]) == 2
        assert message in capsys.readouterr().err
        assert not run.exists()


def test_run_dir_must_be_new_or_a_run_to_resume(store, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(store))
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("x")
    afile = tmp_path / "user.txt"
    afile.write_text("keep me")
    for run_dir, message in [(other, f"{other} is not empty and is not a run directory"),
                             (afile, f"{afile} is a file, not a folder"),
                             (afile / "sub", f"{afile} is a file, not a folder")]:  # fmt: skip
        assert main(["train", "bc-dlml", "invertedpendulum", "--run-dir", str(run_dir), *TINY]) == 2
        err = capsys.readouterr().err
        assert message in err and "--resume" not in err and "Traceback" not in err
    assert afile.read_text() == "keep me" and sorted(p.name for p in other.iterdir()) == ["todo.txt"]


# ------------------------------------------------------------------------------- checkpoints, resume and eval


@pytest.fixture(scope="module")
def trained(store, tmp_path_factory):
    """A run of 20 steps with checkpoints at 10 and 20, and a run of another model size; copy before changing."""
    root = tmp_path_factory.mktemp("runs")
    data = str(store / "rlgen" / "invertedpendulum" / "medium-v0")
    common = ["--device", "cpu", "--no-progress", "--set", "train.eval_episodes=1", "train.checkpoint_every=10"]
    assert main(["train", "bc-dlml", data, "--run-dir", str(root / "run"), *common, "train.steps=20",
                 "agent.hidden=[8]"]) == 0  # fmt: skip
    assert main(["train", "bc-dlml", data, "--run-dir", str(root / "wide"), *common, "train.steps=1",
                 "agent.hidden=[16]"]) == 0  # fmt: skip
    return root


@pytest.fixture
def run(trained, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained / "run", copy)
    return copy


def _truncate(path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


def test_eval_reports_a_truncated_foreign_or_bogus_checkpoint_by_name(run, trained, tmp_path, capsys) -> None:
    newest = run / "checkpoints" / "step_00000020.pt"
    _truncate(newest)
    assert main(["eval", str(run), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {newest} is unreadable" in err and "step_00000010.pt" in err and "Traceback" not in err

    wide = trained / "wide" / "checkpoints" / "step_00000001.pt"
    assert main(["eval", str(run), "--checkpoint", str(wide), "--device", "cpu"]) == 2
    assert f"checkpoint {wide} does not match the model of run {run}" in capsys.readouterr().err

    text = tmp_path / "some.txt"
    text.write_text("not a checkpoint")
    assert main(["eval", str(run), "--checkpoint", str(text), "--device", "cpu"]) == 2
    assert f"checkpoint {text} is unreadable" in capsys.readouterr().err


def test_eval_refuses_a_negative_seed(run, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["eval", str(run), "--seed", "-1"])
    assert exit_.value.code == 2 and "argument --seed: must be at least 0, got -1" in capsys.readouterr().err


def test_eval_keeps_an_existing_out_file_unless_forced(run, tmp_path, capsys) -> None:
    out = tmp_path / "user.txt"
    out.write_text("keep me")
    argv = ["eval", str(run), "--out", str(out), "--episodes", "1", "--device", "cpu"]
    assert main(argv) == 2
    assert f"{out} already exists" in capsys.readouterr().err and out.read_text() == "keep me"
    assert main([*argv, "--force"]) == 0
    assert json.loads(out.read_text())["step"] == 20


def test_eval_replaces_the_runs_own_results_json(run, capsys) -> None:
    argv = ["eval", str(run), "--episodes", "1", "--device", "cpu"]
    assert main([*argv, "--seed", "0"]) == 0
    assert main([*argv, "--seed", "5"]) == 0  # no --force needed for the default RUN/results.json
    assert json.loads((run / "results.json").read_text())["seed"] == 5


def test_eval_acts_with_the_deterministic_action_asked_for(run, tmp_path, capsys) -> None:
    out = tmp_path / "peak.json"
    assert main(["eval", str(run), "--action", "peak", "--episodes", "1", "--device", "cpu", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["step"] == 20
    assert main(["eval", str(run), "--action", "median", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "unknown deterministic action 'median'; choose one of mode, mean, peak" in err and "Traceback" not in err
    agent = load_agent(run, device="cpu")[0]
    obs = torch.randn(5, 4).numpy()
    act_with(agent, "peak")
    with torch.no_grad():
        peak = agent.policy(torch.as_tensor(obs)).peak().numpy()
        wide = agent.policy(torch.as_tensor(obs)).peak(0.5).numpy()
    np.testing.assert_allclose(agent.act(obs), peak, atol=1e-6)
    assert not np.allclose(peak, wide, atol=1e-3)  # so the next check tells the widths apart
    act_with(agent, peak_width=0.5)
    np.testing.assert_allclose(agent.act(obs), wide, atol=1e-6)
    assert main(["eval", str(run), "--action", "peak", "--peak-width", "1.5", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "agent.peak_width must be in (0, 1], got 1.5" in err and "Traceback" not in err


def test_resume_sets_an_unreadable_newest_checkpoint_aside(run, capsys) -> None:
    checkpoints = run / "checkpoints"
    _truncate(checkpoints / "step_00000020.pt")
    with pytest.warns(UserWarning, match="step_00000020.pt is unreadable.*resuming from step 10"):
        assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert "step 20 (resumed at step 10)" in capsys.readouterr().out
    assert (checkpoints / "step_00000020.pt.unreadable").is_file()

    for path in checkpoints.glob("step_*.pt"):
        _truncate(path)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    assert f"no checkpoint of run {run} loads" in capsys.readouterr().err


def test_resume_refuses_fewer_steps_than_reached_and_keeps_the_config(run, capsys) -> None:
    config = (run / "config.yaml").read_text()
    assert main(["train", "--resume", str(run), "--set", "train.steps=10", "--no-progress"]) == 2
    assert "is already at step 20; train.steps=10 would not train further" in capsys.readouterr().err
    assert (run / "config.yaml").read_text() == config


def test_a_run_of_an_older_rlgen_evaluates_and_resumes_or_says_which_key_changed(run, capsys) -> None:
    config = run / "config.yaml"
    raw = yaml.safe_load(config.read_text())
    head = raw["agent"].pop("head")
    raw["agent"] |= {"head": head.pop("type"), "head_options": head}  # as rlgen wrote it before typed head configs
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["eval", str(run), "--episodes", "1", "--device", "cpu"]) == 0
    capsys.readouterr()
    raw["agent"]["lr_decay_steps"] = 1000
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["train", "--resume", str(run), "--set", "train.steps=30", "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"rlgen train: error: {config}: this run was made by an older rlgen: agent.lr_decay_steps=1000 is gone "
        "(IQL's policy lr decays over train.steps now); the run can be evaluated (rlgen eval) but not resumed as it "
        "was configured"
    )
    raw["agent"]["lr_decay_steps"] = 20  # the run's train.steps: today's schedule
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["train", "--resume", str(run), "--set", "train.steps=30", "--no-progress"]) == 0
    assert yaml.safe_load(config.read_text())["agent"]["head"]["type"] == "dlml"  # rewritten in today's spelling
