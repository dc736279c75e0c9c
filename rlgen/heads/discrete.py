"""Categorical head over discrete actions ``{0, ..., n-1}`` (one factor per action dimension).

It follows the :class:`~rlgen.heads.base.BoxDistribution` interface with the box ``[0, n-1]^D`` of integer
targets: ``log_prob`` returns log-*masses*, ``sample`` / ``mode`` return ``int64`` indices of shape ``(..., D)``
and ``mean`` is the expected index. It is not in :data:`rlgen.heads.HEAD_CONFIGS`, the registry of heads over a
continuous box that BC and the SB3 plug-in iterate over: a discrete action space is declared by its number of
actions, not by bounds.

>>> import torch
>>> head = CategoricalHead(in_features=8, dim=1, num_classes=2)   # CartPole's two actions
>>> dist = head(torch.randn(5, 8))
>>> dist.sample().shape, dist.log_prob(torch.zeros(5, 1, dtype=torch.long)).shape
(torch.Size([5, 1]), torch.Size([5]))
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlgen.heads.base import BoxDistribution, Head, check_sampling_controls, gumbel_argmax, nucleus_filter


class Categorical(BoxDistribution):
    """Independent categoricals over ``num_classes`` values per dimension.

    :param logits: unnormalised log-probabilities, shape ``(..., D, num_classes)``.
    """

    def __init__(self, logits: Tensor, validate_args: bool | None = None):
        num_classes = logits.shape[-1]
        dim = logits.shape[-2]
        low = torch.zeros(dim, device=logits.device)
        super().__init__(low, torch.full_like(low, num_classes - 1), validate_args)
        self.logits = torch.log_softmax(logits.float(), dim=-1)

    @property
    def num_classes(self) -> int:
        return self.logits.shape[-1]

    @property
    def batch_shape(self) -> torch.Size:
        return self.logits.shape[:-2]

    @property
    def probs(self) -> Tensor:
        return self.logits.exp()

    def log_prob_per_dim(self, x: Tensor) -> Tensor:
        if self.validate_args:
            if x.is_floating_point() and not torch.equal(x, x.round()):
                raise ValueError("categorical targets must be whole numbers (action indices)")
            self.check_target(x.float())
        index = x.long().unsqueeze(-1).expand(*self.logits.shape[:-1], 1)
        return self.logits.gather(-1, index).squeeze(-1)

    def sample(
        self, temperature: float = 1.0, top_p: float | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Indices drawn by Gumbel-max; ``temperature`` divides the logits, ``top_p`` keeps the nucleus."""
        check_sampling_controls(temperature, top_p)
        return gumbel_argmax(nucleus_filter(self.logits / temperature, top_p), generator)

    def mode(self) -> Tensor:
        return self.logits.argmax(-1)

    @property
    def mean(self) -> Tensor:
        values = torch.arange(self.num_classes, device=self.logits.device, dtype=torch.float32)
        return (self.probs * values).sum(-1)

    def entropy_per_dim(self) -> Tensor:
        return -(self.probs * self.logits).sum(-1)


class CategoricalHead(Head):
    """Linear map from features to ``D`` categoricals over ``num_classes`` actions each.

    :param in_features: size of the features' last axis.
    :param dim: number of action dimensions (1 for a ``Discrete`` space).
    :param num_classes: actions per dimension.
    """

    def __init__(self, in_features: int, dim: int, num_classes: int):
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        super().__init__(in_features, dim, 0.0, float(num_classes - 1), params_per_dim=num_classes)
        self.num_classes = num_classes

    def distribution(self, params: Tensor) -> Categorical:
        return Categorical(params)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_classes={self.num_classes}"
