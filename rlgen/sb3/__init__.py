"""rlgen heads as Stable-Baselines3 action distributions and actor-critic policies.

Works with SB3's PPO and A2C and sb3-contrib's TRPO unchanged; a head config goes through ``policy_kwargs``.
Under TRPO, pass DLML and AdaCat policies ``cg_damping=0.01``: most of their Fisher matrix is smaller than the
default damping of 0.1, which would make TRPO's step a plain gradient step (``benchmarks/sb3_heads.md``).
Like SB3's own ``MlpPolicy``, these small networks train fastest on one torch thread; the policies leave the
process's thread count to the caller (it is global: other models in the process share it), so set it:

>>> import torch
>>> torch.set_num_threads(1)
>>> from stable_baselines3 import PPO
>>> from rlgen.heads import DLMLHeadConfig
>>> from rlgen.sb3 import DLMLPolicy
>>> model = PPO(DLMLPolicy, "InvertedPendulum-v5", n_steps=64, batch_size=64,
...             policy_kwargs={"head": DLMLHeadConfig(num_mixtures=3)})
>>> model.learn(64).predict(model.env.reset(), deterministic=True)[0].shape
(1, 1)
"""

from __future__ import annotations

from rlgen.heads.kl import box_kl, dlml_kl, gaussian_kl, kl_quadratic_model, piecewise_uniform_kl, quantised_kl
from rlgen.sb3.distributions import (
    POLICY_HEADS,
    HeadDistribution,
    HeadTorchDistribution,
    policy_head_config,
    snap_to_level,
)
from rlgen.sb3.policies import (
    ADACAT_POLICY_HEAD,
    DLML_POLICY_HEAD,
    AdaCatPolicy,
    DLMLPolicy,
    GaussianHeadPolicy,
    HeadPolicy,
    UniformBinsPolicy,
)

__all__ = [
    "ADACAT_POLICY_HEAD",
    "DLML_POLICY_HEAD",
    "POLICY_HEADS",
    "AdaCatPolicy",
    "DLMLPolicy",
    "GaussianHeadPolicy",
    "HeadDistribution",
    "HeadPolicy",
    "HeadTorchDistribution",
    "UniformBinsPolicy",
    "box_kl",
    "dlml_kl",
    "gaussian_kl",
    "kl_quadratic_model",
    "piecewise_uniform_kl",
    "policy_head_config",
    "quantised_kl",
    "snap_to_level",
]
