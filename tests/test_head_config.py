"""Typed head configs: defaults in one place, round trips through recipes, parse-time errors, override order."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field

import pytest
import torch
import yaml

from rlgen.algos.bc import BCConfig
from rlgen.config import ConfigError, apply_overrides, build, to_dict
from rlgen.heads import (
    HEAD_CONFIGS,
    AdaCatHeadConfig,
    DLMLHeadConfig,
    GaussianHeadConfig,
    HeadConfig,
    QuantileHeadConfig,
    UniformHeadConfig,
    head_config,
    make_head,
)
from rlgen.runs import load_recipe

# The defaults every head had before its config existed: a default config must build the same head.
DEFAULT_REPRS = {
    "gaussian": "squash=True, state_dependent_std=True, env_units=False",
    "uniform": "num_bins=100, bandwidth=0.0, kernel=uniform",
    "quantile": "num_bins=100, bandwidth=0.0, kernel=uniform",
    "adacat": "num_bins=50, bandwidth=0.001, kernel=uniform, width_grad_scale=1.0",
    "dlml": "num_mixtures=10, num_classes=256, state_dependent_scale=True",
}
# One config per head with every option away from its default.
CHANGED = [
    GaussianHeadConfig(squash=False, state_dependent_std=False, init_log_std=-0.5, env_units=True),
    UniformHeadConfig(num_bins=7, bandwidth=0.01, kernel="gaussian", init="spread"),
    QuantileHeadConfig(num_bins=9, bandwidth=0.02, init="torch"),
    AdaCatHeadConfig(
        num_bins=6, bandwidth=0.0, kernel="gaussian", width_grad_scale=0.5, init="spread", state_dependent_widths=False
    ),
    DLMLHeadConfig(num_mixtures=3, num_classes=64, init="spread", state_dependent_scale=False),
]


@dataclass(frozen=True)
class Holder:
    head: HeadConfig = field(default_factory=DLMLHeadConfig)
    only_dlml: DLMLHeadConfig = field(default_factory=DLMLHeadConfig)


@pytest.mark.parametrize("kind", sorted(HEAD_CONFIGS))
def test_a_default_config_builds_the_head_of_the_old_defaults(kind: str) -> None:
    head = HEAD_CONFIGS[kind]().create(4, 2, -1.0, 1.0)
    assert head.extra_repr().endswith(DEFAULT_REPRS[kind])
    torch.manual_seed(0)
    by_name = make_head(kind, 4, 2, -1.0, 1.0)
    torch.manual_seed(0)
    by_config = HEAD_CONFIGS[kind]().create(4, 2, -1.0, 1.0)
    features = torch.randn(3, 4)
    torch.testing.assert_close(by_name(features).mode(), by_config(features).mode())


@pytest.mark.parametrize("config_class", list(HEAD_CONFIGS.values()))
def test_head_constructors_hold_no_option_defaults(config_class: type[HeadConfig]) -> None:
    defaults = [p.name for p in inspect.signature(config_class.head_class).parameters.values()
                if p.default is not inspect.Parameter.empty]  # fmt: skip
    assert defaults == [], f"{config_class.head_class.__name__} has defaults for {defaults}"


@pytest.mark.parametrize("config", CHANGED, ids=lambda c: c.type)
def test_every_config_round_trips_through_a_recipe_mapping(config: HeadConfig) -> None:
    data = to_dict(Holder(head=config))
    assert data["head"]["type"] == config.type and len(data["head"]) == len(dataclasses.fields(config))
    assert build(Holder, yaml.safe_load(yaml.safe_dump(data))) == Holder(head=config)
    assert head_config(**data["head"]) == config
    assert config.create(4, 2, -1.0, 1.0).extra_repr() == make_head(config, 4, 2, -1.0, 1.0).extra_repr()


def test_a_bare_type_name_is_that_head_with_its_defaults() -> None:
    assert build(Holder, {"head": "quantile"}).head == QuantileHeadConfig()
    assert build(BCConfig, {"head": "gaussian"}).head == GaussianHeadConfig()


def test_a_misspelt_option_or_type_fails_at_parse_time_listing_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"agent\.head\.num_mixturs.*valid keys: agent\.head\.type, "
                                          r"agent\.head\.num_mixtures, agent\.head\.num_classes"):  # fmt: skip
        build(BCConfig, {"head": {"type": "dlml", "num_mixturs": 3}}, "agent")
    with pytest.raises(ConfigError, match=r"agent\.head\.type must be one of gaussian, uniform, quantile, adacat, "
                                          r"dlml, got 'gausian' \(did you mean 'gaussian'\?\)"):  # fmt: skip
        load_recipe("bc-dlml").with_overrides(["agent.head=gausian"])
    with pytest.raises(ConfigError, match="agent.head.num_bins.*valid keys: agent.head.type, agent.head.num_mixtures"):
        load_recipe("bc-dlml").with_overrides(["agent.head.num_bins=8"])
    with pytest.raises(ConfigError, match="agent.head.num_mixtures must be an integer"):
        load_recipe("bc-dlml").with_overrides(["agent.head.num_mixtures=many"])
    with pytest.raises(ConfigError, match="agent.head must be a type name or a mapping with a type key"):
        build(BCConfig, {"head": {"num_bins": 3}}, "agent")
    valid = "num_bins, bandwidth, kernel, init, width_grad_scale"
    with pytest.raises(ValueError, match=rf"unknown option 'num_bin' \(did you mean 'num_bins'\?\) for the 'adacat' "
                                         rf"head; valid options: {valid}"):  # fmt: skip
        head_config("adacat", num_bin=3)
    with pytest.raises(ValueError, match="unknown head 'flow'; valid heads: gaussian, uniform"):
        make_head("flow", 4, 2, 0.0, 1.0)


@pytest.mark.parametrize(
    ("options", "field_name"),
    [({"num_bins": 1}, "num_bins"), ({"bandwidth": -1.0}, "bandwidth"), ({"kernel": "box"}, "kernel"),
     ({"width_grad_scale": 1.5}, "width_grad_scale"), ({"init": "zeros"}, "init")],
)  # fmt: skip
def test_range_checks_name_the_option(options: dict, field_name: str) -> None:
    with pytest.raises(ValueError, match=field_name):
        AdaCatHeadConfig(**options)
    with pytest.raises(ConfigError, match=rf"agent\.head(: |\.){field_name}"):
        build(BCConfig, {"head": {"type": "adacat", **options}}, "agent")


def test_overrides_apply_in_order_and_a_new_type_drops_the_old_options() -> None:
    recipe = load_recipe("bc-adacat")  # {type: adacat, num_bins: 50, bandwidth: 0.001}
    assert recipe.with_overrides(["agent.head=dlml", "agent.head.num_mixtures=5"]).agent.head == DLMLHeadConfig(
        num_mixtures=5
    )
    with pytest.raises(ConfigError, match="agent.head.num_mixtures"):  # still AdaCat when the option is set
        recipe.with_overrides(["agent.head.num_mixtures=5", "agent.head=dlml"])
    assert recipe.with_overrides(["agent.head=uniform"]).agent.head == UniformHeadConfig()  # not AdaCat's 50 bins
    assert recipe.with_overrides(["agent.head.type=uniform"]).agent.head == UniformHeadConfig()
    assert recipe.with_overrides(["agent.head.num_bins=8"]).agent.head == AdaCatHeadConfig(num_bins=8)
    assert recipe.with_overrides(["agent.head={type: dlml, num_classes: 64}"]).agent.head == DLMLHeadConfig(
        num_classes=64
    )
    assert apply_overrides(Holder(), ["head=gaussian", "head.squash=false"]).head == GaussianHeadConfig(squash=False)


def test_a_field_of_one_head_type_refuses_the_others() -> None:
    with pytest.raises(ConfigError, match="only_dlml.type must be one of dlml, got 'adacat'"):
        build(Holder, {"only_dlml": "adacat"})


def test_trajectory_transformer_refuses_a_non_binned_head_at_parse_time() -> None:
    recipe = load_recipe("tt-adacat")
    with pytest.raises(ConfigError, match="agent.model.head must be one of uniform, quantile, adacat.*'gaussian'"):
        recipe.with_overrides(["agent.model.head=gaussian"])
    assert recipe.agent.model.head == AdaCatHeadConfig(num_bins=50, bandwidth=1e-3, width_grad_scale=0.1)
    assert load_recipe("tt-uniform").agent.model.bins == load_recipe("tt-quantile").agent.model.bins == 100
