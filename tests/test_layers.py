"""The layers of rlgen import downwards only, including imports inside functions.

Lowest first: (heads | catalog) < (config | nets) < tasks < data < rollout < train < (algos | generative | sb3)
< runs < scale < commands < cli < __main__. A module may import its own package and any lower layer; packages of the
same rank do not import each other. Task files and the data layer never touch environments (no gymnasium), except
Minari's writer, whose files store gymnasium spaces and the env spec (it never steps an env). The rules are read
from the source with ``ast``, so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rlgen

PACKAGE = Path(rlgen.__file__).resolve().parent
RANKS: dict[str, int] = {
    "heads": 0,
    "catalog": 0,
    "config": 1,
    "nets": 1,
    "tasks": 2,
    "data": 3,
    "rollout": 4,
    "train": 5,
    "algos": 6,
    "generative": 6,
    "sb3": 6,
    "runs": 7,
    "scale": 8,
    "commands": 9,
    "cli": 10,
    "__main__": 11,
}
NO_ENVIRONMENTS = ("gymnasium", "mujoco")
GYMNASIUM_ALLOWED = {PACKAGE / "data" / "minari_io.py"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    """``rlgen.data.store`` -> ``data``; ``rlgen.tasks`` -> ``tasks``; ``rlgen`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "rlgen" else ""


def imported_modules(path: Path, source: str | None = None) -> set[str]:
    """Every module the file ``path`` (or ``source`` as if it were that file) imports, anywhere in it
    (functions included), with relative imports resolved."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, filename=str(path))):
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


def upward_imports(path: Path, names: set[str]) -> list[str]:
    own = layer(module_name(path))
    return sorted(
        n for n in names if n.startswith("rlgen.") and layer(n) not in ("", own) and RANKS[layer(n)] >= RANKS[own]
    )


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_package_has_a_rank() -> None:
    unknown = sorted({layer(module_name(p)) for p in SOURCES} - set(RANKS) - {""})
    assert not unknown, f"give these packages a rank in RANKS: {unknown}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_downwards(path: Path) -> None:
    if layer(module_name(path)) == "":
        return  # rlgen/__init__.py
    assert upward_imports(path, imported_modules(path)) == [], f"{path} imports a layer that is not below it"


@pytest.mark.parametrize("path", [PACKAGE / "tasks.py", *sorted((PACKAGE / "data").glob("*.py"))], ids=str)
def test_task_recipes_and_data_never_touch_environments(path: Path) -> None:
    if path in GYMNASIUM_ALLOWED:
        return
    found = sorted(n for n in imported_modules(path) if n.split(".")[0] in NO_ENVIRONMENTS)
    assert found == [], f"{path} imports environment code"


def test_the_walk_sees_imports_inside_functions_and_relative_imports() -> None:
    source = "import numpy\ndef f():\n    import gymnasium\n    from ..rollout import envs\n    from . import store\n"
    probe = PACKAGE / "data" / "probe.py"
    names = imported_modules(probe, source)
    assert names == {"numpy", "gymnasium", "rlgen.rollout", "rlgen.rollout.envs", "rlgen.data", "rlgen.data.store"}
    assert upward_imports(probe, names) == ["rlgen.rollout", "rlgen.rollout.envs"]
