"""Agent recipes: ``agents/<name>.yaml`` (agents that act in a task) and ``agents/generative/<name>.yaml`` (the
image and audio models), one spelling for both::

    algo: bc                      # a name in ALGOS: an rlgen.algos agent, or image / audio (rlgen.generative)
    train: {steps: 100000, ...}   # rlgen.train.TrainConfig (generative agents: without the environment keys)
    agent: {head: dlml, ...}      # the agent class's Config dataclass

Every block is overridable with ``--set train.<key>=...`` / ``agent.<key>=...``.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, is_dataclass, replace
from functools import partial
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import yaml

from rlgen.algos import ALGOS as ACTING_ALGOS
from rlgen.catalog import agents_root, list_recipe_files
from rlgen.config import ConfigError, apply_overrides, build, to_dict
from rlgen.generative import GENERATIVE_ALGOS
from rlgen.heads.config import did_you_mean
from rlgen.train.agent import Agent, Learner
from rlgen.train.config import TrainConfig

#: algo name of a recipe -> its agent class
ALGOS: dict[str, type[Learner]] = {**ACTING_ALGOS, **GENERATIVE_ALGOS}
#: TrainConfig keys that only steer evaluation in an environment: a recipe of an agent that does not act refuses them
ENVIRONMENT_KEYS = ("eval_episodes", "eval_envs", "eval_seed")
RECIPE_KEYS = ("algo", "train", "agent")


PLUGINS_VAR = "RLGEN_PLUGINS"
#: entry-point group of installed packages that add agents or heads when imported
PLUGIN_GROUP = "rlgen.plugins"


def register_agent(name: str, agent_class: type[Learner]) -> type[Learner]:
    """Make ``agent_class`` the algorithm ``name`` of recipes (``algo: <name>``), :func:`start_run`,
    :func:`resume_run` and :func:`load_agent`. A name already taken by another class is a ``ValueError``."""
    if not (isinstance(agent_class, type) and issubclass(agent_class, Learner)):
        raise TypeError(f"{agent_class!r} is not an rlgen.train.Learner (or Agent) subclass")
    if not is_dataclass(getattr(agent_class, "Config", None)):
        raise TypeError(f"{agent_class.__name__}.Config must be the dataclass of its recipe's agent: block")
    if ALGOS.get(name, agent_class) is not agent_class:
        raise ValueError(f"algo {name!r} is already registered as {ALGOS[name].__name__}")
    ALGOS[name] = agent_class
    return agent_class


def load_plugins() -> list[str]:
    """Import the modules that register agents or heads: those named in ``$RLGEN_PLUGINS`` (comma-separated
    module names) and the ``rlgen.plugins`` entry points of installed packages. Returns what was imported; a
    plugin that fails to import is a ``ValueError`` naming it."""
    names = [n.strip() for n in os.environ.get(PLUGINS_VAR, "").split(",") if n.strip()]
    loaded = []
    for source, load in [
        *((f"{PLUGINS_VAR} module {n!r}", partial(importlib.import_module, n)) for n in names),
        *((f"entry point {e.name!r} ({e.value})", e.load) for e in entry_points(group=PLUGIN_GROUP)),
    ]:
        try:
            load()
        except Exception as error:  # the plugin's own bug: name it, since the user cannot see which one failed
            raise ValueError(f"rlgen plugin {source} failed to import: {type(error).__name__}: {error}") from error
        loaded.append(source)
    return loaded


def get_algo(name: str) -> type[Learner]:
    """The agent class registered as ``name``; an unknown name raises ``KeyError`` listing the valid ones."""
    if name not in ALGOS:
        raise KeyError(f"unknown algo {name!r}{did_you_mean(name, ALGOS)}; valid algos: {', '.join(sorted(ALGOS))}")
    return ALGOS[name]


def acts(algo: type[Learner]) -> bool:
    """Whether agents of class ``algo`` act in a task (and are evaluated there) rather than model data."""
    return issubclass(algo, Agent)


@dataclass(frozen=True)
class Recipe:
    """A parsed agent recipe: the algorithm name and its typed train / agent configs."""

    name: str
    algo: str
    train: TrainConfig
    agent: Any  # the agent class's Config dataclass

    @property
    def agent_class(self) -> type[Learner]:
        return get_algo(self.algo)

    def with_overrides(self, overrides: Sequence[str]) -> Recipe:
        """Apply ``train.<key>=<value>`` / ``agent.<key>=<value>`` overrides (type-checked)."""
        groups: dict[str, list[str]] = {"train": [], "agent": []}
        for item in overrides:
            group, dot, rest = item.partition(".")
            if group not in groups or not dot:
                raise ConfigError(f"override {item!r} must start with 'train.' or 'agent.'; valid keys: "
                                  f"{', '.join(self.valid_keys())}")  # fmt: skip
            groups[group].append(rest)
        refuse_train_keys(self.agent_class, [item.partition("=")[0].split(".")[0] for item in groups["train"]], True)
        return replace(self, train=apply_overrides(self.train, groups["train"], "train"),
                       agent=apply_overrides(self.agent, groups["agent"], "agent"))  # fmt: skip

    def valid_keys(self) -> list[str]:
        return [f"train.{k}" for k in train_keys(self.agent_class)] + [f"agent.{k}" for k in to_dict(self.agent)]

    def to_dict(self) -> dict[str, Any]:
        keys = train_keys(self.agent_class)
        train = {k: v for k, v in to_dict(self.train).items() if k in keys}
        return {"algo": self.algo, "train": train, "agent": to_dict(self.agent)}


def train_keys(algo: type[Learner]) -> list[str]:
    """The ``train:`` keys a recipe of ``algo`` takes: every TrainConfig key, less the environment ones for
    agents that do not act."""
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    return names if acts(algo) else [k for k in names if k not in ENVIRONMENT_KEYS]


def refuse_train_keys(algo: type[Learner], keys: Sequence[str], quoted: bool = False) -> None:
    """``ConfigError`` for the first of ``keys`` that is not a ``train:`` key of ``algo``, listing the valid ones."""
    valid = train_keys(algo)
    for key in keys:
        if key in ENVIRONMENT_KEYS and key not in valid:
            name = f"'train.{key}'" if quoted else f"train.{key}"
            raise ConfigError(f"unknown key {name}; valid keys: {', '.join(f'train.{k}' for k in valid)}")


def generative_root() -> Path:
    """``agents/generative/``: the recipes of ``rlgen generative train`` (a subfolder, so that ``rlgen train``'s
    recipes stay the YAML files directly in ``agents/``)."""
    return agents_root() / "generative"


def list_recipes(generative: bool = False) -> list[str]:
    """Names of the agent recipes (``agents/*.yaml``, or ``agents/generative/*.yaml``, without the suffix)."""
    return list_recipe_files(generative_root() if generative else agents_root())


def load_recipe(name: str, generative: bool = False) -> Recipe:
    """Read recipe ``name``: a ``.yaml`` path, else ``agents/<name>.yaml``, else ``agents/generative/<name>.yaml``
    (only the latter if ``generative``); an unknown name lists the valid ones."""
    roots = [generative_root()] if generative else [agents_root(), generative_root()]
    root = next((r for r in roots if (r / f"{name}.yaml").is_file()), roots[0])
    path, raw = read_recipe_file(name, root, "generative recipe" if generative else "agent")
    try:
        return recipe_from_dict(path.stem, raw)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error


def recipe_from_dict(name: str, raw: Any) -> Recipe:
    """A :class:`Recipe` from a mapping with the keys ``algo``, ``train`` and ``agent``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a recipe must be a mapping with keys {', '.join(RECIPE_KEYS)}")
    unknown = sorted(set(raw) - set(RECIPE_KEYS))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(RECIPE_KEYS)}")
    if not isinstance(raw.get("algo"), str):
        raise ConfigError(f"key 'algo' must name an algorithm, got {raw.get('algo')!r}")
    try:
        algo = get_algo(raw["algo"])
    except KeyError as error:
        raise ConfigError(error.args[0]) from error
    train = raw.get("train")
    if isinstance(train, dict):
        refuse_train_keys(algo, list(train))
    return Recipe(name, raw["algo"], build(TrainConfig, train, "train"), build(algo.Config, raw.get("agent"), "agent"))


def read_recipe_file(name: str, root: Path, kind: str) -> tuple[Path, Any]:
    """The path and parsed YAML of recipe ``name``: a ``.yaml`` path, else ``<root>/<name>.yaml``.

    :param kind: what the recipe is (``agent``, ``generative recipe``), for the error listing the valid names.
    """
    path = Path(name)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = root / f"{name}.yaml"
        if not path.is_file():
            raise KeyError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(list_recipe_files(root)) or '(none)'}")
    try:
        return path, yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: unreadable YAML: {error}") from error
