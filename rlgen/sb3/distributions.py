"""rlgen head distributions behind Stable-Baselines3's ``Distribution`` interface.

Two thin adapters, no new maths:

- :class:`HeadTorchDistribution` presents an rlgen :class:`~rlgen.heads.BoxDistribution` as a
  ``torch.distributions.Distribution``. SB3's ``kl_divergence`` (called by sb3-contrib's TRPO) only accepts
  those, and dispatches through ``torch.distributions.kl_divergence``, so the KLs of :mod:`rlgen.heads.kl`
  (:func:`~rlgen.heads.box_kl`: exact, or smooth in AdaCat's edges) are registered for this type. TRPO
  differentiates that KL twice, only at p = q; with ``kl_derivatives="gauss-newton"`` (DLML's default) its value
  stays exact and its derivatives are those of :func:`~rlgen.heads.kl_quadratic_model`, equal there and far
  cheaper.
- :class:`HeadDistribution` is the SB3 ``Distribution``: it builds the rlgen head (``proba_distribution_net``)
  and wraps the head's output (``proba_distribution``).

A DLML policy acts with the *level* its sample rounds to: its ``log_prob`` is the log-mass of that level, so
taking exactly the level keeps the PPO/TRPO likelihood ratios exact for the action the environment received.
Policies start spread over the action box (:func:`policy_head_config`), as SB3's Gaussian does.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from torch import Tensor
from torch.distributions import kl as torch_kl

from rlgen.heads import (
    BinnedHeadConfig,
    BoxDistribution,
    DiscretizedLogisticMixture,
    DLMLHeadConfig,
    Head,
    HeadConfig,
    head_config,
)
from rlgen.heads.kl import box_kl, kl_quadratic_model

SelfHeadDistribution = TypeVar("SelfHeadDistribution", bound="HeadDistribution")

DeterministicAction = Literal["mode", "mean"]
KLDerivatives = Literal["exact", "gauss-newton"]
KL_DERIVATIVES: tuple[str, ...] = ("exact", "gauss-newton")
DETERMINISTIC_ACTIONS: tuple[str, ...] = ("mode", "mean")
#: heads whose policies act with their mean when deterministic: a DLML or AdaCat policy trained on-policy spreads
#: its mass over several components or cells, so its most probable one (the mode) jumps between them from state to
#: state while the mean moves smoothly, as a Gaussian's does (the quantised AdaCat's mean scored above its mode in 7
#: of 9 SB3 PPO runs at 1M steps; the runs are in benchmarks/sb3_heads.md).
MEAN_ACTION_HEADS: tuple[str, ...] = ("dlml", "adacat")
#: head kinds that make sense as online policies; the quantile head needs bins fitted on data first.
POLICY_HEADS: tuple[str, ...] = ("dlml", "adacat", "uniform", "gaussian")
#: heads whose exact entropy costs far more than their log-probability: DLML's sums over all C levels of all K
#: components (O(C K) per dimension), so by default they hand SB3 no entropy and SB3 falls back to -log pi(a|s)
#: of the rollout's actions.
COSTLY_ENTROPY_HEADS: tuple[str, ...] = ("dlml",)
#: heads whose KL takes its derivatives from its quadratic model by default: DLML's exact KL, differentiated twice
#: through its level table, made each sb3-contrib TRPO update 60-70x slower than a Gaussian policy's.
GAUSS_NEWTON_KL_HEADS: tuple[str, ...] = ("dlml",)


def policy_head_config(config: HeadConfig) -> HeadConfig:
    """``config`` with ``init: auto`` resolved to ``spread``: a policy gradient starts from a policy that
    explores the whole box, centred, as SB3's Gaussian does (``nn.Linear``'s random init instead starts DLML
    components wide, most of their mass on the clipped edges)."""
    if isinstance(config, DLMLHeadConfig | BinnedHeadConfig) and config.init == "auto":
        return config.replace(init="spread")
    return config


def starts_spread(config: HeadConfig) -> bool:
    """Whether a policy on ``config`` starts at the head's spread distribution (the Gaussian always does)."""
    return not isinstance(config, DLMLHeadConfig | BinnedHeadConfig) or config.init == "spread"


