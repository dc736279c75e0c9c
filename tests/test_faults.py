"""Faults end in one clear line and leave nothing behind: the CLI's error boundary, malformed dataset files, full
disks (simulated with RLIMIT_FSIZE in a subprocess, so writes fail with EFBIG as on a full disk), killed writes,
symlinks, task names read from data, and run folders (one writer, a checkpoint on SIGINT/SIGTERM, resume checks).
Each case is a row of benchmarks/reliability.md."""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import random_episodes

from rlgen.cli import main
from rlgen.data import (
    DatasetError,
    Episodes,
    list_local_datasets,
    load_dataset,
    read_minari_hdf5,
    write_d4rl,
    write_minari,
)
from rlgen.data.atomic import atomic_path
from rlgen.data.cache import cache_dir
from rlgen.data.minari_io import minari_root
from rlgen.data.store import d4rl_root
from rlgen.tasks import load_task
from rlgen.train import RunDir, TrainConfig, list_checkpoints, load_checkpoint

REPO = Path(__file__).resolve().parent.parent


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def hidden_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.name != ".lock"] if root.exists() else []


def run_limited(code: str, limit: int, cwd: Path) -> subprocess.CompletedProcess:
    """Run python ``code`` with files capped at ``limit`` bytes: writes beyond fail with EFBIG, like a full disk."""

    def cap() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, preexec_fn=cap, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ the CLI boundary


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (PermissionError(errno.EACCES, "Permission denied", "/runs/x"), 1, "permission denied: /runs/x"),
        (OSError(errno.ENOSPC, "No space left on device", "/data/x.hdf5"), 1, "no space left on /data/x.hdf5"),
        (OSError(errno.EIO, "Input/output error", "/data/x.hdf5"), 1, "Input/output error: /data/x.hdf5"),
        (RuntimeError("CUDA out of memory"), 1, "CUDA out of memory"),
        (ValueError("x.yaml: key 'a' must be > 0"), 2, "x.yaml: key 'a' must be > 0"),
        (KeyError("unknown task 'nope'"), 2, "unknown task 'nope'"),
        (FileExistsError("x exists; pass --force"), 2, "x exists; pass --force"),
        (TypeError("bad operand"), 1, "TypeError: bad operand (an rlgen bug? rerun with --debug for the traceback)"),
    ],
)
def test_every_error_is_one_line_with_its_exit_status(monkeypatch, capsys, error, status, message) -> None:
    def fail(args):
        raise error

    monkeypatch.setattr("rlgen.commands.data.run_list", fail)
    assert main(["data", "list"]) == status
    assert error_line(capsys) == f"rlgen data: error: {message}"


