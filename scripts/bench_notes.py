"""The hand-written ``## Notes`` section at the end of a benchmark's Markdown, kept when a script rewrites its table.

>>> from bench_notes import with_notes     # scripts/ is on the path of a script run as python scripts/bench_x.py
>>> path.write_text(with_notes(path, table))
"""

from __future__ import annotations

from pathlib import Path

NOTES_HEADING = "## Notes"


def with_notes(path: Path, table: str) -> str:
    """``table`` (the new Markdown of ``path``) followed by the ``## Notes`` section of the file now at ``path``."""
    old = path.read_text() if path.is_file() else ""
    start = old.find(f"\n{NOTES_HEADING}\n")
    return table if start < 0 else table.rstrip("\n") + "\n" + old[start:]
