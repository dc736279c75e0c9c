"""``config.yaml`` of runs made by older rlgen versions, read in today's spelling.

A renamed key is moved where the old value means exactly the same today. A removed key only shaped training: a
run that is only evaluated drops it, a resumed run refuses it with a :class:`~rlgen.config.ConfigError` that says
the run was made by an older rlgen, names the key and says what replaced it. Call :func:`upgrade_config` on the
raw mapping before building a run's config from it.
"""

from __future__ import annotations

from typing import Any

from rlgen.config import ConfigError
from rlgen.runs.recipes import ENVIRONMENT_KEYS

#: TT's bins per dimension when ``agent.model.num_bins`` was null (before heads were typed configs)
OLD_TT_BINS = {"uniform": 100, "quantile": 100, "adacat": 50}
#: TT's AdaCat options that sat in ``agent.model`` beside ``conditional``, with their defaults of then
OLD_TT_ADACAT_OPTIONS = {"bandwidth": 1e-3, "width_grad_scale": 0.1}
#: agent keys removed with no exact replacement, and what took their place
REMOVED_AGENT_KEYS = {
    "lr_decay_steps": "IQL's policy lr decays over train.steps",
    "env_steps_per_update": "DQN collects agent.train_frequency environment steps, then takes agent.gradient_steps "
    "updates",
}


def upgrade_config(raw: dict[str, Any], training: bool = True) -> dict[str, Any]:
    """``raw`` (a run's ``config.yaml``) in today's spelling.

    :param training: the run is to be trained further: a removed key is then a :class:`ConfigError` (else dropped).
    """
    raw = _generative_spelling(raw)
    agent = raw.get("agent")
    if not isinstance(agent, dict):
        return raw
    agent = _head_options(agent, "agent")
    if isinstance(agent.get("model"), dict) and "conditional" in agent["model"]:
        agent = {**agent, "model": _tt_head(agent["model"])}
    train = raw.get("train") if isinstance(raw.get("train"), dict) else {}
    if "lr_decay_steps" in agent and agent["lr_decay_steps"] == train.get("steps"):  # today's schedule: exact
        agent = {k: v for k, v in agent.items() if k != "lr_decay_steps"}
    removed = [key for key in REMOVED_AGENT_KEYS if key in agent]
    if removed and training:
        key = removed[0]
        raise older_rlgen(f"agent.{key}={agent[key]!r} is gone ({REMOVED_AGENT_KEYS[key]} now); the run can be "
                          "evaluated (rlgen eval) but not resumed as it was configured")  # fmt: skip
    return {**raw, "agent": {k: v for k, v in agent.items() if k not in removed}}


def older_rlgen(detail: str) -> ConfigError:
    """The error for a run config of an older rlgen that cannot be read as it was meant."""
    return ConfigError(f"this run was made by an older rlgen: {detail}")


def _generative_spelling(raw: dict[str, Any]) -> dict[str, Any]:
    """A generative run's config as written before every recipe spelled ``algo`` / ``agent`` (it had ``kind`` /
    ``model`` and, earlier, environment keys in ``train``) in today's spelling; any other config unchanged."""
    if "kind" not in raw or "algo" in raw:
        return raw
    train = raw.get("train")
    if isinstance(train, dict):
        train = {k: v for k, v in train.items() if k not in ENVIRONMENT_KEYS}
    rest = {k: v for k, v in raw.items() if k not in ("kind", "model", "train")}
    return {**rest, "algo": raw["kind"], "train": train, "agent": raw.get("model")}


def _head_options(block: dict[str, Any], where: str) -> dict[str, Any]:
    """``head: NAME`` and ``head_options: {...}`` as today's one ``head: {type: NAME, ...}``."""
    if "head_options" not in block:
        return block
    head, options = block.get("head"), block["head_options"] or {}
    if not isinstance(head, str) or not isinstance(options, dict):
        raise older_rlgen(f"{where}.head={head!r} with {where}.head_options={options!r} is now one "
                          f"{where}.head: {{type: <head>, <option>: <value>, ...}}")  # fmt: skip
    rest = {k: v for k, v in block.items() if k != "head_options"}
    return {**rest, "head": {"type": head, **options}}


def _tt_head(model: dict[str, Any]) -> dict[str, Any]:
    """TT's ``model: {conditional: NAME, num_bins, bandwidth, width_grad_scale, ...}`` as ``model: {head: {type:
    NAME, ...}, ...}`` with the defaults of then written out (AdaCat's options only reached the AdaCat head)."""
    name = model["conditional"]
    if name not in OLD_TT_BINS:
        raise older_rlgen(f"agent.model.conditional={name!r} is now agent.model.head.type, one of "
                          f"{', '.join(OLD_TT_BINS)}")  # fmt: skip
    head = {"type": name, "num_bins": model.get("num_bins") or OLD_TT_BINS[name]}
    if name == "adacat":
        head |= {k: model.get(k, default) for k, default in OLD_TT_ADACAT_OPTIONS.items()}
    moved = {"conditional", "num_bins", *OLD_TT_ADACAT_OPTIONS}
    return {"head": head, **{k: v for k, v in model.items() if k not in moved}}
