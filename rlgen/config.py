"""Typed configs: dataclasses filled from YAML mappings and ``key=value`` overrides, checked field by field.

Every value is checked against the dataclass field's type annotation (``int``, ``float``, ``bool``, ``str``,
``Literal[...]``, ``X | None``, ``list[X]``, ``tuple[X, ...]``, ``dict[str, X]``, ``Any``, nested dataclasses and
tagged configs); an unknown key is an error that lists the valid ones. Defaults live only in the dataclasses.

A tagged config is a field annotated with a base class that lists its variants through a classmethod
``config_variants() -> {type name: dataclass}`` (as :class:`rlgen.heads.HeadConfig` does). It is written as a
flat mapping whose ``type`` key picks the variant (``{type: dlml, num_mixtures: 5}``) or as the bare type name
(that variant with its defaults).

>>> from rlgen.train import TrainConfig
>>> cfg = build(TrainConfig, {"steps": 1000})
>>> cfg = apply_overrides(cfg, ["batch_size=64", "seed=3"])
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING
from typing import Any, Literal, TypeVar, Union

import yaml

from rlgen.heads.config import did_you_mean

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override has an unknown key or a value of the wrong type."""


def require_at_least(config: Any, where: str, minimum: float, *names: str) -> None:
    """Raise ``ConfigError`` naming ``<where>.<name>`` for the first field of ``config`` below ``minimum``."""
    for name in names:
        value = getattr(config, name)
        if not value >= minimum:
            raise ConfigError(f"{_join(where, name)} must be >= {minimum}, got {value}")


def require_positive(config: Any, where: str, *names: str) -> None:
    """Raise ``ConfigError`` naming ``<where>.<name>`` for the first field of ``config`` that is not > 0."""
    for name in names:
        value = getattr(config, name)
        if not value > 0:
            raise ConfigError(f"{_join(where, name)} must be > 0, got {value}")


def require_fraction(config: Any, where: str, *names: str) -> None:
    """Raise ``ConfigError`` naming ``<where>.<name>`` for the first field of ``config`` outside ``(0, 1]``."""
    for name in names:
        value = getattr(config, name)
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"{_join(where, name)} must be in (0, 1], got {value}")


def build(cls: type[T], raw: Mapping[str, Any] | None, where: str = "") -> T:
    """An instance of dataclass ``cls`` from a mapping; missing keys take the defaults.

    :param where: dotted prefix naming the mapping in error messages (e.g. ``"agent"``).
    """
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{_name(where) or 'config'} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(_join(where, k) for k in unknown)}; valid keys: "
            f"{', '.join(_join(where, k) for k in fields)}{did_you_mean(unknown[0], fields)}"
        )
    required = [k for k, f in fields.items() if f.default is MISSING and f.default_factory is MISSING]
    missing = [k for k in required if k not in raw]
    if missing:
        raise ConfigError(f"missing key(s) {', '.join(_join(where, k) for k in missing)}")
    values = {k: coerce(v, hints[k], _join(where, k)) for k, v in raw.items()}
    try:
        return cls(**values)
    except ConfigError:
        raise
    except ValueError as error:  # a range check of a config that does not know where it sits
        raise ConfigError(f"{where}: {error}" if where else str(error)) from error


def to_dict(config: Any) -> dict[str, Any]:
    """Plain YAML-safe data of a (nested) config dataclass; tuples become lists."""
    return _plain(dataclasses.asdict(config))


def apply_overrides(config: T, overrides: Sequence[str], where: str = "") -> T:
    """A copy of ``config`` with ``key=value`` overrides applied (dotted keys reach nested configs).

    Values are parsed as YAML (``[64, 64]``, ``true``, ``null``, ``3e-4``) except for ``str`` fields, which
    take the text as is. A key inside a ``dict`` field (``options.num_bins=64``) sets that entry. Overrides apply
    in order: a tagged config set by its type (``head=gaussian``) is replaced whole by that variant's defaults,
    and a key inside it (``head.num_mixtures=5``) sets one option of its current variant.
    """
    data = to_dict(config)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            shown = f"{where}.{item}" if where and key else item
            hint = f"; give it a value: {shown}=<value>" if key else ""
            raise ConfigError(f"override {shown!r} is not key=value{hint}")
        _set_path(type(config), data, key.strip().split("."), text, where)
    return build(type(config), data, where)