class HeadTorchDistribution(torch.distributions.Distribution):
    """``torch.distributions`` view of an rlgen box distribution (event shape ``(D,)``).

    :param box: the rlgen distribution; its batch shape becomes this one's.
    :param kl_derivatives: where the registered KL's derivatives come from: the exact KL (``"exact"``) or its
        quadratic model around the first argument (``"gauss-newton"``, :func:`~rlgen.heads.kl_quadratic_model`;
        the value stays exact). The two agree, up to second order, only where the arguments are equal: the one
        point where TRPO differentiates. Either argument asking for ``"gauss-newton"`` selects it.
    """

    arg_constraints: dict[str, Any] = {}
    has_rsample = False

    def __init__(self, box: BoxDistribution, kl_derivatives: KLDerivatives = "exact"):
        self.box = box
        self.kl_derivatives = kl_derivatives
        super().__init__(batch_shape=box.batch_shape, event_shape=torch.Size([box.dim]), validate_args=False)

    def log_prob(self, value: Tensor) -> Tensor:
        return self.box.log_prob(value)

    def entropy(self) -> Tensor:
        return self.box.entropy()

    @property
    def mode(self) -> Tensor:
        return self.box.mode()

    @property
    def mean(self) -> Tensor:
        return self.box.mean

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        if tuple(sample_shape) != ():
            raise ValueError("rlgen heads draw one sample per batch element; sample_shape must be empty")
        action = self.box.sample()
        if isinstance(self.box, DiscretizedLogisticMixture):
            action = snap_to_level(self.box, action)
        return action


def snap_to_level(dist: DiscretizedLogisticMixture, x: Tensor) -> Tensor:
    """Replace each coordinate of ``x`` by the DLML level it rounds to (the value whose mass ``log_prob`` gives)."""
    levels = dist.level_values().to(x.device)
    index = dist.level_of(x)
    return levels.expand(*index.shape[:-1], *levels.shape).gather(-1, index.unsqueeze(-1)).squeeze(-1)


@torch_kl.register_kl(HeadTorchDistribution, HeadTorchDistribution)
def _head_kl(p: HeadTorchDistribution, q: HeadTorchDistribution) -> Tensor:
    if "gauss-newton" not in (p.kl_derivatives, q.kl_derivatives) or not torch.is_grad_enabled():
        return box_kl(p.box, q.box)
    with torch.no_grad():
        exact = box_kl(p.box, q.box)
    model = kl_quadratic_model(p.box, q.box)
    return exact + (model - model.detach())


