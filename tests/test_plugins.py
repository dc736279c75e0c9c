"""Extension points: registering heads and agents, and the plugins the CLI imports before it runs."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal

import pytest

from rlgen.algos import BC
from rlgen.cli import main
from rlgen.heads import HEAD_CONFIGS, GaussianHeadConfig, HeadConfig, head_config, register_head
from rlgen.runs import ALGOS, get_algo, load_plugins, register_agent


@pytest.fixture(autouse=True)
def _restore_registries():
    heads, algos = dict(HEAD_CONFIGS), dict(ALGOS)
    yield
    HEAD_CONFIGS.clear(), HEAD_CONFIGS.update(heads)
    ALGOS.clear(), ALGOS.update(algos)


@dataclass(frozen=True)
class WideGaussianConfig(GaussianHeadConfig):
    type: Literal["wide_gaussian"] = "wide_gaussian"  # type: ignore[assignment]
    init_log_std: float = 1.0


def test_a_registered_head_is_named_by_its_type_and_a_taken_name_is_refused() -> None:
    assert register_head(WideGaussianConfig) is WideGaussianConfig
    assert head_config("wide_gaussian", squash=False) == WideGaussianConfig(squash=False)
    register_head(WideGaussianConfig)  # the same class again is harmless

    @dataclass(frozen=True)
    class Impostor(GaussianHeadConfig):
        type: Literal["dlml"] = "dlml"  # type: ignore[assignment]

    with pytest.raises(ValueError, match="head 'dlml' is already registered as DLMLHeadConfig"):
        register_head(Impostor)
    with pytest.raises(TypeError, match="not a HeadConfig dataclass"):
        register_head(int)  # type: ignore[arg-type]

    @dataclass(frozen=True)
    class Nameless(HeadConfig):
        pass

    with pytest.raises(ValueError, match="needs a field `type"):
        register_head(Nameless)


def test_a_registered_agent_is_found_and_a_taken_name_is_refused() -> None:
    class MyBC(BC):
        pass

    assert register_agent("my_bc", MyBC) is MyBC and get_algo("my_bc") is MyBC
    with pytest.raises(ValueError, match="algo 'bc' is already registered as BC"):
        register_agent("bc", MyBC)
    with pytest.raises(TypeError, match="not an rlgen.train.Learner"):
        register_agent("x", object)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="unknown algo 'my_bd' \\(did you mean 'my_bc'\\?\\)"):
        get_algo("my_bd")


def test_the_cli_imports_the_plugins_named_in_the_environment(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "my_rlgen_plugin.py").write_text(
        "from rlgen.algos import BC\nfrom rlgen.runs import register_agent\n\n\n"
        "class PluginBC(BC):\n    pass\n\n\nregister_agent('plugin_bc', PluginBC)\n"
    )
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("RLGEN_PLUGINS", "my_rlgen_plugin")
    assert load_plugins() == ["RLGEN_PLUGINS module 'my_rlgen_plugin'"]
    assert get_algo("plugin_bc").__name__ == "PluginBC"

    monkeypatch.setenv("RLGEN_PLUGINS", "my_rlgen_plugin, broken_plugin")
    assert main(["data", "list"]) == 2
    assert "plugin RLGEN_PLUGINS module 'broken_plugin' failed to import: RuntimeError: boom" in capsys.readouterr().err
    sys.modules.pop("broken_plugin", None)
