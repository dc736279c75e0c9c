"""Deep Q-learning (Mnih et al. 2015) with the rlgen replay buffer, a target network, an ε-greedy schedule,
an optional Double-DQN target (van Hasselt et al. 2016) and the Huber loss.

Loss on a replayed transition ``(s, a, r, s', done)``::

    y = r + gamma * (1 - done) * Q_target(s', a'),   a' = argmax_a Q_target(s', a)    (DQN)
                                                     a' = argmax_a Q(s', a)           (Double DQN)
    loss = huber(Q(s, a) - y)

``done`` is set only when the episode *terminated*; a time-limit truncation bootstraps from the true last
observation. Every round of ``gradient_steps`` gradient steps is preceded by ``train_frequency`` environment
steps (Stable-Baselines3's schedule), after ``learning_starts`` steps of uniformly random actions have filled the
buffer; ``train.steps`` counts environment steps, and training stops at the end of the first round that reaches it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlgen.algos.online import OnlineAgent
from rlgen.config import ConfigError, require_positive
from rlgen.data import Episodes, ReplayBuffer, Transitions
from rlgen.nets import MLP
from rlgen.rollout.collector import VectorCollector
from rlgen.tasks import TaskSpec


@dataclass(frozen=True)
class DQNConfig:
    """The ``agent:`` block of a DQN recipe (defaults: rl-baselines3-zoo's CartPole-v1 DQN).

    :param buffer_size: replay capacity in transitions.
    :param learning_starts: environment steps of uniformly random actions before the first gradient step.
    :param train_frequency: environment steps collected before each round of ``gradient_steps`` updates.
    :param gradient_steps: gradient steps per round (``train_frequency / gradient_steps`` env steps per update).
    :param target_update_interval: gradient steps between target-network updates.
    :param tau: target update ``target <- tau * online + (1 - tau) * target`` (1: a hard copy).
    :param epsilon_start: ε at the start of learning; it falls linearly to ``epsilon_end`` over
        ``epsilon_steps`` environment steps (counted from the start of the run).
    :param double_dqn: pick the next action with the online network, score it with the target network.
    :param loss: ``huber`` (smooth L1, the DQN paper's error clipping) or ``mse``.
    :param grad_clip: clip the gradient norm (``null``: no clipping).
    :param num_envs: environments stepped together.
    """

    hidden: tuple[int, ...] = (256, 256)
    activation: str = "relu"
    lr: float = 2.3e-3
    gamma: float = 0.99
    buffer_size: int = 100_000
    learning_starts: int = 1_000
    train_frequency: int = 256
    gradient_steps: int = 128
    target_update_interval: int = 128
    tau: float = 1.0
    epsilon_start: float = 1.0
    epsilon_end: float = 0.04
    epsilon_steps: int = 8_000
    double_dqn: bool = True
    loss: Literal["huber", "mse"] = "huber"
    grad_clip: float | None = 10.0
    num_envs: int = 1

    def __post_init__(self) -> None:
        require_positive(self, "agent", "lr")
        for name in ("gamma", "epsilon_start", "epsilon_end"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"agent.{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.tau <= 1.0:
            raise ConfigError(f"agent.tau must be in (0, 1], got {self.tau}")


def linear_schedule(start: float, end: float, duration: int, t: int) -> float:
    """``start`` moving linearly to ``end`` over ``duration`` steps, then ``end`` (the ε-greedy schedule)."""
    if duration <= 0:
        return end
    return start + (end - start) * min(t / duration, 1.0)


class QNetwork(nn.Module):
    """``Q(s, .)``: an MLP with one output per discrete action."""

    def __init__(self, obs_dim: int, num_actions: int, hidden: tuple[int, ...], activation: str):
        super().__init__()
        self.body = MLP(obs_dim, hidden, activation)
        self.out = nn.Linear(self.body.out_features, num_actions)

    def forward(self, obs: Tensor) -> Tensor:
        return self.out(self.body(obs))


def td_targets(rewards: Tensor, terminals: Tensor, next_q_target: Tensor, next_q_online: Tensor | None,
               gamma: float) -> Tensor:  # fmt: skip
    """``r + gamma * (1 - terminal) * Q_target(s', a')``; ``a'`` maximises ``next_q_online`` (Double DQN)
    when it is given, else ``next_q_target`` itself."""
    chooser = next_q_target if next_q_online is None else next_q_online
    best = chooser.argmax(-1, keepdim=True)
    next_values = next_q_target.gather(-1, best).squeeze(-1)
    return rewards + gamma * (1.0 - terminals) * next_values


class DQN(OnlineAgent):
    """DQN / Double DQN on a discrete-action task (see the module docstring)."""

    Config = DQNConfig
    checkpointed = ("q", "target", "optimizer", "replay", "collector")

    def __init__(self, config: DQNConfig, task: TaskSpec, device: torch.device):
        assert task.num_actions is not None
        self.config, self.task, self.device = config, task, device
        self.num_actions = task.num_actions
        self.q = QNetwork(task.obs_dim, task.num_actions, config.hidden, config.activation).to(device)
        self.target = copy.deepcopy(self.q).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=config.lr)
        self.replay = ReplayBuffer(config.buffer_size, (task.obs_dim,), (), discrete=True)
        self.collector = VectorCollector(task, config.num_envs)
        self.updates = 0

    @classmethod
    def create(cls, config: DQNConfig, task: TaskSpec, data: Episodes | None, device: torch.device) -> DQN:
        if not task.discrete:
            raise ValueError(f"DQN needs a discrete action space; task {task.name!r} has continuous actions "
                             "(use a2c, whose Gaussian/DLML/AdaCat heads handle them)")  # fmt: skip
        cls.refuse_data(data)
        return cls(config, task, device)

    def epsilon(self) -> float:
        c = self.config
        return linear_schedule(c.epsilon_start, c.epsilon_end, c.epsilon_steps, self.collector.env_steps)

    @torch.no_grad()
    def greedy(self, observations: np.ndarray) -> np.ndarray:
        q = self.q(torch.as_tensor(observations, dtype=torch.float32, device=self.device))
        return q.argmax(-1).cpu().numpy()

    def explore(self, observations: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """ε-greedy actions (uniformly random ones until ``learning_starts``)."""
        n = len(observations)
        random_actions = rng.integers(0, self.num_actions, size=n)
        if self.collector.env_steps < self.config.learning_starts:
            return random_actions
        explore = rng.random(n) < self.epsilon()
        return np.where(explore, random_actions, self.greedy(observations))

    def sample(self, batch_size: int, rng: np.random.Generator) -> Transitions:
        c = self.config
        rounds = self.updates // c.gradient_steps + 1  # the round the next update belongs to
        due = c.learning_starts + c.train_frequency * rounds
        while self.collector.env_steps < due:
            step = self.collector.step(self.explore(self.collector.current(rng), rng), rng)
            self.replay.add(step.observations, step.actions, step.rewards, step.next_observations, step.terminals)
        return self.replay.sample(batch_size, rng)

    def steps_done(self, updates: int) -> int:
        """The environment steps the completed rounds were due after (``learning_starts + train_frequency`` per
        round), so that training stops only at the end of a round; 0 before the first update."""
        c = self.config
        return c.learning_starts + c.train_frequency * (updates // c.gradient_steps) if updates else 0

    def update(self, batch: Transitions) -> dict[str, Tensor | float]:
        c = self.config
        obs, next_obs = (torch.as_tensor(x, device=self.device) for x in (batch.observations, batch.next_observations))
        actions = torch.as_tensor(batch.actions, device=self.device)
        rewards, terminals = (torch.as_tensor(x, device=self.device) for x in (batch.rewards, batch.terminals))
        with torch.no_grad():
            targets = td_targets(rewards, terminals, self.target(next_obs), self.q(next_obs) if c.double_dqn else None,
                                 c.gamma)  # fmt: skip
        q = self.q(obs).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        loss = F.smooth_l1_loss(q, targets) if c.loss == "huber" else F.mse_loss(q, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if c.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.q.parameters(), c.grad_clip)
        self.optimizer.step()
        self.updates += 1
        if self.updates % c.target_update_interval == 0:
            with torch.no_grad():
                for target, online in zip(self.target.parameters(), self.q.parameters(), strict=True):
                    target.copy_(online) if c.tau == 1.0 else target.lerp_(online, c.tau)
        scalars: dict[str, Tensor | float] = {"loss": loss.detach(), "q": q.detach().mean(), "epsilon": self.epsilon()}
        if self.collector.finished:
            scalars["episode_return"] = self.collector.recent_return()
        return scalars

    def act(self, observations: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Greedy actions; ``deterministic=False`` acts ε-greedily with the final ε."""
        actions = self.greedy(observations)
        if deterministic:
            return actions
        explore = torch.rand(len(actions)).numpy() < self.config.epsilon_end
        return np.where(explore, torch.randint(self.num_actions, (len(actions),)).numpy(), actions)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.updates = int(state["updates"])
