"""Actor-critic policies whose action distribution is an rlgen head, for SB3's PPO and A2C and sb3-contrib's TRPO.

SB3 has no hook for custom action distributions (its issue #703), so :class:`HeadPolicy` overrides the two
places that pick one: ``_build`` (which layers to create) and ``_get_action_dist_from_latent`` (how to turn the
latent into a distribution). Everything else (feature extractor, MLP, value head, optimiser, save/load) is SB3's.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Literal

import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from rlgen.heads import AdaCatHeadConfig, DLMLHeadConfig, Head, HeadConfig
from rlgen.sb3.distributions import DeterministicAction, HeadDistribution, KLDerivatives, starts_spread

#: the DLML policies' default head: 64 levels, a resolution of 1/63 of the box's half-width, as the exact KL (TRPO)
#: and entropy cost O(levels x mixtures) per action dimension.
DLML_POLICY_HEAD = DLMLHeadConfig(num_classes=64)
#: the AdaCat policies' default head: its distribution quantised to fixed cells, so that a likelihood ratio is
#: continuous in the predicted widths (AdaCat's own density jumps when an edge moves past an action), with as many
#: bins as cells.
ADACAT_POLICY_HEAD = AdaCatHeadConfig(num_bins=11, cells=11)

OutputScale = float | Literal["auto"]


class ScaledOutput(nn.Module):
    """``scale * linear(x)``, initialised to compute what ``linear`` did: Adam moves every weight by about its
    learning rate per step whatever the gradient's size, so the outputs then move ``scale`` times as far."""

    def __init__(self, linear: nn.Linear, scale: float):
        super().__init__()
        with torch.no_grad():
            linear.weight.div_(scale)
            linear.bias.div_(scale)
        self.linear = linear
        self.scale = scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.scale * self.linear(features)

    def extra_repr(self) -> str:
        return f"scale={self.scale:.4g}"


def resolve_output_scale(output_scale: OutputScale, outputs_per_dim: int) -> float:
    """The scale of :class:`ScaledOutput`; ``"auto"`` is ``1 / sqrt(outputs_per_dim)``, which keeps the norm of an
    Adam step's change to one action dimension's outputs that of a head with one output per dimension (SB3's
    Gaussian mean)."""
    if output_scale == "auto":
        return 1.0 / math.sqrt(outputs_per_dim)
    if isinstance(output_scale, str) or not output_scale > 0:
        raise ValueError(f"output_scale must be a positive number or 'auto', got {output_scale!r}")
    return float(output_scale)


