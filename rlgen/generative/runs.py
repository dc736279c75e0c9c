"""Generative runs on the shared training machinery: recipes, the learner :func:`rlgen.train.fit` drives, resume.

A recipe (``agents/generative/<name>.yaml``) names the data kind and fills two typed blocks, each overridable with
``--set``::

    kind: image                   # image (8x8 digits, PixelCNN) or audio (espeak-ng speech, WaveNet)
    train: {steps: 3000, ...}     # GenerativeTrainConfig: rlgen.train.TrainConfig without its environment keys
    model: {head: adacat, ...}    # rlgen.generative.ImageConfig or AudioConfig

A run folder is the one of ``rlgen train`` (config.yaml, metrics.jsonl, TensorBoard events, checkpoints) plus
the samples written after training (``samples.png`` or ``samples.wav``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from rlgen.generative.audio import AudioConfig, AudioTask
from rlgen.generative.image import ImageConfig, ImageTask
from rlgen.generative.models import LevelModel
from rlgen.heads import QuantileCategoricalHead
from rlgen.train import (
    ConfigError,
    FitResult,
    RunDir,
    TrainConfig,
    apply_overrides,
    build,
    fit,
    resolve_device,
    seed_everything,
    to_dict,
)
from rlgen.train.config import list_recipe_files, read_recipe_file
from rlgen.train.launch import default_run_dir
from rlgen.train.run_dir import write_text_atomic

RECIPES_DIR_VAR = "RLGEN_GENERATIVE_DIR"
KINDS: dict[str, tuple[type, type]] = {"image": (ImageConfig, ImageTask), "audio": (AudioConfig, AudioTask)}
_RECIPE_KEYS = ("kind", "train", "model")
#: TrainConfig keys that only steer evaluation in an environment, which a generative run never does
_ENVIRONMENT_KEYS = ("eval_episodes", "eval_envs", "eval_seed")


class LevelLearner:
    """A model and its Adam optimiser, trained on the exact negative log-mass of its data.

    It offers what :func:`rlgen.train.fit` calls on an agent (``update``, ``state_dict``, ``load_state_dict``).

    :param model: an :class:`~rlgen.generative.models.LevelModel`, already on its device.
    :param lr: Adam learning rate.
    :param grad_clip: gradient-norm clip.
    """

    def __init__(self, model: LevelModel, lr: float, grad_clip: float):
        self.model = model
        self.grad_clip = grad_clip
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def update(self, batch: np.ndarray) -> dict[str, torch.Tensor]:
        levels = torch.as_tensor(batch, device=self.model.head.low.device)
        self.model.train()
        nll = -self.model.log_mass(levels).mean()
        self.optimizer.zero_grad(set_to_none=True)
        nll.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        return {"bits_per_dim": nll.detach() / np.log(2.0), "grad_norm": grad_norm}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


# ------------------------------------------------------------------------------------------------ recipes


@dataclass(frozen=True)
class GenerativeTrainConfig:
    """The ``train:`` block of a generative recipe: the keys of :class:`rlgen.train.TrainConfig` a generative run
    uses, with the same defaults and checks. Its environment keys (eval_episodes, eval_envs, eval_seed) are left
    out, so ``--set`` refuses them instead of accepting values nothing reads.

    :param eval_every: steps between held-out bits/dim evaluations (0: only after the last step).
    """

    seed: int = TrainConfig.seed
    steps: int = TrainConfig.steps
    batch_size: int = TrainConfig.batch_size
    log_every: int = TrainConfig.log_every
    eval_every: int = TrainConfig.eval_every
    checkpoint_every: int = TrainConfig.checkpoint_every
    keep_checkpoints: int = TrainConfig.keep_checkpoints
    threads: int = TrainConfig.threads

    def __post_init__(self) -> None:
        self.to_train_config()  # TrainConfig's range checks, in one place

    def to_train_config(self) -> TrainConfig:
        """The :class:`TrainConfig` that :func:`rlgen.train.fit` reads (environment keys at their unused defaults)."""
        return TrainConfig(**asdict(self))


@dataclass(frozen=True)
class GenerativeRecipe:
    """A parsed generative recipe: the data kind and its typed train / model configs."""

    name: str
    kind: str
    train: GenerativeTrainConfig
    model: ImageConfig | AudioConfig

    def with_overrides(self, overrides: Sequence[str]) -> GenerativeRecipe:
        """Apply ``train.<key>=<value>`` / ``model.<key>=<value>`` overrides (type-checked)."""
        groups: dict[str, list[str]] = {"train": [], "model": []}
        for item in overrides:
            group, dot, rest = item.partition(".")
            if group not in groups or not dot:
                raise ConfigError(f"override {item!r} must start with 'train.' or 'model.'")
            groups[group].append(rest)
        return replace(self, train=apply_overrides(self.train, groups["train"], "train"),
                       model=apply_overrides(self.model, groups["model"], "model"))  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.name, "kind": self.kind, "train": to_dict(self.train), "model": to_dict(self.model)}


def recipes_root() -> Path:
    """``$RLGEN_GENERATIVE_DIR`` if set, else ``agents/generative/`` next to the ``rlgen`` package (a subfolder, so
    ``rlgen train``'s agent recipes stay the YAML files directly in ``agents/``)."""
    env = os.environ.get(RECIPES_DIR_VAR)
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "agents" / "generative"
    if not root.is_dir():
        raise FileNotFoundError(f"generative recipes folder not found: {root}; set {RECIPES_DIR_VAR}")
    return root


def list_generative_recipes() -> list[str]:
    return list_recipe_files(recipes_root())


def load_generative_recipe(name: str) -> GenerativeRecipe:
    """Read ``agents/generative/<name>.yaml`` (or a path to a recipe file); an unknown name lists the valid ones."""
    path, raw = read_recipe_file(name, recipes_root(), "generative recipe")
    try:
        return generative_recipe_from_dict(path.stem, raw)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error


def generative_recipe_from_dict(name: str, raw: Any) -> GenerativeRecipe:
    """A :class:`GenerativeRecipe` from a mapping with the keys ``kind``, ``train`` and ``model``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a generative recipe must be a mapping with keys {', '.join(_RECIPE_KEYS)}")
    unknown = sorted(set(raw) - {*_RECIPE_KEYS, "recipe"})
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(_RECIPE_KEYS)}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"key 'kind' must be one of {sorted(KINDS)}, got {kind!r}")
    config_cls = KINDS[kind][0]
    return GenerativeRecipe(name, kind, build(GenerativeTrainConfig, raw.get("train"), "train"),
                            build(config_cls, raw.get("model"), "model"))  # fmt: skip


# ------------------------------------------------------------------------------------------------ runs


def start_generative_run(
    recipe: str | GenerativeRecipe,
    overrides: Sequence[str] = (),
    run_dir: str | os.PathLike[str] | None = None,
    device: str = "auto",
    progress: bool = True,
    task: ImageTask | AudioTask | None = None,
) -> tuple[RunDir, FitResult]:
    """Train a new run of generative ``recipe`` (a name in ``agents/generative/``, a path, or a parsed recipe).

    :param task: the data to train on, if already loaded (tests pass synthetic audio); built from the recipe
        otherwise.
    """
    parsed = recipe if isinstance(recipe, GenerativeRecipe) else load_generative_recipe(recipe)
    parsed = parsed.with_overrides(overrides)
    torch_device = resolve_device(device)
    path = Path(run_dir) if run_dir else default_run_dir("generative", parsed.name, parsed.train.seed)
    RunDir.check_new(path)  # before the data is loaded: a taken folder should not cost a long load first
    task = task or KINDS[parsed.kind][1](parsed.model)
    # Building the model and its optimiser checks the head, sizes and learning rate; only then is the run folder
    # written, so a command that fails validation leaves nothing behind to block its corrected re-run.
    learner = _build_learner(parsed, task, torch_device)
    run = RunDir.create(path, parsed.to_dict())
    return run, _train(run, parsed, task, learner, progress)


def resume_generative_run(
    run_dir: str | os.PathLike[str], overrides: Sequence[str] = (), device: str = "auto", progress: bool = True,
    task: ImageTask | AudioTask | None = None,
) -> tuple[RunDir, FitResult]:  # fmt: skip
    """Continue the run in ``run_dir`` from its newest checkpoint; only ``train.steps`` may be overridden.
    ``config.yaml`` is only rewritten once the model has been rebuilt."""
    run = RunDir.open(run_dir)
    raw = run.read_config()
    if "algo" in raw and "kind" not in raw:
        raise ConfigError(f"{run.path} is a run of `rlgen train` (algo {raw['algo']}), not a generative run; "
                          f"resume it with `rlgen train --resume {run.path}`")  # fmt: skip
    if isinstance(raw.get("train"), dict):  # run folders written before GenerativeTrainConfig recorded these
        raw["train"] = {k: v for k, v in raw["train"].items() if k not in _ENVIRONMENT_KEYS}
    try:
        recipe = generative_recipe_from_dict(str(raw.get("recipe", run.path.name)), raw)
    except ConfigError as error:
        raise ConfigError(f"{run.config_path}: {error}") from error
    changed = [o for o in overrides if not o.startswith("train.steps=")]
    if changed:
        raise ConfigError(f"a resumed run keeps its config; only train.steps may change, got {', '.join(changed)}")
    if overrides:
        recipe = recipe.with_overrides(overrides)
    torch_device = resolve_device(device)
    task = task or KINDS[recipe.kind][1](recipe.model)
    learner = _build_learner(recipe, task, torch_device)
    if overrides:
        write_text_atomic(run.config_path, yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    return run, _train(run, recipe, task, learner, progress)


def _build_learner(recipe: GenerativeRecipe, task: ImageTask | AudioTask, device: torch.device) -> LevelLearner:
    """The seeded, freshly initialised model of ``recipe`` on ``device`` and its optimiser."""
    torch.set_num_threads(recipe.train.threads)
    seed_everything(recipe.train.seed)
    model = task.build().to(device)
    if isinstance(model.head, QuantileCategoricalHead):  # bins from the training levels (a resume restores them)
        levels = torch.as_tensor(task.train, dtype=torch.float32, device=model.head.low.device)
        model.head.fit_bins(levels.reshape(-1, 1))
    return LevelLearner(model, recipe.model.lr, recipe.model.grad_clip)


def _train(
    run: RunDir, recipe: GenerativeRecipe, task: ImageTask | AudioTask, learner: LevelLearner, progress: bool
) -> FitResult:
    def evaluator(learner: LevelLearner, step: int) -> dict[str, float]:
        learner.model.eval()
        return task.evaluate(learner.model)

    train = recipe.train.to_train_config()
    result = fit(learner, task.batches(), train, run, evaluator, progress=progress)  # type: ignore[arg-type]
    learner.model.eval()
    task.write_samples(learner.model, run.path / task.samples_file, seed=train.seed, progress=progress)
    return result
