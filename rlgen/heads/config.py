"""Typed head configs: one frozen dataclass per head, holding its options and their only defaults.

A config round-trips through YAML as a flat mapping whose ``type`` names the head, e.g.
``{type: dlml, num_mixtures: 10, num_classes: 256}``; :func:`head_config` builds one from such a mapping and
``create`` builds the head.

>>> config = head_config("adacat", num_bins=32)
>>> head = config.create(in_features=64, dim=3, low=-1.0, high=1.0)
>>> head.num_bins
32
"""

from __future__ import annotations

import builtins
import dataclasses
import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

from rlgen.heads.adacat import AdaCatHead
from rlgen.heads.base import HEAD_INITS, BoundLike, Head, HeadInit
from rlgen.heads.binned import QuantileCategoricalHead, UniformCategoricalHead
from rlgen.heads.dlml import DLMLHead
from rlgen.heads.gaussian import GaussianHead
from rlgen.heads.piecewise import SMOOTHING_KERNELS, SmoothingKernel


@dataclass(frozen=True)
class HeadConfig:
    """Base of the head configs: :meth:`create` builds the head; :meth:`config_variants` lists every config.

    A config field annotated ``HeadConfig`` in an rlgen recipe takes any head, chosen by its ``type`` key.
    """

    type: str
    head_class: ClassVar[builtins.type[Head]]

    @classmethod
    def config_variants(cls) -> dict[str, type[HeadConfig]]:
        """Every head config by its ``type`` name."""
        return HEAD_CONFIGS

    def create(self, in_features: int, dim: int, low: BoundLike, high: BoundLike) -> Head:
        """The head mapping ``(..., in_features)`` features to a distribution over the box ``[low, high]^dim``."""
        return self.head_class(in_features, dim, low, high, self)

    def replace(self, **options: Any) -> Self:
        """A copy with ``options`` changed; an unknown option is a ``ValueError`` listing the valid ones."""
        _check_options(self.type, type(self), options)
        return dataclasses.replace(self, **options)


@dataclass(frozen=True)
class GaussianHeadConfig(HeadConfig):
    """Diagonal Gaussian head (:class:`~rlgen.heads.GaussianHead`).

    :param squash: tanh-squash into the box (support exactly ``[low, high]``).
    :param state_dependent_std: predict the log-std from the features; otherwise learn one free log-std per
        dimension (as Stable-Baselines3's PPO does).
    :param init_log_std: initial value of the free log-std.
    :param env_units: read the network's outputs in the box's units rather than in half-widths of the box: the
        mean as an offset from the box centre, the log-std as the action's (unsquashed heads only).
    """

    type: Literal["gaussian"] = "gaussian"
    squash: bool = True
    state_dependent_std: bool = True
    init_log_std: float = 0.0
    env_units: bool = False
    head_class: ClassVar[builtins.type[Head]] = GaussianHead

    def __post_init__(self) -> None:
        if self.squash and self.env_units:
            raise ValueError("env_units needs squash: false: a tanh-squashed Gaussian's latent has no env units")


@dataclass(frozen=True)
class BinnedHeadConfig(HeadConfig):
    """Options shared by the heads over bins.

    :param num_bins: bins k per dimension.
    :param bandwidth: if > 0, train with the analytic target-smoothed likelihood (AdaCat eq. 8) with this
        kernel width on the unit interval; 0 trains on the plain likelihood.
    :param kernel: ``uniform`` or ``gaussian`` smoothing kernel.
    :param init: initial output layer: ``spread`` starts every state at equal bins with equal masses (uniform
        over the box), ``torch`` keeps ``nn.Linear``'s random init, ``auto`` lets the consumer choose (the
        ``rlgen.sb3`` policies spread, the other agents keep ``torch``).
    """

    num_bins: int = 100
    bandwidth: float = 0.0
    kernel: SmoothingKernel = "uniform"
    init: HeadInit = "auto"

    def __post_init__(self) -> None:
        _check_init(self.init)
        if self.num_bins < 2:
            raise ValueError(f"num_bins must be at least 2, got {self.num_bins}")
        if not self.bandwidth >= 0:
            raise ValueError(f"bandwidth must be >= 0, got {self.bandwidth}")
        if self.kernel not in SMOOTHING_KERNELS:
            raise ValueError(f"kernel must be one of {list(SMOOTHING_KERNELS)}, got {self.kernel!r}")


@dataclass(frozen=True)
class UniformHeadConfig(BinnedHeadConfig):
    """Uniform categorical head (:class:`~rlgen.heads.UniformCategoricalHead`): k equal-width bins."""

    type: Literal["uniform"] = "uniform"
    head_class: ClassVar[builtins.type[Head]] = UniformCategoricalHead


@dataclass(frozen=True)
class QuantileHeadConfig(BinnedHeadConfig):
    """Quantile categorical head (:class:`~rlgen.heads.QuantileCategoricalHead`): bins of equal data mass."""

    type: Literal["quantile"] = "quantile"
    head_class: ClassVar[builtins.type[Head]] = QuantileCategoricalHead


