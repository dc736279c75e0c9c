"""Trainable agents. Each implements :class:`rlgen.train.Agent`; recipes in ``agents/`` name them by ``algo:``
(:data:`ALGOS`, which :mod:`rlgen.runs` merges with the generative agents).

>>> from rlgen.runs import get_algo
>>> BC = get_algo("bc")
"""

from __future__ import annotations

from rlgen.algos.actor_critic import A2C, A2CConfig
from rlgen.algos.bc import BC, BCConfig, BCPolicy
from rlgen.algos.dqn import DQN, DQNConfig
from rlgen.algos.gail import GAIL, GAILConfig
from rlgen.algos.iql import IQL, IQLConfig
from rlgen.algos.reinforce import Reinforce, ReinforceConfig
from rlgen.algos.td3_bc import TD3BC, TD3BCConfig
from rlgen.algos.tt.agent import TT
from rlgen.train.agent import Agent

ALGOS: dict[str, type[Agent]] = {
    "bc": BC,
    "iql": IQL,
    "td3_bc": TD3BC,
    "tt": TT,
    "reinforce": Reinforce,
    "a2c": A2C,
    "dqn": DQN,
    "gail": GAIL,
}


__all__ = [
    "A2C",
    "ALGOS",
    "BC",
    "DQN",
    "GAIL",
    "A2CConfig",
    "BCConfig",
    "BCPolicy",
    "DQNConfig",
    "GAILConfig",
    "IQL",
    "IQLConfig",
    "Reinforce",
    "ReinforceConfig",
    "TD3BC",
    "TD3BCConfig",
]
