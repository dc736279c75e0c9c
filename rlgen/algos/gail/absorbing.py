"""Absorbing states for GAIL on tasks whose episodes can end by succeeding (Kostrikov et al. 2019, sec. 4.2).

GAIL's reward ``-log D`` is positive, so without more a policy gains by never ending an episode: right where
termination is failure (falling), wrong where it is success (reaching a goal). With absorbing states a true
termination (not a time limit) moves to a state ``s_a`` that loops on itself forever:

- the discriminator's input gains an indicator feature: 0 for every real pair, and ``s_a`` is the input that is
  all zeros but for an indicator of 1 (its action is irrelevant). The expert's data holds one ``s_a`` sample per
  demonstrated trajectory that terminated, the policy's one per termination in its rollout;
- ``s_a`` earns the reward ``r_abs = -log D(s_a)`` at every step, so its value is ``V_abs = r_abs / (1 - gamma)``:
  in GAE a terminated step bootstraps from ``V_abs`` instead of 0 (a truncated one still from ``V(s')``).
  Ending early is then worth what the discriminator thinks of ending, learned from how often and how soon the
  expert ends compared with the policy.

Weights. The discriminator should see each input as often as the discounted state-action occupancy visits it,
since the policy's return sums its reward with those weights. An episode that terminates after ``T`` steps
spends the share ``gamma^T`` of its discounted occupancy in ``s_a`` and ``1 - gamma^T`` in its ``T`` real steps.
GAIL weighs real pairs equally (the discount inside an episode is not modelled), so the episode's ``s_a`` sample
weighs ``n gamma^T / (1 - gamma^T)``, where ``n`` is the number of samples standing for its real steps: ``T``
for a rollout's episode (every step is a sample), the kept pairs for a thinned demonstration. A weight of one
sample per termination (the simplest choice) would make ``s_a`` a tiny share of either side's data, so ``D``
would barely learn it while the return weighs ``r_abs`` by ``gamma / (1 - gamma)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlgen.tasks import TaskSpec


def resolve_absorbing(setting: bool | str, task: TaskSpec) -> bool:
    """Whether to use absorbing states: ``setting`` itself, or with ``"auto"``, whether ``task`` ends at a goal
    (``termination: goal`` in its task file)."""
    return task.termination == "goal" if setting == "auto" else bool(setting)


def with_indicator(features: Tensor) -> Tensor:
    """Real pairs' discriminator features with the absorbing indicator appended (0)."""
    return torch.cat([features, features.new_zeros(len(features), 1)], -1)


def absorbing_inputs(count: int, in_features: int, like: Tensor) -> Tensor:
    """``count`` discriminator inputs of the absorbing state: zeros, but the indicator (the last feature) is 1."""
    inputs = like.new_zeros(count, in_features)
    inputs[:, -1] = 1.0
    return inputs


def absorbing_weights(lengths: Tensor, samples: Tensor, gamma: float) -> Tensor:
    """The weight of each terminated episode's absorbing sample, ``n gamma^T / (1 - gamma^T)`` (module docstring).

    :param lengths: ``T``, the steps each episode took, ``>= 1``.
    :param samples: ``n``, the samples standing for each episode's real steps (each weighing 1).
    :param gamma: the discount, ``< 1``.
    """
    discount = torch.as_tensor(gamma, dtype=torch.float64) ** lengths.double()
    return (samples.double() * discount / (1.0 - discount)).float()


def append_absorbing(inputs: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """``inputs`` (real pairs, indicator 0, weight 1 each) followed by one absorbing sample per entry of
    ``weights``, and the weights of all rows."""
    absorbing = absorbing_inputs(len(weights), inputs.shape[1], inputs)
    return torch.cat([inputs, absorbing]), torch.cat([inputs.new_ones(len(inputs)), weights.to(inputs)])