def test_interrupt_is_one_line_and_130(monkeypatch, capsys) -> None:
    def interrupt(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("rlgen.commands.data.run_list", interrupt)
    assert main(["data", "list"]) == 130
    assert error_line(capsys) == "rlgen data: interrupted"


def test_debug_shows_the_traceback(monkeypatch) -> None:
    def fail(args):
        raise PermissionError(errno.EACCES, "Permission denied", "/runs/x")

    monkeypatch.setattr("rlgen.commands.data.run_list", fail)
    with pytest.raises(PermissionError):
        main(["--debug", "data", "list"])
    monkeypatch.setenv("RLGEN_DEBUG", "1")
    with pytest.raises(PermissionError):
        main(["data", "list"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through any permission")
def test_unwritable_run_folder_is_permission_denied(tmp_path, capsys) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert main(["data", "make", "cartpole-random-50", "--out", str(locked / "d" / "x.hdf5")]) == 1
    assert "permission denied: " in error_line(capsys)


def test_closed_pipe_exits_quietly(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        f"{sys.executable} -m rlgen.cli data list | head -1; exit ${{PIPESTATUS[0]}}", shell=True,
        executable="/bin/bash", env=env, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert result.stdout.startswith("local datasets")
    assert result.stderr == "" and result.returncode == 141


# ------------------------------------------------------------------------------------------ malformed files


@pytest.fixture
def minari_dataset() -> Path:
    return write_minari(random_episodes(), "test/t/ok-v0")


def edit_metadata(folder: Path, edit) -> Path:
    file = folder / "data" / "metadata.json"
    meta = json.loads(file.read_text())
    file.write_text(json.dumps(edit(meta)))
    return file


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: [m], "expected a JSON object of dataset metadata; found a list"),
        (lambda m: {**m, "total_episodes": "abc"}, "key 'total_episodes' is 'abc'; expected a count"),
        (lambda m: {**m, "total_steps": 1e13}, "key 'total_steps' is 10000000000000.0; expected a count"),
        (lambda m: {**m, "total_steps": -5}, "key 'total_steps' is -5; expected a count"),
        (lambda m: {**m, "total_steps": 10**13}, "episodes hold 40 steps; metadata.json says total_steps=10000000"),
        (lambda m: {**m, "total_episodes": 10**13}, "missing key 'episode_2' (metadata.json says total_episodes="),
        (lambda m: {**m, "observation_space": "{not json"}, "key 'observation_space' is not a serialised gymnasium"),
        (lambda m: {**m, "action_space": '{"type": "Nope"}'}, "key 'action_space' is not a serialised gymnasium"),
        (lambda m: {**m, "rlgen": "xyz"}, "key 'rlgen' is 'xyz'; expected an object written by rlgen"),
        (lambda m: {**m, "rlgen": {**m["rlgen"], "metadata": [1, 2]}}, "key 'rlgen.metadata' is [1, 2]; expected"),
        (lambda m: {**m, "ref_min_score": "low"}, "key 'ref_min_score' is 'low'; expected a number"),
    ],
)
def test_malformed_minari_metadata_is_one_line_naming_file_and_key(minari_dataset, capsys, edit, message) -> None:
    file = edit_metadata(minari_dataset, edit)
    assert main(["data", "info", str(minari_dataset)]) == 2
    line = error_line(capsys)
    assert line.startswith("rlgen data: error: ") and message in line
    assert str(file.parent) in line  # the file (or its data folder) is named


def _replace(f: h5py.File, key: str, node: object) -> None:
    if key in f:
        del f[key]
    f[key] = node


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: _replace(f, "episode_1/infos", np.zeros(3)), "key 'episode_1/infos' is a dataset; expected a group"),
        (lambda f: _replace(f, "episode_0/infos", np.float64(1)), "key 'episode_0/infos' is a dataset; expected a"),
        (lambda f: _replace(f, "episode_1/infos", h5py.SoftLink("/nowhere")),
         "key 'episode_1/infos' is a link to nothing; expected a group of info arrays"),
        (lambda f: _replace(f, "episode_0/infos", np.dtype("f8")), "key 'episode_0/infos' is a named datatype"),
        (lambda f: _replace(f, "episode_1/infos/x", h5py.SoftLink("/nowhere")),
         "key 'episode_1/infos/x' is a link to nothing; expected an info array or a group of them"),
    ],
)  # fmt: skip
def test_minari_infos_that_are_not_a_group_of_arrays_are_named(minari_dataset, capsys, edit, message) -> None:
    file = minari_dataset / "data" / "main_data.hdf5"
    with h5py.File(file, "a") as f:
        edit(f)
    with pytest.raises(DatasetError, match=re.escape(f"{file}: {message}")):
        read_minari_hdf5(minari_dataset)
    assert main(["data", "info", str(minari_dataset)]) == 2
    assert f"{file}: {message}" in error_line(capsys)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.__delitem__("rewards"), "missing key 'rewards' (expected (N,) rewards)"),
        (lambda f: (f.__delitem__("actions"), f.create_dataset("actions", data=np.zeros((7, 2)))),
         "key 'actions' has shape (7, 2); expected 40 rows"),
        (lambda f: f.create_dataset("infos", data=np.zeros(40)), "key 'infos' is a dataset; expected a group"),
        (lambda f: f.create_dataset("metadata", data=np.zeros(2)), "key 'metadata' is a dataset; expected a group"),
    ],
)  # fmt: skip
def test_malformed_d4rl_file(tmp_path, capsys, edit, message) -> None:
    path = write_d4rl(random_episodes(), tmp_path / "x.hdf5")
    with h5py.File(path, "a") as f:
        edit(f)
    assert main(["data", "info", str(path)]) == 2
    assert f"{path}: {message}" in error_line(capsys)


