"""``rlgen --help`` and every sub-command's help: fast (no torch), plain text, every option documented, the agents
and datasets listed."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from rlgen.catalog import agent_names, dataset_names
from rlgen.cli import build_parser, main

HEAVY = {"torch", "numpy", "gymnasium", "minari", "h5py"}


def all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and every sub-command parser below it."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found.extend(all_parsers(sub))
    return found


def test_building_the_parser_imports_nothing_heavy() -> None:
    code = f"import sys; from rlgen.cli import build_parser; build_parser(); print({HEAVY!r} & sys.modules.keys())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "set()"


@pytest.mark.parametrize("parser", all_parsers(build_parser()), ids=lambda p: p.prog)
def test_help_is_plain_text_and_documents_every_option(parser: argparse.ArgumentParser) -> None:
    text = parser.format_help()
    assert "``" not in text and not re.search(r":[a-z]+:`", text), text
    undocumented = [a.dest for a in parser._actions if not a.help and not isinstance(a, argparse._SubParsersAction)]
    assert undocumented == [], f"{parser.prog}: options without help: {undocumented}"


@pytest.mark.parametrize("argv", [["train"], ["data"], ["data", "make"]])
def test_help_lists_the_names(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    text = capsys.readouterr().out
    assert "hopper-{random,medium," in text and "hopper-medium" in dataset_names()
    if argv == ["train"]:
        assert all(name in text for name in agent_names()) and "bc-dlml" in agent_names()
