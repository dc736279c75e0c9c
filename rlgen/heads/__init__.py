"""Generative heads: one family of factorised output distributions shared by every rlgen model.

>>> import torch
>>> from rlgen.heads import make_head
>>> head = make_head("dlml", in_features=64, dim=3, low=-1.0, high=1.0)
>>> dist = head(torch.randn(8, 64))
>>> dist.sample().shape, dist.log_prob(torch.zeros(8, 3)).shape
(torch.Size([8, 3]), torch.Size([8]))
"""

from __future__ import annotations

from typing import Any

from rlgen.heads.adacat import AdaCatHead
from rlgen.heads.base import BoundLike, BoxDistribution, Head, nucleus_filter
from rlgen.heads.binned import PiecewiseUniform
from rlgen.heads.categorical import BinnedHead, QuantileCategoricalHead, UniformCategoricalHead, unit_quantile_edges
from rlgen.heads.discrete import Categorical, CategoricalHead
from rlgen.heads.dlml import DiscretizedLogisticMixture, DLMLHead
from rlgen.heads.gaussian import DiagGaussian, GaussianHead
from rlgen.heads.kl import box_kl

HEADS: dict[str, type[Head]] = {
    "gaussian": GaussianHead,
    "uniform": UniformCategoricalHead,
    "quantile": QuantileCategoricalHead,
    "adacat": AdaCatHead,
    "dlml": DLMLHead,
}

# Defaults of the bin count for the fixed-bin heads (AdaCat and DLML carry theirs in their signatures).
_FIXED_BIN_DEFAULTS: dict[str, dict[str, Any]] = {"uniform": {"num_bins": 100}, "quantile": {"num_bins": 100}}


def check_head_kind(kind: str) -> type[Head]:
    """The head class registered as ``kind``; an unknown name is a ``ValueError`` listing the known ones."""
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r}; choose one of {sorted(HEADS)}")
    return HEADS[kind]


def make_head(kind: str, in_features: int, dim: int, low: BoundLike, high: BoundLike, **options: Any) -> Head:
    """Build a head by name (``gaussian``, ``uniform``, ``quantile``, ``adacat``, ``dlml``).

    ``options`` go to the head's constructor (e.g. ``num_bins``, ``num_mixtures``, ``squash``).
    """
    head_class = check_head_kind(kind)
    options = {**_FIXED_BIN_DEFAULTS.get(kind, {}), **options}
    try:
        return head_class(in_features, dim, low, high, **options)
    except TypeError as error:
        # Name every option: a recipe's head_options for one head often travel along when only the head is changed.
        raise ValueError(f"bad options for the {kind!r} head: {error} (options given: {sorted(options)})") from error


__all__ = [
    "HEADS",
    "AdaCatHead",
    "BinnedHead",
    "BoundLike",
    "BoxDistribution",
    "Categorical",
    "CategoricalHead",
    "DLMLHead",
    "DiagGaussian",
    "DiscretizedLogisticMixture",
    "GaussianHead",
    "Head",
    "PiecewiseUniform",
    "QuantileCategoricalHead",
    "UniformCategoricalHead",
    "box_kl",
    "check_head_kind",
    "make_head",
    "nucleus_filter",
    "unit_quantile_edges",
]
