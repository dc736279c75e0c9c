"""Run folders of older rlgen versions: renamed config keys are read in today's spelling where the old value means
exactly the same, and a removed key is a one-line error naming it and what replaced it when the run is resumed."""

from __future__ import annotations

from typing import Any

import pytest

from rlgen.config import ConfigError
from rlgen.runs import RunConfig, load_recipe


def run_config(recipe: str, overrides: tuple[str, ...] = ()) -> dict[str, Any]:
    """``config.yaml`` of a run of ``recipe`` as today's rlgen writes it."""
    return RunConfig(load_recipe(recipe).with_overrides(overrides), "invertedpendulum", "x", "/x").to_dict()


def read(raw: dict[str, Any], training: bool = True) -> RunConfig:
    return RunConfig.from_dict(raw, "run/config.yaml", training)


@pytest.mark.parametrize("recipe", ["bc-dlml", "bc-gaussian", "a2c", "gail-trpo"])
def test_head_and_head_options_become_one_head(recipe: str) -> None:
    today = run_config(recipe)
    head = today["agent"]["head"]
    old = {**today, "agent": {**today["agent"], "head": head["type"],
                              "head_options": {k: v for k, v in head.items() if k != "type"}}}  # fmt: skip
    assert read(old) == read(today)
    assert read({**old, "agent": {**old["agent"], "head_options": None}}).recipe.agent.head.type == head["type"]


def test_head_options_of_no_head_name_is_an_older_rlgen_error() -> None:
    today = run_config("bc-dlml")
    message = (
        r"^run/config.yaml: this run was made by an older rlgen: agent.head=\{'type'.* with "
        r"agent.head_options=\{'num_bins': 5\} is now one agent.head: \{type: <head>"
    )
    with pytest.raises(ConfigError, match=message):
        read({**today, "agent": {**today["agent"], "head_options": {"num_bins": 5}}})


@pytest.mark.parametrize(
    ("recipe", "old_model"),
    [
        ("tt-adacat", {"conditional": "adacat", "num_bins": 50, "bandwidth": 0.001, "width_grad_scale": 0.1}),
        ("tt-quantile", {"conditional": "quantile", "num_bins": None, "bandwidth": 0.001, "width_grad_scale": 0.1}),
        ("tt-uniform", {"conditional": "uniform", "num_bins": 100}),
    ],
)
def test_tt_conditional_becomes_its_model_head(recipe: str, old_model: dict[str, Any]) -> None:
    today = run_config(recipe)
    model = {k: v for k, v in today["agent"]["model"].items() if k != "head"}
    old = {**today, "agent": {**today["agent"], "model": {**old_model, **model}}}
    assert read(old) == read(today)


def test_tt_conditional_of_an_unknown_kind_names_the_valid_ones() -> None:
    today = run_config("tt-adacat")
    old = {**today, "agent": {**today["agent"], "model": {"conditional": "dlml"}}}
    with pytest.raises(ConfigError, match="older rlgen: agent.model.conditional='dlml' is now agent.model.head.type, "
                       "one of uniform, quantile, adacat"):  # fmt: skip
        read(old)


def test_lr_decay_steps_is_dropped_where_exact_or_only_evaluated_and_refused_on_resume() -> None:
    today = run_config("iql-gaussian", ("train.steps=500",))
    same, other = ({**today, "agent": {**today["agent"], "lr_decay_steps": n}} for n in (500, 100_000))
    assert read(same) == read(today)
    assert read(other, training=False) == read(today)
    with pytest.raises(ConfigError, match=r"^run/config.yaml: this run was made by an older rlgen: "
                       r"agent.lr_decay_steps=100000 is gone \(IQL's policy lr decays over train.steps now\); "
                       r"the run can be evaluated \(rlgen eval\) but not resumed"):  # fmt: skip
        read(other)


def test_dqn_env_steps_per_update_is_refused_on_resume() -> None:
    today = run_config("dqn")
    old = {**today, "agent": {**today["agent"], "env_steps_per_update": 2.0}}
    assert read(old, training=False) == read(today)
    message = (
        r"older rlgen: agent.env_steps_per_update=2.0 is gone \(DQN collects agent.train_frequency environment "
        r"steps, then takes agent.gradient_steps updates now\)"
    )
    with pytest.raises(ConfigError, match=message):
        read(old)
