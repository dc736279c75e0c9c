"""GAIL's discriminator ``D(s, a)`` and the cost the policy is trained against (Algorithm 2.1 of source 004).

``D(s, a) = sigmoid(f_w(s, a))`` is the probability that a state-action pair came from the *policy* (label 1)
rather than the expert (label 0). Its Adam step ascends
``E_pi[log D] + E_E[log(1 - D)]`` (eq. 2.26), i.e. descends the binary cross-entropy of those labels, each class
averaged on its own so that a few expert pairs weigh as much as a large policy batch.

The policy minimises the cost ``c(s, a) = log D(s, a)``. rlgen's policy step maximises a reward, so it uses
``r(s, a) = -log D(s, a) = softplus(-f_w(s, a))``: exactly the negated cost, not a reshaped variant. The reward
is positive, so on tasks that end when the agent falls (Hopper, InvertedPendulum) every step survived earns
something, like the expert, who does not fall; the other common form, ``log(1 - D)``, is negative and would
instead reward ending episodes early. Where episodes end by succeeding (reaching a goal), neither is right: there
the agent adds absorbing states (:mod:`~rlgen.algos.gail.absorbing`), whose learned reward prices ending.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlgen.nets import MLP


class Discriminator(nn.Module):
    """``f_w(x)``: logits of ``D`` for inputs ``x = [s, a]`` already normalised by the caller, ``(n, in_features)``."""

    def __init__(self, in_features: int, hidden: Sequence[int], activation: str):
        super().__init__()
        self.body = MLP(in_features, hidden, activation)
        self.out = nn.Linear(self.body.out_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x)).squeeze(-1)


@dataclass(frozen=True)
class DiscriminatorStats:
    """Loss and accuracy of one step, measured before it (so the policy pairs are ones D has not trained on yet):
    ``policy_accuracy`` is the share of policy pairs with ``D > 1/2``, ``expert_accuracy`` the share of expert
    pairs with ``D < 1/2`` (shares by weight, where inputs are weighted)."""

    loss: Tensor
    policy_accuracy: Tensor
    expert_accuracy: Tensor


def _mean(values: Tensor, weights: Tensor | None) -> Tensor:
    return values.mean() if weights is None else (values * weights).sum() / weights.sum()


def discriminator_loss(policy_logits: Tensor, expert_logits: Tensor, policy_weights: Tensor | None = None,
                       expert_weights: Tensor | None = None) -> Tensor:  # fmt: skip
    """``-(mean log D(policy) + mean log(1 - D(expert)))``, the negated objective of eq. 2.26; with weights, each
    mean is weighted (e.g. absorbing states by their occupancy, :mod:`~rlgen.algos.gail.absorbing`)."""
    return _mean(F.softplus(-policy_logits), policy_weights) + _mean(F.softplus(expert_logits), expert_weights)


def imitation_reward(logits: Tensor) -> Tensor:
    """``-log D(s, a)`` from the logits: the negated cost ``log D`` (module docstring)."""
    return F.softplus(-logits)


def discriminator_step(discriminator: Discriminator, optimizer: torch.optim.Optimizer, policy_inputs: Tensor,
                       expert_inputs: Tensor, policy_weights: Tensor | None = None,
                       expert_weights: Tensor | None = None) -> DiscriminatorStats:  # fmt: skip
    """One optimiser step separating ``policy_inputs`` (label 1) from ``expert_inputs`` (label 0), each row
    weighing 1 or its entry of the optional ``(n,)`` weights."""
    if policy_inputs.shape[1:] != expert_inputs.shape[1:]:
        raise ValueError(f"policy and expert inputs must have the same features, got shapes "
                         f"{tuple(policy_inputs.shape)} and {tuple(expert_inputs.shape)}")  # fmt: skip
    for name, inputs, weights in (("policy", policy_inputs, policy_weights), ("expert", expert_inputs,
                                                                              expert_weights)):  # fmt: skip
        if weights is not None and weights.shape != inputs.shape[:1]:
            raise ValueError(f"{name} weights must have one entry per input row ({len(inputs)}), got shape "
                             f"{tuple(weights.shape)}")  # fmt: skip
    policy_logits, expert_logits = discriminator(policy_inputs), discriminator(expert_inputs)
    loss = discriminator_loss(policy_logits, expert_logits, policy_weights, expert_weights)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return DiscriminatorStats(loss.detach(), _mean((policy_logits.detach() > 0).float(), policy_weights),
                              _mean((expert_logits.detach() < 0).float(), expert_weights))  # fmt: skip
