"""The Trajectory Transformer agent on rlgen's training machinery: train the sequence model, act by planning.

Training (TT's settings): AdamW (0.9, 0.95), weight decay 0.1 on linear weights, gradient clip 1.0, lr 6e-4
with a linear warmup then a cosine decay floored at 10%, loss weights obs 1 / action 5 / reward 1 / value 1;
optionally an exponential moving average of the weights, which then plans (AdaCat App. C.3 used 0.995).

Acting: :meth:`TT.eval_policy` (what evaluation, ``rlgen train`` and ``rlgen eval`` run) is a :class:`TTPolicy`: it
keeps each environment's last real transitions and plans with them as context, being told the rewards and
episode ends through :meth:`TTPolicy.observe`. :meth:`TT.act` sees only the current observations, so it plans
from them alone (context 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from rlgen.algos.tt.model import TrajectoryModel, TTModelConfig
from rlgen.algos.tt.planner import Plan, PlannerConfig, beam_plan, make_prefix, planning_cache
from rlgen.algos.tt.sequences import TransitionLayout, TransitionSequences
from rlgen.config import ConfigError
from rlgen.data import Episodes
from rlgen.nets.gpt import KVCache, decay_groups
from rlgen.tasks import TaskSpec
from rlgen.train.agent import Agent


@dataclass(frozen=True)
class TTConfig:
    """The ``agent:`` block of a TT recipe.

    :param model: the sequence model (its head, GPT size, training segment length).
    :param planner: beam search settings.
    :param discount: of the value targets ``V`` (and of nothing else: the planner has its own).
    :param warmup_steps: linear learning-rate warmup.
    :param decay_steps: cosine decay of ``lr`` over this many steps, floored at ``0.1 lr``.
    :param ema: decay of an exponential moving average of the weights used for planning (``null``: none).
    """

    model: TTModelConfig = field(default_factory=TTModelConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    discount: float = 0.99
    observation_weight: float = 1.0
    action_weight: float = 5.0
    reward_weight: float = 1.0
    value_weight: float = 1.0
    lr: float = 6e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    warmup_steps: int = 1_000
    decay_steps: int = 100_000
    ema: float | None = None

    def __post_init__(self) -> None:
        if (self.planner.window or 0) > self.model.sequence_length:
            raise ConfigError(
                f"agent.planner.window ({self.planner.window}) must fit in agent.model.sequence_length "
                f"({self.model.sequence_length}) transitions, the block the model is trained on"
            )
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise ConfigError(f"agent.ema must be in (0, 1) or null, got {self.ema}")


def learning_rate_factor(step: int, warmup_steps: int, decay_steps: int) -> float:
    """Multiplier of the base learning rate after ``step`` updates: linear warmup, then a cosine decay floored
    at 0.1 (minGPT's schedule, which TT uses)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, decay_steps - warmup_steps))
    return max(0.1, 0.5 * (1.0 + math.cos(math.pi * progress)))


def tt_optimizer(model: nn.Module, config: TTConfig) -> torch.optim.AdamW:
    """TT's AdamW over ``model``'s parameters (weight decay on linear weights only), one fused kernel for all."""
    return torch.optim.AdamW(decay_groups(model, config.weight_decay), lr=config.lr, betas=config.betas, fused=True)


class TT(Agent):
    """Trajectory Transformer (see the module docstring)."""

    Config = TTConfig
    checkpointed = ("model", "optimizer", "schedule", "ema")
    data_parallel = True

    def __init__(self, config: TTConfig, task: TaskSpec, low: np.ndarray, high: np.ndarray,
                 act_low: np.ndarray, act_high: np.ndarray, device: torch.device):  # fmt: skip
        self.config, self.device = config, device
        self.layout = TransitionLayout(task.obs_dim, task.act_dim)
        self.act_low, self.act_high = act_low.astype(np.float32), act_high.astype(np.float32)
        self.model = TrajectoryModel(config.model, self.layout, low, high).to(device)
        self.weights = torch.as_tensor(
            self.layout.weights(config.observation_weight, config.action_weight, config.reward_weight,
                                config.value_weight), device=device)  # fmt: skip
        self.optimizer = tt_optimizer(self.model, config)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: learning_rate_factor(step, config.warmup_steps, config.decay_steps)
        )
        self.ema = (AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True)
                    if config.ema is not None else None)  # fmt: skip

    @classmethod
    def create(cls, config: TTConfig, task: TaskSpec, data: Episodes | None, device: torch.device) -> TT:
        if task.discrete:
            raise ValueError(f"TT models continuous actions; task {task.name!r} has a discrete action space")
        act_low, act_high = task.action_bounds()
        D = TransitionLayout(task.obs_dim, task.act_dim).dim
        if data is None:  # rebuilt to load a checkpoint: bounds and bins come from its buffers
            return cls(config, task, np.zeros(D), np.ones(D), act_low, act_high, device)
        rows = TransitionSequences(data, config.model.sequence_length, config.discount).all_rows()
        agent = cls(config, task, rows.min(0), rows.max(0), act_low, act_high, device)
        agent.model.fit_bins(rows)
        if agent.ema is not None:
            agent.ema.module.load_state_dict(agent.model.state_dict())
        return agent

    def sampler(self, data: Episodes | None) -> TransitionSequences:
        if data is None:
            raise ValueError("TT learns from a dataset, but none was given")
        return TransitionSequences(data, self.config.model.sequence_length, self.config.discount)

    def update(self, batch: tuple[np.ndarray, np.ndarray]) -> dict[str, Tensor | float]:
        rows, mask = (torch.as_tensor(a, device=self.device) for a in batch)
        loss, per_dim = self.model.loss(rows, mask, self.weights)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.schedule.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        lay = self.layout
        return {
            "loss": loss.detach(),
            "grad_norm": grad_norm,
            "lr": self.schedule.get_last_lr()[0],
            "nll_observation": per_dim[: lay.obs_dim].mean(),
            "nll_action": per_dim[lay.actions].mean(),
            "nll_reward": per_dim[lay.reward],
            "nll_value": per_dim[lay.value],
        }

    @property
    def planning_model(self) -> TrajectoryModel:
        return self.ema.module if self.ema is not None else self.model  # type: ignore[return-value]

    @torch.inference_mode()
    def plan(
        self,
        observations: np.ndarray,
        contexts: list[np.ndarray],
        generator: torch.Generator | None = None,
        cache: KVCache | None = None,
    ) -> Plan:
        """Plan for every environment from its past transitions ``(c_e, D)`` and current observation (in ``cache``,
        :func:`~rlgen.algos.tt.planner.planning_cache` of the planning model, to reuse its storage call after call).
        """
        model = self.planning_model
        was_training = model.training
        model.eval()
        try:
            prefix, pad = make_prefix(model, contexts, observations, self.config.planner.context)
            return beam_plan(model, prefix, pad, self.config.planner, generator, cache)
        finally:
            model.train(was_training)

    def act(self, observations: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Plan from the current observations alone (the planner samples actions either way)."""
        empty = [np.zeros((0, self.layout.dim), np.float32)] * len(observations)
        return self._to_env(self.plan(np.asarray(observations, np.float32), empty).actions)

    def eval_policy(self) -> TTPolicy:
        """Plans with each environment's last ``planner.context`` real transitions (TT's evaluation)."""
        return TTPolicy(self)

    def _to_env(self, actions: Tensor) -> np.ndarray:
        return np.clip(actions.cpu().numpy(), self.act_low, self.act_high)

    def trainable_modules(self) -> list[nn.Module]:
        return [self.model]


class TTPolicy:
    """Plans for a batch of environments with the last real transitions of each as context.

    Call it with the observations (always the same number of environments, in the same order), execute the
    actions, then :meth:`observe` the rewards and which episodes ended (their context is cleared). Value tokens
    of the context are placeholders (the model never reads them).
    """

    def __init__(self, agent: TT, generator: torch.Generator | None = None):
        self.agent, self.generator = agent, generator
        self.cache = planning_cache(agent.planning_model, agent.config.planner)  # every call plans in its storage
        self.contexts: list[np.ndarray] = []
        self._pending: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        observations = np.asarray(observations, np.float32)
        if not self.contexts:  # the first call fixes the number of environments
            self.contexts = [np.zeros((0, self.agent.layout.dim), np.float32) for _ in observations]
        if len(observations) != len(self.contexts):
            raise ValueError(f"TTPolicy plans for {len(self.contexts)} environments, got {len(observations)} "
                             "observations")  # fmt: skip
        actions = self.agent._to_env(self.agent.plan(observations, self.contexts, self.generator, self.cache).actions)
        self._pending = (observations, actions)
        return actions

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """Record the transitions of the last call: reward per environment, and whether its episode ended."""
        if self._pending is None:
            raise RuntimeError("observe() must follow a call that produced actions")
        observations, actions = self._pending
        keep = self.agent.config.planner.context
        for e, (obs, act, reward, done) in enumerate(zip(observations, actions, rewards, dones, strict=True)):
            if done:
                self.contexts[e] = self.contexts[e][:0]
                continue
            row = np.concatenate([obs, act, [reward, 0.0]]).astype(np.float32)
            self.contexts[e] = np.concatenate([self.contexts[e], row[None]])[-keep:] if keep else self.contexts[e]
        self._pending = None
