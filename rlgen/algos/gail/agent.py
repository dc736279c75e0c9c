"""Generative adversarial imitation learning (GAIL; source 004, Algorithm 2.1) on rlgen's shared machinery.

One trainer step is one iteration of Algorithm 2.1:

1. sample ``n_steps`` steps from each of ``num_envs`` environments with the current policy ``pi_theta``;
2. ``disc_steps`` Adam steps on the discriminator: the rollout's pairs (label 1) against every expert pair
   (label 0), eq. 2.26 (:mod:`~rlgen.algos.gail.discriminator`);
3. rewards with the updated discriminator: ``r = -log D(s, a) - lambda log pi(a|s)``. The first term is the
   negated cost ``log D``; the second is the causal-entropy regulariser ``lambda H(pi)``: its gradient is the
   policy gradient of the per-step reward ``-log pi(a|s)`` (the score term ``E[grad log pi]`` vanishes), so it
   enters as a reward, exactly, rather than as a per-state entropy bonus;
4. advantages by GAE(gamma, lambda_gae) with a learned value ``V(s)``, standardised over the batch; a terminated
   step bootstraps from 0, or with absorbing states from ``V_abs = -log D(s_a) / (1 - gamma)``;
5. a TRPO step on the policy (:mod:`~rlgen.algos.gail.trpo`: conjugate gradient on the Fisher-vector product
   of the exact head KL, backtracking line search within ``max_kl``);
6. ``value_epochs`` epochs of Adam regression of ``V`` on the GAE returns;
7. the observation normaliser takes in the rollout's states (it changes only between iterations, so each TRPO
   step scores actions under the normalisation they were sampled with). It starts from the demonstrations'
   states, which is also what a BC warm start is fitted under; the policy's own states then move it. Each move
   re-expresses the input layers of the policy, value and discriminator for the new statistics, so that every
   network computes the same function of the raw state as before: the normaliser conditions the next steps but
   never changes a network by itself (the TRPO step stays the only change to the policy, within its trust region).

Optionally the policy first clones the demonstrations (:mod:`~rlgen.algos.gail.clone`). On tasks whose episodes
end at a goal the discriminator also learns the reward of an absorbing state that follows every true termination
(:mod:`~rlgen.algos.gail.absorbing`; ``absorbing: auto`` turns it on from the task file's ``termination: goal``).

The generator is a compact TRPO on :class:`~rlgen.algos.online.OnlineAgent`: the seeded
:class:`~rlgen.rollout.collector.VectorCollector` steps the environments, so a checkpoint holds everything and a
killed run resumes bit for bit; the policy is a :class:`~rlgen.algos.bc.BCPolicy` on any rlgen head, whose exact
KL (:func:`rlgen.heads.box_kl`) bounds the step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Self

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rlgen.algos.actor_critic import Rollout
from rlgen.algos.bc import STD_FLOOR, BCConfig, BCPolicy
from rlgen.algos.estimators import gae
from rlgen.algos.gail.absorbing import (
    absorbing_inputs,
    absorbing_weights,
    append_absorbing,
    resolve_absorbing,
    with_indicator,
)
from rlgen.algos.gail.clone import CloneSettings, behaviour_clone
from rlgen.algos.gail.demos import Demonstrations, subsample_demonstrations
from rlgen.algos.gail.discriminator import Discriminator, discriminator_step, imitation_reward
from rlgen.algos.gail.moments import RunningMoments, input_layer, renormalise_linear
from rlgen.algos.gail.trpo import TRPOSettings, trpo_step
from rlgen.algos.networks import ValueNet, to_env_actions
from rlgen.algos.online import OnlineAgent
from rlgen.config import ConfigError, require_fraction
from rlgen.data import Episodes
from rlgen.heads import PEAK_WIDTH, GaussianHeadConfig, HeadConfig, PointAction
from rlgen.rollout.collector import VectorCollector
from rlgen.tasks import TaskSpec
from rlgen.train.agent import BatchSampler


@dataclass(frozen=True)
class GAILConfig:
    """The ``agent:`` block of a GAIL recipe.

    :param trajectories: expert trajectories imitated.
    :param pairs_per_trajectory: state-action pairs kept per trajectory; ``null`` keeps all.
    :param demo_seed: seeds which trajectories and pairs are picked.
    :param head: the policy's head config (``gaussian``, ``dlml``, ``adacat``, ...); its exact KL bounds the TRPO step.
    :param hidden: widths of the policy, value and discriminator MLPs.
    :param num_envs: environments stepped together.
    :param n_steps: steps per environment in each iteration's rollout.
    :param gae_lambda: GAE's lambda.
    :param entropy_weight: the causal-entropy weight lambda of eq. 2.25.
    :param trpo: the trust region and its line search.
    :param value_lr: Adam learning rate of the value function.
    :param value_epochs: passes over each rollout fitting the value function.
    :param value_batch_size: minibatch size of those passes.
    :param disc_lr: Adam learning rate of the discriminator.
    :param disc_steps: discriminator steps per iteration (Algorithm 2.1: one).
    :param bc_warm_start: clone the demonstrations before the first rollout.
    :param bc: the cloning protocol used for the warm start.
    :param absorbing: absorbing states after true terminations (:mod:`~rlgen.algos.gail.absorbing`): ``true``,
        ``false``, or ``auto``: on for tasks whose episodes end at a goal (``termination: goal`` in task.yaml).
    :param action: the deterministic action the policy evaluates with: its head's ``peak``, ``mode`` or ``mean``
        (:meth:`rlgen.heads.BoxDistribution.point`; a Gaussian's are all its mean, clipped).
    :param peak_width: the window of ``action: peak``, as a fraction of the box.
    """

    trajectories: int = 4
    pairs_per_trajectory: int | None = 50
    demo_seed: int = 0
    head: HeadConfig = field(default_factory=GaussianHeadConfig)
    hidden: tuple[int, ...] = (100, 100)
    activation: str = "tanh"
    num_envs: int = 8
    n_steps: int = 128
    gamma: float = 0.995
    gae_lambda: float = 0.97
    entropy_weight: float = 0.0
    trpo: TRPOSettings = field(default_factory=TRPOSettings)
    value_lr: float = 3e-4
    value_epochs: int = 5
    value_batch_size: int = 128
    disc_lr: float = 3e-4
    disc_steps: int = 1
    bc_warm_start: bool = False
    bc: CloneSettings = field(default_factory=CloneSettings)
    absorbing: Literal["auto", True, False] = "auto"
    action: PointAction = "peak"
    peak_width: float = PEAK_WIDTH

    def __post_init__(self) -> None:
        require_fraction(self, "agent", "peak_width")
        if not self.hidden:
            raise ConfigError("agent.hidden must list one or more layer widths (the observation normaliser "
                              "re-expresses the first layer), got []")  # fmt: skip
        for name in ("trajectories", "num_envs", "n_steps", "value_epochs", "value_batch_size", "disc_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"agent.{name} must be >= 1, got {getattr(self, name)}")
        if self.pairs_per_trajectory is not None and self.pairs_per_trajectory < 1:
            raise ConfigError(f"agent.pairs_per_trajectory must be >= 1 or null, got {self.pairs_per_trajectory}")
        if not (0.0 < self.gamma <= 1.0 and 0.0 <= self.gae_lambda <= 1.0):
            raise ConfigError(f"agent.gamma must be in (0, 1] and agent.gae_lambda in [0, 1], got {self.gamma} "
                              f"and {self.gae_lambda}")  # fmt: skip
        if self.entropy_weight < 0:
            raise ConfigError(f"agent.entropy_weight must be >= 0, got {self.entropy_weight}")
        if not (self.absorbing == "auto" or isinstance(self.absorbing, bool)):  # Literal admits 1 and 0 as well
            raise ConfigError(f"agent.absorbing must be auto, true or false, got {self.absorbing!r}")


@dataclass
class EpisodeRollout(Rollout):
    """A :class:`~rlgen.algos.actor_critic.Rollout` that also holds ``episode_steps``, ``(n_steps, num_envs)``:
    the steps each episode has taken up to and including each step (its length where it ended)."""

    episode_steps: Tensor


class GAIL(OnlineAgent):
    """GAIL with a TRPO generator (module docstring): it steps its own environments like the other online agents
    and also needs a dataset, the expert's demonstrations."""

    Config = GAILConfig
    checkpointed = ("policy", "value", "discriminator", "value_optimizer", "disc_optimizer", "collector", "moments")
    config: GAILConfig
    needs_dataset = True

    def __init__(self, config: GAILConfig, task: TaskSpec, device: torch.device):
        if task.discrete:
            raise ValueError(f"GAIL's policy heads model continuous actions; task {task.name!r} is discrete")
        self.config, self.task, self.device = config, task, device
        self.low, self.high = task.action_bounds()
        self.absorbing = resolve_absorbing(config.absorbing, task)
        if self.absorbing and config.gamma >= 1.0:
            raise ConfigError(f"agent.absorbing needs agent.gamma < 1 (the absorbing state's value r / (1 - gamma) "
                              f"is infinite at 1), got gamma {config.gamma} on task {task.name!r}")  # fmt: skip
        body = BCConfig(head=config.head, hidden=config.hidden, activation=config.activation)
        self.policy = BCPolicy(body, task.obs_dim, self.low, self.high).to(device)
        self.value = ValueNet(task.obs_dim, config.hidden, config.activation).to(device)
        disc_features = task.obs_dim + task.act_dim + int(self.absorbing)  # + the absorbing indicator
        self.discriminator = Discriminator(disc_features, config.hidden, config.activation).to(device)
        self.value_optimizer = torch.optim.Adam(self.value.parameters(), lr=config.value_lr)
        self.disc_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=config.disc_lr)
        self.collector = VectorCollector(task, config.num_envs)
        self.moments = RunningMoments(task.obs_dim)
        self.demos: Demonstrations | None = None
        self.iterations = 0
        self._warm_start_scalars: dict[str, float] = {}

    @classmethod
    def create(cls, config: GAILConfig, task: TaskSpec, data: Episodes | None, device: torch.device) -> Self:
        """Build the agent; with ``data``, pick its demonstrations (``None``: they come from a checkpoint)."""
        agent = cls(config, task, device)
        if data is not None:
            rng = np.random.default_rng(config.demo_seed)
            agent.set_demonstrations(subsample_demonstrations(data, config.trajectories,
                                                              config.pairs_per_trajectory, rng))  # fmt: skip
        return agent

    def set_demonstrations(self, demos: Demonstrations) -> None:
        """Imitate ``demos`` (actions clipped into the task's box); the normaliser restarts from their states."""
        if demos.observations.shape[1:] != (self.task.obs_dim,) or demos.actions.shape[1:] != (self.task.act_dim,):
            raise ValueError(f"demonstrations with observations {demos.observations.shape[1:]} and actions "
                             f"{demos.actions.shape[1:]} do not fit task {self.task.name!r} (observations "
                             f"({self.task.obs_dim},), actions ({self.task.act_dim},))")  # fmt: skip
        self.demos = Demonstrations(demos.observations, np.clip(demos.actions, self.low, self.high), demos.episodes,
                                    demos.trajectory_lengths, demos.terminated)  # fmt: skip
        self.moments = RunningMoments(self.task.obs_dim)
        self.moments.update(self.demos.observations)
        self._sync_normaliser()

    def sampler(self, data: Episodes | None) -> BatchSampler:
        if self.demos is None:
            raise ValueError("GAIL imitates expert demonstrations: give it a dataset, e.g. <task>-expert")
        return self

    # ------------------------------------------------------------------------------------------ inputs

    def tensor(self, array: np.ndarray) -> Tensor:
        return torch.as_tensor(array, dtype=torch.float32, device=self.device)

    def _sync_normaliser(self) -> None:
        self.policy.obs_mean.copy_(self.tensor(self.moments.mean))
        self.policy.obs_scale.copy_(self.tensor(np.maximum(self.moments.std, STD_FLOOR)))

    def update_normaliser(self, observations: Tensor) -> None:
        """Take ``observations`` ``(n, obs_dim)`` into the normaliser and re-express the input layers of the policy,
        value and discriminator for its new statistics (:func:`~rlgen.algos.gail.moments.renormalise_linear`), so
        that each network's output for any raw state, and the discriminator's for the absorbing state, stays as it
        was."""
        old_mean, old_scale = self.policy.obs_mean.clone(), self.policy.obs_scale.clone()
        self.moments.update(observations.cpu().numpy())
        self._sync_normaliser()
        new_mean, new_scale = self.policy.obs_mean, self.policy.obs_scale
        for body in (self.policy.body, self.value.body):
            renormalise_linear(input_layer(body), old_mean, old_scale, new_mean, new_scale)
        disc_layer = input_layer(self.discriminator.body)
        shift = renormalise_linear(disc_layer, old_mean, old_scale, new_mean, new_scale)
        if self.absorbing:  # s_a's input holds no state, only its indicator: that column takes the bias shift back
            with torch.no_grad():
                disc_layer.weight[:, -1] -= shift

    def normalise(self, observations: Tensor) -> Tensor:
        """Observations standardised as the policy sees them (the value and the discriminator share it)."""
        return (observations - self.policy.obs_mean) / self.policy.obs_scale

    def pair_features(self, observations: Tensor, actions: Tensor) -> Tensor:
        """The discriminator's input: standardised state and the action mapped from its box to ``[-1, 1]`` (and
        with absorbing states, their indicator: 0)."""
        low, high = self.tensor(self.low), self.tensor(self.high)
        features = torch.cat([self.normalise(observations), 2.0 * (actions - low) / (high - low) - 1.0], -1)
        return with_indicator(features) if self.absorbing else features

    def discriminator_inputs(self, batch: EpisodeRollout) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:
        """``(policy_inputs, policy_weights, expert_inputs, expert_weights)`` of a discriminator step: the
        rollout's pairs, then the expert's. Without absorbing states the weights are ``None`` (each pair counts
        once); with them each side's real pairs are followed by one absorbing sample per true termination, the
        rollout's and the demonstrated trajectories', weighted as :mod:`~rlgen.algos.gail.absorbing` says."""
        assert self.demos is not None
        raw = batch.raw_actions.flatten(0, 1)
        env_actions = torch.minimum(torch.maximum(raw, self.tensor(self.low)), self.tensor(self.high))
        policy_inputs = self.pair_features(batch.observations.flatten(0, 1), env_actions)
        expert_inputs = self.pair_features(self.tensor(self.demos.observations), self.tensor(self.demos.actions))
        if not self.absorbing:
            return policy_inputs, None, expert_inputs, None
        gamma = self.config.gamma
        ended = batch.episode_steps[batch.terminals.bool()]  # a rollout samples every step: n = T
        policy_inputs, policy_weights = append_absorbing(policy_inputs, absorbing_weights(ended, ended, gamma))
        _, first, pairs = np.unique(self.demos.episodes, return_index=True, return_counts=True)
        terminated = self.demos.terminated[first]
        lengths = torch.as_tensor(self.demos.trajectory_lengths[first][terminated])
        weights = absorbing_weights(lengths, torch.as_tensor(pairs[terminated]), gamma)
        expert_inputs, expert_weights = append_absorbing(expert_inputs, weights)
        return policy_inputs, policy_weights, expert_inputs, expert_weights

    def absorbing_reward(self) -> Tensor:
        """``r_abs = -log D(s_a)``, the reward of the absorbing state under the current discriminator (a scalar)."""
        inputs = absorbing_inputs(1, self.discriminator.body.in_features, self.policy.obs_mean)
        return imitation_reward(self.discriminator(inputs))[0]

    def absorbing_value(self) -> Tensor:
        """``V_abs = r_abs / (1 - gamma)``: the value of the absorbing state, which earns ``r_abs`` forever."""
        return self.absorbing_reward() / (1.0 - self.config.gamma)

    def state_values(self, observations: Tensor) -> Tensor:
        """``V(s)``: the value network's output, plus ``V_abs`` with absorbing states. The network then learns
        ``V - V_abs``, which stays put when a discriminator step moves ``r_abs`` (and with it every value by up to
        ``1 / (1 - gamma)`` times as much), and is near 0 while the rewards are all near ``r_abs``."""
        values = self.value(self.normalise(observations))
        return values + self.absorbing_value() if self.absorbing else values

    def next_values(self, batch: Rollout) -> Tensor:
        """The value each step bootstraps from in GAE, shaped like ``batch.rewards``: ``V(s')`` after a step that
        continues or was truncated; after a true termination 0, or with absorbing states ``V_abs``."""
        after = self.state_values(batch.next_observations)
        if not self.absorbing:
            return after * (1.0 - batch.terminals)
        return torch.where(batch.terminals.bool(), self.absorbing_value(), after)

    # ------------------------------------------------------------------------------------------ training

    def sample(self, batch_size: int, rng: np.random.Generator) -> Rollout:
        """One rollout of ``n_steps x num_envs`` steps (``batch_size`` is unused); before the first, the
        optional BC warm start."""
        if self.demos is None:
            raise ValueError("GAIL has no demonstrations: create it with a dataset or load a checkpoint")
        if self.iterations == 0 and self.config.bc_warm_start:
            result = behaviour_clone(self.policy, self.demos, self.config.bc, rng)
            self._warm_start_scalars = {"bc_epochs": float(result.best_epoch),
                                        "bc_validation_nll": result.validation_loss}  # fmt: skip
        raws, steps, episode_steps = [], [], []
        for _ in range(self.config.n_steps):
            with torch.no_grad():
                raw = self.policy(self.tensor(self.collector.current(rng))).sample()
            raws.append(raw)
            episode_steps.append(self.collector.episode_steps + 1)
            steps.append(self.collector.step(to_env_actions(self.task, raw, self.low, self.high), rng))

        def stacked(name: str) -> Tensor:
            return self.tensor(np.stack([getattr(step, name) for step in steps]))

        return EpisodeRollout(stacked("observations"), torch.stack(raws), stacked("rewards"),
                              stacked("next_observations"), stacked("terminals"), stacked("dones"),
                              torch.as_tensor(np.stack(episode_steps), device=self.device))  # fmt: skip

    def update(self, batch: EpisodeRollout) -> dict[str, Tensor | float]:
        """Discriminator, rewards, GAE, TRPO and value steps on one rollout (module docstring)."""
        c = self.config
        obs, raw = batch.observations.flatten(0, 1), batch.raw_actions.flatten(0, 1)
        policy_inputs, policy_weights, expert_inputs, expert_weights = self.discriminator_inputs(batch)
        for _ in range(c.disc_steps):
            disc = discriminator_step(self.discriminator, self.disc_optimizer, policy_inputs, expert_inputs,
                                      policy_weights, expert_weights)  # fmt: skip
        with torch.no_grad():
            rewards = imitation_reward(self.discriminator(policy_inputs[: len(obs)]))  # the pairs, not s_a
            imitation = rewards.mean()
            if c.entropy_weight > 0:
                rewards = rewards - c.entropy_weight * self.policy(obs).log_prob(raw)
            values = self.state_values(batch.observations)
            next_values = self.next_values(batch)
            advantages = gae(rewards.view_as(batch.rewards), values, next_values, batch.dones, c.gamma,
                             c.gae_lambda)  # fmt: skip
            returns = (advantages + values).flatten()
            advantages = advantages.flatten()
            if advantages.numel() > 1:
                advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        step = trpo_step(self.policy, obs, raw, advantages, c.trpo)
        with torch.no_grad():  # the network's target: V - V_abs with absorbing states (state_values)
            targets = returns - self.absorbing_value() if self.absorbing else returns
        value_loss = self._fit_value(self.normalise(obs), targets)
        with torch.no_grad():
            entropy = self.policy(obs).entropy().mean()
        self.update_normaliser(obs)
        self.iterations += 1
        scalars: dict[str, Tensor | float] = {
            "disc_loss": disc.loss, "disc_accuracy_policy": disc.policy_accuracy,
            "disc_accuracy_expert": disc.expert_accuracy, "imitation_reward": imitation, "kl": step.kl,
            "surrogate_gain": step.improvement, "step_fraction": step.step_fraction, "entropy": entropy,
            "value_loss": value_loss,
        }  # fmt: skip
        if self.absorbing:
            with torch.no_grad():
                scalars["absorbing_reward"] = self.absorbing_reward()
        if self.collector.finished:
            scalars["episode_return"] = self.collector.recent_return()
        scalars.update(self._warm_start_scalars)
        self._warm_start_scalars = {}
        return scalars

    def _fit_value(self, observations: Tensor, returns: Tensor) -> float:
        """``value_epochs`` shuffled passes of Adam on ``(V(s) - G)^2``; the mean loss of the last pass."""
        c = self.config
        losses: list[float] = []
        for _ in range(c.value_epochs):
            order = torch.randperm(len(returns), device=self.device)
            losses = []
            for first in range(0, len(order), c.value_batch_size):
                rows = order[first : first + c.value_batch_size]
                loss = F.mse_loss(self.value(observations[rows]), returns[rows])
                self.value_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.value_optimizer.step()
                losses.append(loss.item())
        return float(np.mean(losses))

    @torch.no_grad()
    def act(self, observations: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """The configured deterministic action (``deterministic``) or a sample, clipped into the action box."""
        dist = self.policy(self.tensor(observations))
        actions = dist.point(self.config.action, self.config.peak_width) if deterministic else dist.sample()
        return to_env_actions(self.task, actions, self.low, self.high)

    # ------------------------------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        demos = None if self.demos is None else {
            "observations": torch.as_tensor(self.demos.observations), "actions": torch.as_tensor(self.demos.actions),
            "episodes": torch.as_tensor(self.demos.episodes),
            "trajectory_lengths": torch.as_tensor(self.demos.trajectory_lengths),
            "terminated": torch.as_tensor(self.demos.terminated)}  # fmt: skip
        return {**super().state_dict(), "iterations": self.iterations, "demos": demos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.iterations = int(state["iterations"])
        demos = state["demos"]
        if demos is not None:
            # checkpoints from before absorbing states hold no endings: Demonstrations' defaults fill them in
            endings = [demos[k].numpy() if k in demos else None for k in ("trajectory_lengths", "terminated")]
            self.demos = Demonstrations(demos["observations"].numpy(), demos["actions"].numpy(),
                                        demos["episodes"].numpy(), *endings)  # fmt: skip