def test_zero_step_dataset_is_an_error_at_load(tmp_path, capsys) -> None:
    path = tmp_path / "zero.hdf5"
    with h5py.File(path, "w") as f:
        for key, shape, dtype in (("observations", (0, 11), "f4"), ("actions", (0, 3), "f4"), ("rewards", (0,), "f4"),
                                  ("terminals", (0,), bool), ("timeouts", (0,), bool)):  # fmt: skip
            f.create_dataset(key, shape=shape, dtype=dtype)
    message = f"{path}: the dataset holds no steps"
    assert main(["data", "info", str(path)]) == 2
    assert message in error_line(capsys)
    run = tmp_path / "run"
    assert main(["train", "bc-dlml", str(path), "--task", "hopper", "--run-dir", str(run), "--device", "cpu"]) == 2
    assert message in error_line(capsys)
    assert not run.exists()


def test_task_name_from_metadata_must_be_plain(tmp_path, capsys) -> None:
    path = write_d4rl(random_episodes(task="../../evilenv"), tmp_path / "x.hdf5")
    assert main(["data", "info", str(path)]) == 2
    assert "task name '../../evilenv' is not a plain name (no path separators or '..'); valid tasks: " in error_line(
        capsys
    )
    for name in ("..", "a/b", "/etc", ""):
        with pytest.raises(ValueError, match="is not a plain name"):
            load_task(name)


# ------------------------------------------------------------------------------------------ failed writes


