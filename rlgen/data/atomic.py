"""Atomic writes: build the output at a hidden temporary path next to the target, rename it on success.

A killed or failing write therefore leaves either the previous dataset or nothing, never half a dataset, and an
existing target is only replaced when the caller passes ``force=True``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def check_writable(target: Path, force: bool) -> None:
    """Raise ``FileExistsError`` if ``target`` exists and ``force`` is false."""
    if target.exists() and not force:
        raise FileExistsError(f"{target} already exists; pass force=True (--force) to overwrite it")


@contextmanager
def atomic_path(target: str | os.PathLike[str], *, force: bool = False, inner: str | None = None) -> Iterator[Path]:
    """Yield a not-yet-existing path to write a file or folder at; on success it replaces ``target``.

    The path lies in a hidden temporary folder next to the target (same filesystem, so the final rename is
    atomic; Minari and ``ls`` skip hidden folders); the folder is removed whatever happens. ``inner`` places
    the output deeper inside that folder (default: the target's name), for writers that build their own
    path from a root, such as Minari's ``<root>/<dataset_id>``.
    """
    target = Path(target)
    check_writable(target, force)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    work = tmp / (inner or target.name)
    try:
        yield work
        if not work.exists():
            raise FileNotFoundError(f"the write to {target} produced no output at {work}")
        _replace(work, target, force)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace(source: Path, target: Path, force: bool) -> None:
    check_writable(target, force)  # again: another process may have written the target meanwhile
    if target.is_dir() and not target.is_symlink():
        # Folders cannot be swapped by one rename: move the old one aside first, delete it after.
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, trash / target.name)
        os.replace(source, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(source, target)
