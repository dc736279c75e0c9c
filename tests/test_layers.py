"""Layering: lower layers never import higher ones, not even inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rlgen

PACKAGE = Path(rlgen.__file__).resolve().parent
#: what the data layer may not import: environments' code and every layer above it
DATA_FORBIDDEN = ("gymnasium", "rlgen.rollout", "rlgen.algos", "rlgen.train", "rlgen.generative", "rlgen.sb3",
                  "rlgen.commands", "rlgen.runs", "rlgen.behavior")  # fmt: skip
#: Minari's files store gymnasium spaces and the env spec, so its writer needs gymnasium (it never steps an env)
GYMNASIUM_ALLOWED = {"minari_io.py"}


def imported_modules(path: Path, source: str | None = None) -> set[str]:
    """Every module the file ``path`` of rlgen (or ``source`` as if it were that file) imports, anywhere in it
    (functions included), with relative imports resolved."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def offending(names: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden))


@pytest.mark.parametrize("path", sorted((PACKAGE / "data").glob("*.py")), ids=lambda p: p.name)
def test_data_never_imports_environments_or_higher_layers(path: Path) -> None:
    forbidden = tuple(f for f in DATA_FORBIDDEN if not (f == "gymnasium" and path.name in GYMNASIUM_ALLOWED))
    assert offending(imported_modules(path), forbidden) == [], f"{path} imports a higher layer"


def test_task_recipes_import_no_gymnasium() -> None:
    assert offending(imported_modules(PACKAGE / "tasks.py"), ("gymnasium", "mujoco", "rlgen.rollout")) == []


def test_the_import_walk_sees_imports_inside_functions_and_relative_imports() -> None:
    source = "import numpy\ndef f():\n    import gymnasium\n    from ..rollout import envs\n    from . import store\n"
    names = imported_modules(PACKAGE / "data" / "probe.py", source)
    assert names == {"numpy", "gymnasium", "rlgen.rollout", "rlgen.rollout.envs", "rlgen.data", "rlgen.data.store"}
    assert offending(names, DATA_FORBIDDEN) == ["gymnasium", "rlgen.rollout", "rlgen.rollout.envs"]
