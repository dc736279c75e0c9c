"""The shared training machinery: typed configs and overrides, run directories, checkpoints, kill-and-resume."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
import torch
from torch import nn

from rlgen.config import ConfigError, apply_overrides, build
from rlgen.runs import default_run_dir, load_recipe
from rlgen.train import (
    Agent,
    CheckpointError,
    FitResult,
    RunDir,
    TrainConfig,
    fit,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
)

# --------------------------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class ToyConfig:
    width: int = 8
    lr: float = 1e-2
    dropout: float = 0.1
    name: str = "toy"
    mode: Literal["a", "b"] = "a"
    clip: float | None = None
    hidden: tuple[int, ...] = (4, 4)
    options: dict[str, Any] = field(default_factory=dict)


def test_build_fills_defaults_and_checks_types() -> None:
    cfg = build(ToyConfig, {"width": 3, "lr": 1, "hidden": [2]})
    assert cfg == ToyConfig(width=3, lr=1.0, hidden=(2,))
    assert isinstance(cfg.lr, float)
    with pytest.raises(ConfigError, match="agent.width must be an integer, got 2.5"):
        build(ToyConfig, {"width": 2.5}, "agent")
    with pytest.raises(ConfigError, match="width must be an integer, got True"):
        build(ToyConfig, {"width": True})
    with pytest.raises(ConfigError, match=r"mode must be one of \['a', 'b'\]"):
        build(ToyConfig, {"mode": "c"})


def test_unknown_key_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) agent\.widht; valid keys: agent\.width, agent\.lr"):
        build(ToyConfig, {"widht": 3}, "agent")
    with pytest.raises(ConfigError, match="unknown key 'agent.widht'; valid keys: agent.width"):
        apply_overrides(ToyConfig(), ["widht=3"], "agent")


def test_overrides_parse_by_field_type() -> None:
    cfg = apply_overrides(
        ToyConfig(),
        ["width=16", "lr=3e-4", "name=123", "clip=null", "hidden=[32, 32, 32]", "options.num_bins=64", "mode=b"],
    )
    assert cfg.width == 16 and cfg.lr == pytest.approx(3e-4) and cfg.name == "123"  # str fields keep the text
    assert cfg.clip is None and cfg.hidden == (32, 32, 32) and cfg.options == {"num_bins": 64} and cfg.mode == "b"
    assert apply_overrides(ToyConfig(), ["clip=0.5"]).clip == 0.5
    with pytest.raises(ConfigError, match="width must be an integer, got 'wide'"):
        apply_overrides(ToyConfig(), ["width=wide"])
    with pytest.raises(ConfigError, match="not key=value"):
        apply_overrides(ToyConfig(), ["width"])
    with pytest.raises(ConfigError, match="lr is a float, not a mapping"):
        apply_overrides(ToyConfig(), ["lr.x=1"])


def test_train_config_validates_ranges() -> None:
    with pytest.raises(ConfigError, match="train.steps must be >= 1"):
        build(TrainConfig, {"steps": 0})


def test_recipe_overrides_need_a_group_and_unknown_agents_are_listed() -> None:
    recipe = load_recipe("bc-dlml")
    changed = recipe.with_overrides(["train.steps=10", "agent.head=gaussian", "agent.hidden=[8]"])
    assert (changed.train.steps, changed.agent.head.type, changed.agent.hidden) == (10, "gaussian", (8,))
    with pytest.raises(ConfigError, match="must start with 'train.' or 'agent.'.*train.seed"):
        recipe.with_overrides(["steps=10"])
    with pytest.raises(KeyError, match="unknown agent 'bc-nope'; valid agents: .*bc-dlml"):
        load_recipe("bc-nope")


# --------------------------------------------------------------------------------------------- resume


class ToyAgent(Agent):
    """Regression with dropout and Adam: both torch's RNG and the optimiser state matter for resuming."""

    Config = ToyConfig

    def __init__(self, config: ToyConfig) -> None:
        self.net = nn.Sequential(nn.Linear(3, config.width), nn.ReLU(), nn.Dropout(config.dropout),
                                 nn.Linear(config.width, 1))  # fmt: skip
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr)

    @classmethod
    def create(cls, config, task, data, device):  # noqa: ANN001, ANN206
        return cls(config)

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        x, y = torch.as_tensor(batch["x"]), torch.as_tensor(batch["y"])
        loss = (self.net(x) - y).square().mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach(), "noise": float(torch.rand(()))}

    def act(self, observations: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return self.net(torch.as_tensor(observations)).detach().numpy()

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])


