"""Atomic writes: build the output at a hidden temporary path next to the target, rename it on success.

A killed or failing write therefore leaves either the previous dataset or nothing, never half a dataset, and an
existing target is only replaced when the caller passes ``force=True``. A write that runs out of space raises
``OSError(ENOSPC)`` naming the target; the staging folders a killed write left behind are removed by the next
write of the same target.

:func:`hold_lock` is the one advisory lock of rlgen (staging folders here, run folders in :mod:`rlgen.train`): an
``flock`` the OS releases when its process dies, so a killed process never leaves a stale lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})  # full disk, quota, file size limit
_LOCK = ".lock"  # held (flock) inside a staging folder while its write runs
_UNLOCKED_GRACE_S = 60.0  # a staging folder without a lock file this old was left by a killed write


class LockHeldError(RuntimeError):
    """Another process holds the lock :func:`hold_lock` was asked for; ``pid`` is its process id (``None`` if it
    had not written it yet)."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


@contextmanager
def hold_lock(path: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Hold an exclusive advisory lock on the file ``path`` (made if missing; it records this process's pid) while
    the block runs.

    Raises :class:`LockHeldError` at once, naming ``what`` and the holder's pid, if another process holds it. The
    file is left in place: removing it would let a third process lock a new file while the second holds the old.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    with os.fdopen(fd, "r+") as lock:
        if not _try_lock(lock):
            text = lock.read().strip()
            pid = int(text) if text.isdigit() else None
            holder = f"process {pid}" if pid is not None else "another process"
            raise LockHeldError(f"{what} is in use by {holder} (it holds {path}); wait for it to end or stop it", pid)
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield


def _try_lock(file: IO[str]) -> bool:
    """Take the exclusive ``flock`` on the open ``file`` unless another process holds it; whether it was taken."""
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def check_writable(target: Path, force: bool) -> None:
    """Raise ``FileExistsError`` if ``target`` exists and ``force`` is false, or if it is a symbolic link."""
    if target.is_symlink():
        # Replacing the link could delete or shadow what it points to: the user decides what to remove.
        raise FileExistsError(
            f"{target} is a symbolic link (to {os.readlink(target)}); rlgen does not overwrite links, "
            f"even with --force: remove the link or write elsewhere"
        )
    if target.exists() and not force:
        raise FileExistsError(f"{target} already exists; pass --force to overwrite it (force=True from Python)")


def no_space_error(target: str | os.PathLike[str], cause: OSError | None = None) -> OSError:
    """The ``OSError(ENOSPC)`` rlgen raises when ``target`` cannot be written for lack of space."""
    detail = f" ({cause.strerror})" if cause is not None and cause.strerror else ""
    return OSError(errno.ENOSPC, f"no space left on {target}{detail}", str(target))


def check_free_space(target: str | os.PathLike[str], nbytes: int) -> None:
    """Raise ``OSError(ENOSPC)`` unless the filesystem that will hold ``target`` has ``nbytes`` free."""
    folder = Path(target).absolute().parent
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free < nbytes:
        raise OSError(
            errno.ENOSPC,
            f"no space left on {target}: the write needs about {nbytes / 1e6:,.0f} MB and {folder} has "
            f"{free / 1e6:,.0f} MB free",
            str(target),
        )


def dataset_bytes(steps: int, obs_dim: int, act_dim: int) -> int:
    """Bytes a dataset of ``steps`` float32 rows needs on disk (observations twice, with a 10% margin)."""
    per_step = 4 * (2 * obs_dim + act_dim + 1) + 2  # observations, next/final observations, actions, reward, flags
    return int(steps * per_step * 1.1)


@contextmanager
def atomic_path(target: str | os.PathLike[str], *, force: bool = False, inner: str | None = None) -> Iterator[Path]:
    """Yield a not-yet-existing path to write a file or folder at; on success it replaces ``target``.

    The path lies in a hidden temporary folder next to the target (same filesystem, so the final rename is
    atomic; Minari and ``ls`` skip hidden folders); the folder is removed whatever happens. ``inner`` places
    the output deeper inside that folder (default: the target's name), for writers that build their own
    path from a root, such as Minari's ``<root>/<dataset_id>``. An ``OSError`` for lack of space becomes
    :func:`no_space_error` of ``target``.
    """
    target = Path(target)
    check_writable(target, force)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    work = tmp / (inner or target.name)
    try:
        with hold_lock(tmp / _LOCK, f"staging folder {tmp}"):  # released if this process dies: marks it stale
            try:
                yield work
                if not work.exists():
                    raise FileNotFoundError(f"the write to {target} produced no output at {work}")
                _replace(work, target, force)
            except OSError as e:
                if e.errno in NO_SPACE:
                    raise no_space_error(target, e) from e
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_staging(target: Path) -> None:
    """Remove the staging (``.<name>.*.tmp``) and trash (``.<name>.*.old``) folders of ``target`` that no running
    write holds."""
    prefix = f".{target.name}."
    for folder in target.parent.iterdir():
        if not (folder.name.startswith(prefix) and folder.suffix in (".tmp", ".old") and folder.is_dir()):
            continue
        if folder.suffix == ".tmp" and _held(folder):
            continue
        shutil.rmtree(folder, ignore_errors=True)


def _held(staging: Path) -> bool:
    """Whether a running write holds ``staging`` (a folder made a moment ago may not have its lock file yet)."""
    try:
        lock = open(staging / _LOCK)  # noqa: SIM115 - closed below; closing it drops the probe's lock
    except FileNotFoundError:
        try:
            return time.time() - staging.stat().st_mtime < _UNLOCKED_GRACE_S
        except FileNotFoundError:
            return False  # removed meanwhile
    except OSError:
        return True  # unreadable: not ours to judge
    with lock:
        return not _try_lock(lock)


def _replace(source: Path, target: Path, force: bool) -> None:
    check_writable(target, force)  # again: another process may have written the target meanwhile
    if target.is_dir():
        # Folders cannot be swapped by one rename: move the old one aside first, delete it after.
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, trash / target.name)
        os.replace(source, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(source, target)