@dataclass(frozen=True)
class AdaCatHeadConfig(BinnedHeadConfig):
    """AdaCat head (:class:`~rlgen.heads.AdaCatHead`): bin widths and masses both predicted.

    :param num_bins: bins k per dimension (half the fixed-bin heads' 100: the output layer has 2k per dimension).
    :param bandwidth: target-smoothing width; without smoothing the bins collapse.
    :param width_grad_scale: multiplies the gradient reaching the width logits, in [0, 1] (1: the plain gradient).
    :param cells: 0 for AdaCat's own density; else at least 2: the distribution quantised to this many equal cells
        of the box (:meth:`~rlgen.heads.PiecewiseUniform.quantised`), whose log-density is continuous in the
        predicted widths, as policy-gradient likelihood ratios need (AdaCat's own jumps when an edge moves past
        an action).
    :param state_dependent_widths: predict the bin widths from the features; otherwise learn one free set of
        widths per dimension, shared by every input, only the masses predicted (as a Gaussian's
        ``state_dependent_std: false`` shares its spread).
    """

    type: Literal["adacat"] = "adacat"
    num_bins: int = 50
    bandwidth: float = 1e-3
    width_grad_scale: float = 1.0
    cells: int = 0
    state_dependent_widths: bool = True
    head_class: ClassVar[builtins.type[Head]] = AdaCatHead

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.width_grad_scale <= 1.0:
            raise ValueError(f"width_grad_scale must be in [0, 1], got {self.width_grad_scale}")
        if self.cells < 0 or self.cells == 1:
            raise ValueError(f"cells must be 0 (AdaCat's own density) or at least 2, got {self.cells}")


@dataclass(frozen=True)
class DLMLHeadConfig(HeadConfig):
    """Discretised logistic mixture head (:class:`~rlgen.heads.DLMLHead`).

    :param num_mixtures: components K per dimension.
    :param num_classes: levels C per dimension (256 as for 8-bit data).
    :param init: initial output layer: ``spread`` starts every state at K equal-weight components with means
        evenly spread over the box and standard deviation 1/K each (on the centred box [-1, 1]), ``torch``
        keeps ``nn.Linear``'s random init, ``auto`` lets the consumer choose (the ``rlgen.sb3`` policies
        spread, the other agents keep ``torch``).
    :param state_dependent_scale: predict the components' log-scales from the features; otherwise learn one free
        log-scale per dimension and component (as a Gaussian's ``state_dependent_std: false``).
    """

    type: Literal["dlml"] = "dlml"
    num_mixtures: int = 10
    num_classes: int = 256
    init: HeadInit = "auto"
    state_dependent_scale: bool = True
    head_class: ClassVar[builtins.type[Head]] = DLMLHead

    def __post_init__(self) -> None:
        _check_init(self.init)
        if self.num_mixtures < 1:
            raise ValueError(f"num_mixtures must be >= 1, got {self.num_mixtures}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {self.num_classes}")


#: every head config by its ``type`` name.
HEAD_CONFIGS: dict[str, type[HeadConfig]] = {
    "gaussian": GaussianHeadConfig,
    "uniform": UniformHeadConfig,
    "quantile": QuantileHeadConfig,
    "adacat": AdaCatHeadConfig,
    "dlml": DLMLHeadConfig,
}


def register_head(config_class: type[HeadConfig]) -> type[HeadConfig]:
    """Make a head config class nameable in recipes and overrides by its ``type`` default
    (``head: {type: my_head, ...}``, ``--set agent.head=my_head``); usable as a class decorator.

    A name already taken by another class is a ``ValueError``: a plugin cannot silently replace a head.
    """
    if not (dataclasses.is_dataclass(config_class) and issubclass(config_class, HeadConfig)):
        raise TypeError(f"{config_class!r} is not a HeadConfig dataclass")
    name = next((f.default for f in dataclasses.fields(config_class) if f.name == "type"), None)
    if not isinstance(name, str):
        raise ValueError(f'{config_class.__name__} needs a field `type: Literal["<name>"] = "<name>"`')
    if HEAD_CONFIGS.get(name, config_class) is not config_class:
        raise ValueError(f"head {name!r} is already registered as {HEAD_CONFIGS[name].__name__}")
    HEAD_CONFIGS[name] = config_class
    return config_class


def head_config(type: str, **options: Any) -> HeadConfig:
    """The config of head ``type`` with ``options`` set and every other option at its default.

    An unknown type or option is a ``ValueError`` listing the valid ones.
    """
    if type not in HEAD_CONFIGS:
        raise ValueError(f"unknown head {type!r}{did_you_mean(type, HEAD_CONFIGS)}; valid heads: "
                         f"{', '.join(HEAD_CONFIGS)}")  # fmt: skip
    config_class = HEAD_CONFIGS[type]
    _check_options(type, config_class, options)
    return config_class(**options)


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``valid`` to ``name``, or an empty string."""
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_init(init: str) -> None:
    if init not in HEAD_INITS:
        raise ValueError(f"init must be one of {list(HEAD_INITS)}, got {init!r}")


def _check_options(type: str, config_class: type[HeadConfig], options: dict[str, Any]) -> None:
    valid = [f.name for f in dataclasses.fields(config_class) if f.name != "type"]
    unknown = [name for name in options if name not in valid]
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r}{did_you_mean(unknown[0], valid)} for the {type!r} head; "
                         f"valid options: {', '.join(valid)}")  # fmt: skip