class HeadPolicy(ActorCriticPolicy):
    """``ActorCriticPolicy`` with an rlgen head as its action distribution.

    Takes every ``ActorCriticPolicy`` argument (``net_arch``, ``activation_fn``, ``ortho_init``, ...) plus:

    :param head: the head's config (e.g. ``DLMLHeadConfig(num_mixtures=3)``) or type (``"dlml"``, ``"adacat"``,
        ``"uniform"`` or ``"gaussian"``, rlgen's tanh Gaussian, with its default options); default: the class's.
    :param exact_entropy: pass SB3 the exact entropy, or ``None`` for SB3's ``-log pi(a|s)`` estimate; default
        exact except for DLML, whose exact entropy over all levels dominates the update's cost
        (:data:`rlgen.sb3.distributions.COSTLY_ENTROPY_HEADS`).
    :param deterministic_action: what ``predict(deterministic=True)`` returns: the head distribution's ``mode``
        or ``mean``; default the mean for DLML and AdaCat, else the mode
        (:class:`~rlgen.sb3.distributions.HeadDistribution`).
    :param log_std_init: log of the initial spread on the centred action box [-1, 1] (:meth:`Head.spread_init`):
        the Gaussian's log-std; the K DLML components, spread evenly over the box, take a K-th of it each;
        binned heads start uniform. Applies to heads whose ``init`` is ``spread`` or ``auto`` (the default).
    :param output_scale: multiply the head's output layer by this factor, its weights divided by it at
        initialisation (the initial policy is unchanged), so that each optimiser step moves the distribution's
        parameters this many times as far; ``"auto"``: ``1 / sqrt(outputs per action dimension)``
        (:func:`resolve_output_scale`). Heads with many outputs per dimension (AdaCat's widths and masses, DLML's
        components) otherwise change their distribution 2-4x more per PPO update (in KL) than SB3's Gaussian;
        default 1, as levelling the steps did not raise AdaCat's return on Walker2d (``benchmarks/sb3_heads.md``).
    :param kl_derivatives: ``"exact"`` or ``"gauss-newton"``: where the KL's derivatives, which only
        sb3-contrib's TRPO takes, come from (:class:`~rlgen.sb3.distributions.HeadTorchDistribution`); default
        Gauss-Newton for DLML, whose exact KL is costly to differentiate twice, else exact.
    """

    default_head: HeadConfig | str = DLML_POLICY_HEAD

    def __init__(
        self,
        *args: Any,
        head: HeadConfig | str | None = None,
        exact_entropy: bool | None = None,
        deterministic_action: DeterministicAction | None = None,
        output_scale: OutputScale = 1.0,
        kl_derivatives: KLDerivatives | None = None,
        **kwargs: Any,
    ):
        if kwargs.get("use_sde"):
            raise ValueError("gSDE perturbs a Gaussian's weights; rlgen head policies need use_sde=False")
        # Read by _build, which ActorCriticPolicy.__init__ calls.
        self.head = head or self.default_head
        self.exact_entropy = exact_entropy
        self.deterministic_action = deterministic_action
        self.output_scale = output_scale
        self.kl_derivatives = kl_derivatives
        resolve_output_scale(output_scale, 1)  # a bad value fails here, before SB3 builds the networks
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        # Mirrors ActorCriticPolicy._build, with the rlgen head as the action network.
        self.action_dist = HeadDistribution(
            self.head, self.action_space, self.exact_entropy, self.deterministic_action, self.kl_derivatives
        )
        self._build_mlp_extractor()
        self.action_net: Head = self.action_dist.proba_distribution_net(self.mlp_extractor.latent_dim_pi)
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)
        if self.ortho_init:
            module_gains = {self.mlp_extractor: np.sqrt(2), self.action_net: 0.01, self.value_net: 1.0}
            if self.share_features_extractor:
                module_gains[self.features_extractor] = np.sqrt(2)
            else:
                module_gains[self.pi_features_extractor] = np.sqrt(2)
                module_gains[self.vf_features_extractor] = np.sqrt(2)
            for module, gain in module_gains.items():
                module.apply(partial(self.init_weights, gain=gain))
        if starts_spread(self.action_dist.head):
            self.action_net.spread_init(math.exp(self.log_std_init))
        scale = resolve_output_scale(self.output_scale, self.action_net.params_per_dim)
        if scale != 1.0:
            self.action_net.proj = ScaledOutput(self.action_net.proj, scale)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_action_dist_from_latent(self, latent_pi: torch.Tensor) -> HeadDistribution:
        return self.action_dist.proba_distribution(self.action_net(latent_pi))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            head=self.head,
            exact_entropy=self.exact_entropy,
            deterministic_action=self.deterministic_action,
            output_scale=self.output_scale,
            kl_derivatives=self.kl_derivatives,
        )
        return data


class DLMLPolicy(HeadPolicy):
    """Discretised logistic mixture policy (options: ``num_mixtures``, ``num_classes``; default
    :data:`DLML_POLICY_HEAD`)."""

    default_head = DLML_POLICY_HEAD


class AdaCatPolicy(HeadPolicy):
    """Adaptive categorical policy: predicted bin widths and masses (options: ``num_bins``, ``cells``; default
    :data:`ADACAT_POLICY_HEAD`).

    Its masses are state-dependent outputs that narrow faster than SB3's Gaussian, whose log-std is one parameter
    per dimension: where that starves PPO of exploration, give it an entropy bonus (``ent_coef=0.01`` took AdaCat
    on Walker2d-v5 at 1M steps from 1133 ± 16 to 1635 ± 314; on HalfCheetah-v5 it cost both heads;
    ``benchmarks/sb3_heads.md``)."""

    default_head = ADACAT_POLICY_HEAD


class UniformBinsPolicy(HeadPolicy):
    """Categorical policy over equal-width bins, uniform inside a bin (option: ``num_bins``)."""

    default_head = "uniform"


class GaussianHeadPolicy(HeadPolicy):
    """rlgen's Gaussian head: tanh-squashed into the box, state-dependent std (options: ``squash``, ...)."""

    default_head = "gaussian"
