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
from rlgen.heads.base import PEAK_WIDTH, POINT_ACTIONS, BoundLike, BoxDistribution, Head, PointAction, nucleus_filter
from rlgen.heads.binned import BinnedHead, QuantileCategoricalHead, UniformCategoricalHead, unit_quantile_edges
from rlgen.heads.config import (
    HEAD_CONFIGS,
    AdaCatHeadConfig,
    BinnedHeadConfig,
    DLMLHeadConfig,
    GaussianHeadConfig,
    HeadConfig,
    QuantileHeadConfig,
    UniformHeadConfig,
    head_config,
    register_head,
)
from rlgen.heads.discrete import Categorical, CategoricalHead
from rlgen.heads.dlml import DiscretizedLogisticMixture, DLMLHead
from rlgen.heads.gaussian import DiagGaussian, GaussianHead
from rlgen.heads.kl import box_kl, kl_quadratic_model
from rlgen.heads.piecewise import PiecewiseUniform


def make_head(
    kind_or_config: str | HeadConfig, in_features: int, dim: int, low: BoundLike, high: BoundLike, **options: Any
) -> Head:
    """Build a head from its config, or from its type (``gaussian``, ``uniform``, ``quantile``, ``adacat``,
    ``dlml``) and options (e.g. ``num_bins``, ``num_mixtures``, ``squash``); ``options`` also change a config's.

    An unknown type or option is a ``ValueError`` listing the valid ones.
    """
    if isinstance(kind_or_config, HeadConfig):
        config = kind_or_config.replace(**options)
    else:
        config = head_config(kind_or_config, **options)
    return config.create(in_features, dim, low, high)


__all__ = [
    "HEAD_CONFIGS",
    "PEAK_WIDTH",
    "POINT_ACTIONS",
    "PointAction",
    "AdaCatHead",
    "AdaCatHeadConfig",
    "BinnedHead",
    "BinnedHeadConfig",
    "BoundLike",
    "BoxDistribution",
    "Categorical",
    "CategoricalHead",
    "DLMLHead",
    "DLMLHeadConfig",
    "DiagGaussian",
    "DiscretizedLogisticMixture",
    "GaussianHead",
    "GaussianHeadConfig",
    "Head",
    "HeadConfig",
    "PiecewiseUniform",
    "QuantileCategoricalHead",
    "QuantileHeadConfig",
    "UniformCategoricalHead",
    "UniformHeadConfig",
    "box_kl",
    "kl_quadratic_model",
    "head_config",
    "register_head",
    "make_head",
    "nucleus_filter",
    "unit_quantile_edges",
]
