"""The README's Python examples run as written.

Every ```` ```python ```` block of README.md is executed as a module of its own, in the test's temporary working
folder (conftest.py also points HOME, Minari, D4RL and the rlgen cache at temporary folders), except a block whose
fence line is directly preceded by the line ``<!-- not run -->``: mark only examples that need what the suite
cannot have (a user's D4RL file, minutes of training). Examples keep their budgets tiny (datasets of a few thousand
steps made with ``make_dataset(..., out=...)``, a few hundred gradient steps) so that this file runs in about
30 s. The registries an example may extend (``HEAD_CONFIGS``, ``rlgen.runs.ALGOS``) are restored after it.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from rlgen.heads import HEAD_CONFIGS
from rlgen.runs import ALGOS

README = Path(__file__).resolve().parents[1] / "README.md"
NOT_RUN = "<!-- not run -->"
FENCE = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """``(line of the fence, code, runs)`` for every ```` ```python ```` block of ``text``."""
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        blocks.append((line, match.group(1), before.strip() != NOT_RUN))
    return blocks


BLOCKS = python_blocks(README.read_text())


def test_python_blocks_are_found() -> None:
    text = "intro\n```python\nx = 1\n```\n\n<!-- not run -->\n```python\ny = 2\n```\n```bash\nls\n```\n"
    assert python_blocks(text) == [(2, "x = 1\n", True), (7, "y = 2\n", False)]
    assert sum(runs for _, _, runs in BLOCKS) >= 6, "the README's guides lost their runnable examples"


@pytest.mark.parametrize("line,code", [(line, code) for line, code, runs in BLOCKS if runs],
                         ids=[f"README.md:{line}" for line, _, runs in BLOCKS if runs])  # fmt: skip
def test_readme_example_runs(line: int, code: str) -> None:
    # Padding keeps the traceback's line numbers those of README.md; a real module lets dataclasses resolve names.
    module = types.ModuleType(f"readme_example_{line}")
    module.__file__ = str(README)
    heads, algos = dict(HEAD_CONFIGS), dict(ALGOS)
    sys.modules[module.__name__] = module
    try:
        exec(compile("\n" * line + code, str(README), "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
        HEAD_CONFIGS.clear()
        HEAD_CONFIGS.update(heads)
        ALGOS.clear()
        ALGOS.update(algos)
