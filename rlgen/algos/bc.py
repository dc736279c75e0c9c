"""Behaviour cloning with a pluggable head: maximise ``log p(a | s)`` of the dataset's actions.

The policy is ``head(MLP((s - mean) / std))``: observations are standardised with the dataset's statistics
(kept as buffers, so checkpoints carry them), an MLP body makes features and any rlgen head turns them into a
distribution over the action box of the task's environment.

Deterministic action: ``action`` (``peak`` by default, ``mode`` or ``mean``) with ``peak_width``; what each is
and when the mode fails: :meth:`rlgen.heads.BoxDistribution.point`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from rlgen.config import require_fraction
from rlgen.data import Episodes, Statistics, Transitions
from rlgen.heads import PEAK_WIDTH, BoxDistribution, DLMLHeadConfig, HeadConfig, PointAction
from rlgen.nets import MLP
from rlgen.tasks import TaskSpec
from rlgen.train.agent import Agent

# Observation dimensions with a smaller standard deviation are divided by this instead (constant features).
STD_FLOOR = 1e-6


@dataclass(frozen=True)
class BCConfig:
    """The ``agent:`` block of a BC recipe.

    :param head: the head's config: ``{type: dlml, num_mixtures: 10}``, or a type name (``gaussian``, ``uniform``,
        ``quantile``, ``adacat``, ``dlml``) for its defaults.
    :param hidden: widths of the MLP body.
    :param action: deterministic action: the head distribution's ``mode``, ``mean`` or ``peak``.
    :param peak_width: the window of ``action: peak``, as a fraction of the box.
    :param grad_clip: clip the gradient norm to this value (``null``: no clipping).
    """

    head: HeadConfig = field(default_factory=DLMLHeadConfig)
    hidden: tuple[int, ...] = (256, 256)
    activation: str = "relu"
    layer_norm: bool = False
    dropout: float = 0.0
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = None
    action: PointAction = "peak"
    peak_width: float = PEAK_WIDTH
    normalize_observations: bool = True

    def __post_init__(self) -> None:
        require_fraction(self, "agent", "peak_width")


class BCPolicy(nn.Module):
    """Observation standardisation, MLP body and head: ``forward(obs) -> BoxDistribution`` over actions."""

    def __init__(self, config: BCConfig, obs_dim: int, act_low: np.ndarray, act_high: np.ndarray):
        super().__init__()
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_scale", torch.ones(obs_dim))
        self.body = MLP(obs_dim, config.hidden, config.activation, config.layer_norm, config.dropout)
        self.head = config.head.create(self.body.out_features, len(act_low), act_low, act_high)

    def set_observation_statistics(self, stats: Statistics) -> None:
        self.obs_mean.copy_(torch.as_tensor(stats.mean, dtype=torch.float32))
        self.obs_scale.copy_(torch.as_tensor(np.maximum(stats.std, STD_FLOOR), dtype=torch.float32))

    def features(self, obs: Tensor) -> Tensor:
        return self.body((obs - self.obs_mean) / self.obs_scale)

    def forward(self, obs: Tensor) -> BoxDistribution:
        return self.head(self.features(obs))


class BC(Agent):
    """Behaviour cloning (see the module docstring); one AdamW step on the head's NLL per batch."""

    Config = BCConfig
    checkpointed = ("policy", "optimizer")
    data_parallel = True

    def __init__(self, config: BCConfig, task: TaskSpec, act_low: np.ndarray, act_high: np.ndarray,
                 device: torch.device):  # fmt: skip
        self.config = config
        self.device = device
        self.act_low, self.act_high = act_low.astype(np.float32), act_high.astype(np.float32)
        self.policy = BCPolicy(config, task.obs_dim, self.act_low, self.act_high).to(device)
        self.optimizer = torch.optim.AdamW(self.policy.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    @classmethod
    def create(cls, config: BCConfig, task: TaskSpec, data: Episodes | None, device: torch.device) -> BC:
        if task.discrete:
            raise ValueError(f"BC's heads model continuous actions; task {task.name!r} has a discrete action space")
        low, high = task.action_bounds()
        agent = cls(config, task, low, high, device)
        if data is not None:
            if config.normalize_observations:
                agent.policy.set_observation_statistics(Statistics.compute(data.observations, num_bins=1))
            actions = np.clip(data.actions, agent.act_low, agent.act_high)
            agent.policy.head.fit_to_data(torch.as_tensor(actions, device=device))
        return agent

    def update(self, batch: Transitions) -> dict[str, Tensor | float]:
        obs = torch.as_tensor(batch.observations, device=self.device)
        actions = torch.as_tensor(batch.actions, device=self.device)
        loss = self.policy.head.loss(self.policy.features(obs), actions)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        scalars: dict[str, Tensor | float] = {"loss": loss.detach()}
        if self.config.grad_clip is not None:
            scalars["grad_norm"] = nn.utils.clip_grad_norm_(self.policy.parameters(), self.config.grad_clip)
        self.optimizer.step()
        return scalars

    @torch.no_grad()
    def act(self, observations: np.ndarray, deterministic: bool = True) -> np.ndarray:
        was_training = self.policy.training
        self.policy.eval()
        try:
            dist = self.policy(torch.as_tensor(observations, dtype=torch.float32, device=self.device))
            if not deterministic:
                actions = dist.sample()
            else:
                actions = dist.point(self.config.action, self.config.peak_width)
        finally:
            self.policy.train(was_training)
        # An unsquashed Gaussian's samples may leave the box; the env expects actions inside it.
        return np.clip(actions.cpu().numpy(), self.act_low, self.act_high)

    def trainable_modules(self) -> list[nn.Module]:
        return [self.policy]