def parse_text(text: str, hint: Any) -> Any:
    """The value a ``key=value`` override's text stands for, given the field's type."""
    if _accepts_str(hint):
        lowered = text.strip().lower()
        if _accepts_none(hint) and lowered in ("null", "none", "~"):
            return None
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"cannot parse {text!r}: {error}") from error


def coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked (and where lossless, converted) to type ``hint``; ``ConfigError`` names ``key``."""
    if hint is Any:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if _variants(hint):
        if isinstance(value, hint):
            return value
        variant, options = _tagged(value, hint, key)
        return build(variant, options, key)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key)  # type: ignore[arg-type]
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        if len(members) == 1:  # X | None: X's own error says more than "must be X | None"
            return coerce(value, members[0], key)
        for arg in members:
            try:
                return coerce(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key} must be {_describe(hint)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key} must be one of {list(args)}, got {value!r}")
        return value
    if origin in (list, tuple) or hint in (list, tuple):
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{key} must have {len(args)} entries, got {value!r}")
            return tuple(coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
        item = args[0] if args else Any
        items = [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin or hint) is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        item = args[1] if args else Any
        return {str(k): coerce(v, item, f"{key}.{k}") for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads "3e-4" as text
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    raise TypeError(f"{key}: unsupported config field type {hint!r}")


# ------------------------------------------------------------------------------------------------ helpers


def _set_path(cls: Any, data: dict[str, Any], path: list[str], text: str, where: str) -> None:
    head, rest = path[0], path[1:]
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls) if f.init]
    if head not in valid:
        raise ConfigError(
            f"unknown key {_join(where, head)!r}; valid keys: {', '.join(_join(where, k) for k in valid)}"
            f"{did_you_mean(head, valid)}"
        )
    hint = _strip_optional(hints[head])
    key = _join(where, head)
    if not rest or (rest == ["type"] and _variants(hint)):  # a tagged config's new type starts from its defaults
        data[head] = parse_text(text, hints[head])
    elif _variants(hint):
        variant, options = _tagged(data.get(head), hint, key)
        data[head] = options
        _set_path(variant, options, rest, text, key)
    elif dataclasses.is_dataclass(hint):
        if data.get(head) is None:
            data[head] = {}
        _set_path(hint, data[head], rest, text, key)
    elif typing.get_origin(hint) is dict or hint is dict:
        if len(rest) != 1:
            raise ConfigError(f"{key} is a flat mapping; set one entry as {key}.<name>=<value>")
        args = typing.get_args(hint)
        data[head] = {**(data.get(head) or {}), rest[0]: parse_text(text, args[1] if args else Any)}
    else:
        raise ConfigError(f"{key} is a {_describe(hint)}, not a mapping: cannot set {key}.{'.'.join(rest)}")


def _variants(hint: Any) -> dict[str, type]:
    """The variants a tagged-config annotation admits (those that are subclasses of it), or ``{}``."""
    variants = getattr(hint, "config_variants", None)
    if not (isinstance(hint, type) and callable(variants)):
        return {}
    return {name: cls for name, cls in variants().items() if issubclass(cls, hint)}


def _tagged(value: Any, hint: Any, key: str) -> tuple[type, dict[str, Any]]:
    """The variant a tagged config's value names and the value as a mapping holding ``type``."""
    variants = _variants(hint)
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, Mapping) or "type" not in value:
        raise ConfigError(f"{key} must be a type name or a mapping with a type key (one of "
                          f"{', '.join(variants)}), got {value!r}")  # fmt: skip
    name = value["type"]
    if not isinstance(name, str) or name not in variants:
        raise ConfigError(f"{key}.type must be one of {', '.join(variants)}, got {name!r}"
                          f"{did_you_mean(str(name), variants)}")  # fmt: skip
    return variants[name], dict(value)


def _strip_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _accepts_str(hint: Any) -> bool:
    if hint is str:
        return True
    if typing.get_origin(hint) in (Union, types.UnionType):
        return any(_accepts_str(a) for a in typing.get_args(hint))
    return False


def _accepts_none(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType) and type(None) in typing.get_args(hint)


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _name(where: str) -> str:
    return f"{where!r}" if where else ""


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