class ToySampler:
    """Batches drawn from the trainer's Generator; ``kill_at`` raises on that call, as a kill would stop a run."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.calls, self.kill_at = 0, kill_at

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        self.calls += 1
        if self.calls == self.kill_at:
            raise KeyboardInterrupt
        x = rng.standard_normal((batch_size, 3)).astype(np.float32)
        return {"x": x, "y": x.sum(1, keepdims=True) ** 2}


def _train(run: RunDir, config: TrainConfig, kill_at: int | None = None) -> ToyAgent:
    seed_everything(config.seed)  # as the launcher does: the fresh agent's weights depend on the seed only
    agent = ToyAgent(ToyConfig())
    fit(agent, ToySampler(kill_at), config, run, progress=False)
    return agent


def test_kill_and_resume_reproduces_an_uninterrupted_run(tmp_path) -> None:
    # log_every does not divide checkpoint_every, so a running mean is cut by the kill as well.
    config = TrainConfig(seed=3, steps=40, batch_size=16, log_every=7, checkpoint_every=10, keep_checkpoints=2)
    whole = _train(RunDir.create(tmp_path / "whole", {}), config)

    run = RunDir.create(tmp_path / "killed", {})
    with pytest.raises(KeyboardInterrupt):
        _train(run, config, kill_at=26)
    assert [s for s, _ in list_checkpoints(run.checkpoints)] == [10, 20]
    assert max(row["step"] for row in run.read_metrics()) == 21  # logged past the last checkpoint
    torch.manual_seed(12345)  # whatever happened in between must not matter
    resumed = _train(run, config)

    for a, b in zip(whole.net.state_dict().values(), resumed.net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert RunDir(tmp_path / "whole").read_metrics() == run.read_metrics()
    assert [s for s, _ in list_checkpoints(run.checkpoints)] == [30, 40]  # only the newest two are kept


def test_changed_seed_changes_the_run(tmp_path) -> None:
    a = _train(RunDir.create(tmp_path / "a", {}), TrainConfig(seed=0, steps=5, batch_size=8))
    b = _train(RunDir.create(tmp_path / "b", {}), TrainConfig(seed=1, steps=5, batch_size=8))
    assert not torch.equal(a.net[0].weight, b.net[0].weight)


def test_run_dir_layout_and_metrics(tmp_path) -> None:
    config = TrainConfig(steps=6, batch_size=4, log_every=2, checkpoint_every=3)
    run = RunDir.create(tmp_path / "run", {"recipe": "toy"})
    seen: list[int] = []

    def evaluate(agent: Agent, step: int) -> dict[str, float]:
        seen.append(step)
        torch.rand(5)  # evaluation may draw random numbers without disturbing training
        return {"eval/score": float(step)}

    seed_everything(0)
    fit(ToyAgent(ToyConfig()), ToySampler(), config, run, evaluate, progress=False)
    assert seen == [6]  # eval_every (10000) > steps: only after the last step
    rows = run.read_metrics()
    assert [r["step"] for r in rows] == [2, 4, 6, 6]
    assert set(rows[0]) == {"step", "train/loss", "train/noise"} and rows[-1] == {"step": 6, "eval/score": 6.0}
    assert run.read_config() == {"recipe": "toy"}
    assert list(run.path.glob("events.out.tfevents.*"))
    assert json.loads(run.metrics_path.read_text().splitlines()[0])["step"] == 2
    with pytest.raises(FileExistsError, match="already exists; resume it with --resume"):
        RunDir.create(run.path, {})
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        RunDir.open(tmp_path)


def test_the_best_evaluation_is_kept_as_best_pt_through_pruning_and_resume(tmp_path) -> None:
    config = TrainConfig(steps=8, batch_size=4, log_every=2, eval_every=2, checkpoint_every=2, keep_checkpoints=1)
    scores = {2: 1.0, 4: 5.0, 6: 3.0, 8: float("nan")}  # the best is at step 4; NaN never counts

    def evaluate(agent: Agent, step: int) -> dict[str, float]:
        return {"eval/score": scores.get(step, 0.0)}  # 0 for the last step of the shorter run

    def train(run: RunDir, steps: int, kill_at: int | None = None) -> tuple[ToyAgent, FitResult]:
        seed_everything(0)
        agent = ToyAgent(ToyConfig())
        result = fit(agent, ToySampler(kill_at), replace(config, steps=steps), run, evaluate, progress=False,
                     best_by="eval/score")  # fmt: skip
        return agent, result

    run = RunDir.create(tmp_path / "run", {})
    _, half = train(run, 5)  # stops after step 5 (its checkpoint remembers the best so far)
    assert (half.best_score, half.best_step) == (5.0, 4)
    agent, result = train(run, 8)
    assert (result.start_step, result.best_score, result.best_step) == (5, 5.0, 4)
    assert [s for s, _ in list_checkpoints(run.checkpoints)] == [8]  # step_4 was pruned, best.pt was not
    best = load_checkpoint(run.checkpoints / "best.pt")
    assert (best["step"], best["score"]) == (4, 5.0)
    assert not torch.equal(best["agent"]["net"]["0.weight"], agent.net[0].weight)

    # lower is better (bits/dim): the first evaluation is the best one
    low = RunDir.create(tmp_path / "low", {})
    seed_everything(0)
    lowest = fit(ToyAgent(ToyConfig()), ToySampler(), config, low, evaluate, progress=False, best_by="eval/score",
                 higher_is_better=False)  # fmt: skip
    assert (lowest.best_score, lowest.best_step) == (1.0, 2)
    assert _train(RunDir.create(tmp_path / "none", {}), config) and not (tmp_path / "none/checkpoints/best.pt").exists()


@pytest.mark.parametrize(
    ("dataset", "folder"),
    [
        ("hopper-medium", "hopper-medium"),
        ("/data/d4rl/hopper-medium.hdf5", "hopper-medium"),
        ("~/.d4rl/datasets/hopper_medium-v2.hdf5", "hopper_medium-v2"),
        ("runs/x.npz", "x"),
        ("mujoco/hopper/medium-v0", "medium-v0"),
        ("cartpole", "cartpole"),
    ],
)
def test_run_folders_are_named_by_dataset_name_or_file_stem(dataset: str, folder: str) -> None:
    path = default_run_dir("bc-dlml", dataset, seed=3, root="runs")
    assert path.parent == Path("runs/bc-dlml") / folder and path.name.startswith("seed3-")


def test_a_new_run_needs_a_missing_or_empty_folder(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    assert RunDir.create(tmp_path / "empty", {"recipe": "toy"}).read_config() == {"recipe": "toy"}
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"not empty and is not a run directory \(no config.yaml\)"):
        RunDir.create(tmp_path, {})
    for path in (tmp_path / "notes.txt", tmp_path / "notes.txt" / "run"):
        with pytest.raises(FileExistsError, match="notes.txt is a file, not a folder"):
            RunDir.create(path, {})
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_a_damaged_or_foreign_checkpoint_is_a_checkpoint_error_naming_it(tmp_path) -> None:
    path = save_checkpoint(tmp_path, 3, {"agent": {"w": torch.ones(100)}}, keep=1)
    assert load_checkpoint(path)["step"] == 3
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(CheckpointError, match=f"checkpoint {path} is unreadable"):
        load_checkpoint(path)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.ones(2)}, other)
    with pytest.raises(CheckpointError, match=f"{other} is not an rlgen checkpoint"):
        load_checkpoint(other)


def test_the_progress_postfix_shows_loss_and_return_first_in_at_most_60_characters() -> None:
    from rlgen.train.trainer import POSTFIX_CHARS, postfix

    gail = ["disc_loss", "disc_accuracy_policy", "disc_accuracy_expert", "imitation_reward", "kl", "surrogate_gain",
            "step_fraction", "entropy", "value_loss", "episode_return"]  # fmt: skip
    text = postfix({f"train/{name}": 0.123456 + i for i, name in enumerate(gail)})
    assert text.startswith("episode_return=9.12, disc_loss=0.123") and len(text) <= POSTFIX_CHARS
    assert postfix({"train/q": 3.0, "train/loss": 0.5}) == "loss=0.5, q=3"