class HeadDistribution(Distribution):
    """SB3 action distribution backed by an rlgen head, for a bounded ``Box`` action space.

    :param head: the head's config, or its type (one of :data:`POLICY_HEADS`) with ``options``; a config's
        ``init: auto`` becomes ``spread`` (see :func:`policy_head_config`).
    :param action_space: the environment's action space; its bounds become the head's box.
    :param exact_entropy: give SB3 the exact entropy (``True``) or ``None``, SB3's documented fallback that
        estimates it by ``-log pi(a|s)`` of the sampled actions (``False``). Default: exact, except for the
        heads in :data:`COSTLY_ENTROPY_HEADS`.
    :param deterministic_action: the action of ``predict(deterministic=True)``: the head distribution's ``mode``
        (a DLML's most probable component's mean) or its ``mean`` (a DLML's snapped to its nearest level);
        default: the mean for the heads in :data:`MEAN_ACTION_HEADS`, else the mode.
    :param kl_derivatives: where the KL's derivatives (TRPO's Fisher-vector products) come from
        (:class:`HeadTorchDistribution`); default ``"gauss-newton"`` for the heads in
        :data:`GAUSS_NEWTON_KL_HEADS`, else ``"exact"``.
    :param options: the head's options when ``head`` is a type (``num_bins``, ``num_mixtures``, ...).
    """

    distribution: HeadTorchDistribution

    def __init__(self, head: HeadConfig | str, action_space: spaces.Space, exact_entropy: bool | None = None,
                 deterministic_action: DeterministicAction | None = None, kl_derivatives: KLDerivatives | None = None,
                 **options: Any):  # fmt: skip
        super().__init__()
        if deterministic_action not in (*DETERMINISTIC_ACTIONS, None):
            raise ValueError(f"deterministic_action must be 'mode' or 'mean', got {deterministic_action!r}")
        if kl_derivatives not in (*KL_DERIVATIVES, None):
            raise ValueError(f"kl_derivatives must be one of {KL_DERIVATIVES}, got {kl_derivatives!r}")
        config = head.replace(**options) if isinstance(head, HeadConfig) else head_config(head, **options)
        if config.type not in POLICY_HEADS:
            raise ValueError(f"head {config.type!r} cannot be a policy head; choose one of {POLICY_HEADS}")
        config = policy_head_config(config)
        if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
            raise ValueError(f"rlgen heads need a 1-D Box action space, got {action_space}")
        if not (action_space.is_bounded("both")):
            raise ValueError(
                f"rlgen heads need finite action bounds, got low={action_space.low} high={action_space.high}; "
                "wrap the env in gymnasium.wrappers.RescaleAction or use SB3's MlpPolicy"
            )
        self.head = config
        self.action_dim = int(action_space.shape[0])
        self.low = torch.as_tensor(action_space.low, dtype=torch.float32)
        self.high = torch.as_tensor(action_space.high, dtype=torch.float32)
        self.exact_entropy = config.type not in COSTLY_ENTROPY_HEADS if exact_entropy is None else exact_entropy
        if deterministic_action is None:
            deterministic_action = "mean" if config.type in MEAN_ACTION_HEADS else "mode"
        self.deterministic_action = deterministic_action
        if kl_derivatives is None:
            kl_derivatives = "gauss-newton" if config.type in GAUSS_NEWTON_KL_HEADS else "exact"
        self.kl_derivatives: KLDerivatives = kl_derivatives

    def proba_distribution_net(self, latent_dim: int) -> Head:
        """The rlgen head mapping the policy latent to a distribution (its ``proj`` is the action layer).

        :param latent_dim: size of the policy network's last layer.
        """
        return self.head.create(latent_dim, self.action_dim, self.low, self.high)

    def proba_distribution(self: SelfHeadDistribution, box: BoxDistribution) -> SelfHeadDistribution:
        """Set the current distribution (rebinds ``self.distribution``, so ``copy.copy`` snapshots, as TRPO
        takes of the old policy, stay valid).

        :param box: the head's output for a batch of latents.
        """
        self.distribution = HeadTorchDistribution(box, self.kl_derivatives)
        return self

    def log_prob(self, actions: Tensor) -> Tensor:
        return self.distribution.log_prob(actions)

    def entropy(self) -> Tensor | None:
        return self.distribution.entropy() if self.exact_entropy else None

    def sample(self) -> Tensor:
        return self.distribution.sample()

    def mode(self) -> Tensor:
        if self.deterministic_action == "mode":
            return self.distribution.mode
        mean = self.distribution.mean
        box = self.distribution.box
        return snap_to_level(box, mean) if isinstance(box, DiscretizedLogisticMixture) else mean

    def actions_from_params(self, box: BoxDistribution, deterministic: bool = False) -> Tensor:
        """Actions from a head's output: the mode if ``deterministic``, else a sample.

        :param box: the head's output.
        :param deterministic: take the mode.
        """
        return self.proba_distribution(box).get_actions(deterministic=deterministic)

    def log_prob_from_params(self, box: BoxDistribution) -> tuple[Tensor, Tensor]:
        """A sampled action and its log-probability.

        :param box: the head's output.
        """
        actions = self.actions_from_params(box)
        return actions, self.log_prob(actions)