def check_data_make_on_a_full_disk(out: Path, target: Path, cwd: Path) -> None:
    """``rlgen data make invertedpendulum-random-3k --out OUT`` with files capped at 60 kB must exit 1 with the
    one-line error ``no space left on TARGET``."""
    result = run_limited(
        f"""
        import sys
        from rlgen.cli import main
        sys.exit(main(["data", "make", "invertedpendulum-random-3k", "--out", {str(out)!r}]))
        """,
        limit=60_000,
        cwd=cwd,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith(f"rlgen data: error: no space left on {target}")
    assert "Traceback" not in result.stderr


def test_minari_write_to_a_full_disk_is_a_clean_error(tmp_path) -> None:
    # Before the fix this ended in a segmentation fault inside h5py's close, leaving the staging folder.
    store = tmp_path / "store"
    target = store / "rlgen" / "invertedpendulum" / "random-3k-v0"
    check_data_make_on_a_full_disk(store, target, tmp_path)
    assert not target.exists() and hidden_files(store) == []


def test_d4rl_write_to_a_full_disk_is_a_clean_error(tmp_path) -> None:
    out = tmp_path / "d4rl" / "x.hdf5"
    check_data_make_on_a_full_disk(out, out, tmp_path)
    assert list(out.parent.iterdir()) == []


def test_checkpoint_write_to_a_full_disk_is_a_clean_error(tmp_path) -> None:
    # torch.save straight to the file says "RuntimeError: unexpected pos" here.
    folder = tmp_path / "checkpoints"
    result = run_limited(
        f"""
        from pathlib import Path
        import torch
        from rlgen.cli import describe
        from rlgen.train.checkpoint import save_checkpoint
        try:
            save_checkpoint(Path({str(folder)!r}), 5, {{"agent": {{"w": torch.zeros(100_000)}}}}, keep=2)
        except Exception as e:
            print(describe(e))
        """,
        limit=100_000,
        cwd=tmp_path,
    )
    assert result.stdout.strip() == f"(1, 'no space left on {folder / 'step_00000005.pt'} (File too large)')"
    assert list(folder.iterdir()) == []


class _Usage:
    free = 1_000_000


def test_free_space_is_checked_before_generating(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setattr("rlgen.data.atomic.shutil.disk_usage", lambda path: _Usage())
    out = tmp_path / "x.hdf5"
    assert main(["data", "make", "hopper-random", "--out", str(out)]) == 1
    line = error_line(capsys)
    assert line.startswith(f"rlgen data: error: no space left on {out}: the write needs about 117 MB and ")
    assert list(tmp_path.iterdir()) == []


def test_staging_of_a_killed_write_is_removed_by_the_next_write(tmp_path) -> None:
    target = tmp_path / "x.hdf5"
    marker = tmp_path / "writing"
    script = f"""
        import time
        from pathlib import Path
        from rlgen.data.atomic import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            tmp.write_bytes(b"half")
            Path({str(marker)!r}).touch()
            time.sleep(60)
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "writer never started"
            time.sleep(0.05)
        # a running write's staging folder is left alone
        with atomic_path(tmp_path / "y.hdf5") as other:
            other.write_bytes(b"y")
        with atomic_path(target, force=True) as tmp:
            assert len(hidden_files(tmp_path)) == 2  # the running write's and this one's
            tmp.write_bytes(b"x")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert len(hidden_files(tmp_path)) == 1  # the killed write's
    write_d4rl(random_episodes(), target, force=True)
    assert hidden_files(tmp_path) == []
    assert load_dataset(target).num_steps == 40


def test_force_over_a_symlinked_dataset_folder_keeps_what_it_points_to(tmp_path, capsys) -> None:
    real = write_minari(random_episodes(), "keep/t/real-v0", root=tmp_path / "elsewhere")
    link = minari_root() / "rlgen" / "cartpole" / "random-50-v0"
    link.parent.mkdir(parents=True)
    link.symlink_to(real, target_is_directory=True)
    assert main(["data", "make", "cartpole-random-50", "--force"]) == 2
    line = error_line(capsys)
    assert line == (
        f"rlgen data: error: {link} is a symbolic link (to {real}); rlgen does not overwrite links, even with "
        f"--force: remove the link or write elsewhere"
    )
    assert link.is_symlink() and load_dataset(real).num_steps == 40


# ------------------------------------------------------------------------------------------ hermetic tests


def test_every_location_is_a_temporary_folder(tmp_path_factory) -> None:
    base = tmp_path_factory.getbasetemp()
    for path in (Path.home(), minari_root(), d4rl_root(), cache_dir(), Path(os.environ["XDG_CACHE_HOME"])):
        assert path.is_relative_to(base), path
    assert list_local_datasets() == []


# ------------------------------------------------------------------------------------------ run folders

TINY = ["--task", "hopper", "--device", "cpu", "--no-progress", "--set", "train.steps=30", "train.batch_size=16",
        "train.log_every=5", "train.checkpoint_every=10", "train.eval_every=0", "train.eval_episodes=1",
        "train.eval_envs=1", "agent.hidden=[8]"]  # fmt: skip


@pytest.fixture
def hopper_file(tmp_path) -> Path:
    """A small random D4RL file of Hopper's shapes (11 observations, 3 actions in [-1, 1])."""
    rng = np.random.default_rng(0)
    n = 200
    episodes = Episodes(
        observations=rng.normal(size=(n, 11)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        terminals=np.zeros(n, bool),
        timeouts=np.isin(np.arange(n), [99, 199]),
        episode_ends=np.array([100, 200]),
        final_observations=rng.normal(size=(2, 11)).astype(np.float32),
    )
    return write_d4rl(episodes, tmp_path / "hopper.hdf5")


def train(agent: str, data: Path, run: Path, *extra: str) -> int:
    return main(["train", agent, str(data), "--run-dir", str(run), *TINY, *extra])


def assert_same_run(a: Path, b: Path) -> None:
    """``a`` and ``b`` end with the same weights, optimiser state and metrics."""

    def same(x: object, y: object) -> bool:
        if isinstance(x, dict):
            return isinstance(y, dict) and x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        if isinstance(x, list | tuple):
            return len(x) == len(y) and all(same(u, v) for u, v in zip(x, y, strict=True))  # type: ignore[arg-type]
        return torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y

    (step_a, last_a), (step_b, last_b) = (list_checkpoints(run / "checkpoints")[-1] for run in (a, b))
    assert step_a == step_b
    assert same(load_checkpoint(last_a)["agent"], load_checkpoint(last_b)["agent"])
    assert RunDir(a).read_metrics() == RunDir(b).read_metrics()


def test_a_run_folder_has_one_writer_and_a_killed_holder_leaves_no_lock(hopper_file, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert train("bc-gaussian", hopper_file, run) == 0
    capsys.readouterr()
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.name != ".lock"}
    script = f"""
        import sys
        from rlgen.data.atomic import hold_lock
        with hold_lock({str(run / ".lock")!r}, "the run"):  # as RunDir.writing does, without importing torch
            print("held", flush=True)
            sys.stdin.read()
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline() == "held\n"
        assert main(["train", "--resume", str(run), "--set", "train.steps=40", "--no-progress"]) == 1
        assert error_line(capsys) == (
            f"rlgen train: error: run {run} is in use by process {holder.pid} (it holds {run / '.lock'}); wait for "
            f"it to end or stop it"
        )
        after = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.name != ".lock"}
        assert after == before  # config.yaml, metrics, checkpoints
        # evaluating reads checkpoints only: it takes no lock
        assert main(["eval", str(run), "--episodes", "1", "--device", "cpu"]) == 0
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(["train", "--resume", str(run), "--set", "train.steps=40", "--no-progress"]) == 0
    assert "step 40 (resumed at step 30)" in capsys.readouterr().out


def test_a_new_run_in_a_folder_another_process_creates_is_refused(hopper_file, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    with RunDir(run).writing():  # another open file: flock refuses it as it would another process
        assert train("bc-gaussian", hopper_file, run) == 1
        assert error_line(capsys).startswith(f"rlgen train: error: run {run} is in use by process {os.getpid()} ")
    assert [p.name for p in run.iterdir()] == [".lock"]  # the holder's; nothing of the refused run
    assert train("bc-gaussian", hopper_file, run) == 0  # a folder holding only a released lock is empty


def test_eval_reads_the_newest_checkpoint_again_if_the_trainer_deleted_it(hopper_file, tmp_path, monkeypatch) -> None:
    run = tmp_path / "run"
    assert train("bc-gaussian", hopper_file, run) == 0
    newest = list_checkpoints(run / "checkpoints")[-1][1]
    listings = iter([newest.with_name("step_00000005.pt")])  # listed, then deleted by the trainer's keep

    def latest(folder: Path) -> Path | None:
        return next(listings, newest)

    monkeypatch.setattr("rlgen.runs.launch.latest_checkpoint", latest)
    assert main(["eval", str(run), "--episodes", "1", "--device", "cpu"]) == 0
    assert json.loads((run / "results.json").read_text())["step"] == 30


def test_sigint_checkpoints_the_step_and_resume_is_bit_identical(hopper_file, tmp_path, capsys) -> None:
    whole = tmp_path / "whole"
    assert train("bc-gaussian", hopper_file, whole) == 0
    run = tmp_path / "run"
    # The subprocess waits for the signal in the 12th update (12: neither a log nor a checkpoint step).
    script = f"""
        import signal, sys, time
        from rlgen.algos.bc import BC
        from rlgen.cli import main
        # a suite run as a background job inherits SIGINT ignored, which rlgen rightly leaves ignored: undo that
        signal.signal(signal.SIGINT, signal.default_int_handler)
        update, calls = BC.update, []
        def waiting_update(self, batch):
            calls.append(1)
            if len(calls) == 12:
                handler = signal.getsignal(signal.SIGINT)
                print("step 12", flush=True)
                # rlgen's handler puts the previous one back once it has run: wait for that, however early the
                # signal came (a pause() here would wait forever for a signal that arrived before it)
                while signal.getsignal(signal.SIGINT) is handler:
                    time.sleep(0.01)
            return update(self, batch)
        BC.update = waiting_update
        sys.exit(main(["train", "bc-gaussian", {str(hopper_file)!r}, "--run-dir", {str(run)!r}, *{TINY!r}]))
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline() == "step 12\n"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    checkpoint = run / "checkpoints" / "step_00000012.pt"
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == (
        f"rlgen train: interrupted by SIGINT at step 12; its checkpoint is {checkpoint}"
    )
    assert "Traceback" not in err
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [10, 12]
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert "step 30 (resumed at step 12)" in capsys.readouterr().out
    assert_same_run(whole, run)


def test_sigterm_ends_like_ctrl_c_with_a_checkpoint(hopper_file, tmp_path, monkeypatch, capsys) -> None:
    from rlgen.algos.bc import BC

    whole = tmp_path / "whole"
    assert train("bc-gaussian", hopper_file, whole) == 0
    update, calls = BC.update, []

    def terminated_update(self, batch):  # noqa: ANN001, ANN202
        calls.append(1)
        if len(calls) == 7:
            os.kill(os.getpid(), signal.SIGTERM)
        return update(self, batch)

    run = tmp_path / "run"
    monkeypatch.setattr(BC, "update", terminated_update)
    before = signal.getsignal(signal.SIGTERM)  # not SIG_DFL once Ray (test_sweep) has run in this process
    assert train("bc-gaussian", hopper_file, run) == 143
    checkpoint = run / "checkpoints" / "step_00000007.pt"
    assert error_line(capsys) == f"rlgen train: interrupted by SIGTERM at step 7; its checkpoint is {checkpoint}"
    assert signal.getsignal(signal.SIGTERM) == before  # the trainer's handler is gone, the previous one back
    monkeypatch.setattr(BC, "update", update)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert "step 30 (resumed at step 7)" in capsys.readouterr().out
    assert_same_run(whole, run)


def test_resume_of_a_run_without_a_checkpoint_says_it_trains_from_step_0(hopper_file, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert train("bc-gaussian", hopper_file, run) == 0
    for _, path in list_checkpoints(run / "checkpoints"):
        path.unlink()  # as a run killed (kill -9) before its first checkpoint
    with pytest.warns(UserWarning, match=f"run {run} has no checkpoint \\(it was stopped before its first\\): "
                      "training it from step 0"):  # fmt: skip
        assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"run {run}: step 30\n" in out and "resumed" not in out


def test_short_runs_checkpoint_a_tenth_of_the_way() -> None:
    assert TrainConfig(steps=1500, checkpoint_every=10_000).checkpoint_interval == 150
    assert TrainConfig(steps=1500, checkpoint_every=1500).checkpoint_interval == 150
    assert TrainConfig(steps=1500, checkpoint_every=1000).checkpoint_interval == 1000  # a mid-run one: as asked
    assert TrainConfig(steps=5, checkpoint_every=10).checkpoint_interval == 1


def test_a_foreign_checkpoint_is_refused_before_the_config_is_touched(hopper_file, tmp_path, capsys) -> None:
    run, other = tmp_path / "dlml", tmp_path / "gaussian"
    assert train("bc-dlml", hopper_file, run) == 0
    assert train("bc-gaussian", hopper_file, other, "train.steps=40") == 0
    foreign = run / "checkpoints" / "step_00000040.pt"
    shutil.copy(other / "checkpoints" / "step_00000040.pt", foreign)
    capsys.readouterr()
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main(["train", "--resume", str(run), "--set", "train.steps=60", "--no-progress"]) == 2
    line = error_line(capsys)
    assert line.startswith(
        f"rlgen train: error: checkpoint {foreign} does not match the model of run {run} (bc-dlml on hopper): "
    )
    assert "size mismatch" in line or "Missing key" in line or "Unexpected key" in line, line
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == files  # config.yaml, checkpoints: as were
