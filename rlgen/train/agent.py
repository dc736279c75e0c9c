"""The small interfaces every trainable model implements; :func:`rlgen.train.fit` drives them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import Tensor

from rlgen.data import Episodes
from rlgen.rollout import Policy
from rlgen.tasks import TaskSpec


class BatchSampler(Protocol):
    """Anything that draws training batches from a numpy Generator (e.g. :class:`rlgen.data.Transitions`)."""

    def sample(self, batch_size: int, rng: np.random.Generator) -> Any: ...


class Learner(ABC):
    """What :func:`rlgen.train.fit` trains: networks and optimisers updated from batches, checkpointed whole.

    Subclasses set ``Config`` (a dataclass, the ``agent:`` block of a recipe) and implement :meth:`update`,
    :meth:`state_dict` and :meth:`load_state_dict`. All randomness must come from torch's global generator or the
    ``rng`` the trainer passes to the sampler, so that checkpoints capture it.
    """

    Config: ClassVar[type]

    @abstractmethod
    def update(self, batch: Any) -> dict[str, Tensor | float]:
        """One gradient step on ``batch``; returns scalars to log (tensors are fine: no device sync needed)."""

    def set_total_steps(self, total_steps: int) -> None:
        """Told the run's budget of gradient steps (``train.steps``) before training starts or resumes, for
        learners whose schedules follow it; others ignore it."""
        return None

    def counters(self) -> dict[str, float]:
        """Progress counts logged with every evaluation as ``progress/<name>`` (online agents: environment
        steps and episodes, the x-axis that sample efficiency is measured on)."""
        return {}

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training: networks, optimisers, data-derived buffers."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""


class Agent(Learner):
    """A learner that acts in a task: an algorithm plus its networks and optimisers.

    Subclasses implement :meth:`create` and :meth:`act` besides :class:`Learner`'s methods.
    """

    #: offline agents learn from a dataset (``data`` is given to :meth:`create` and :meth:`sampler`); online
    #: ones (``rlgen.algos.online``) get ``data=None`` and sample by stepping their own environments.
    offline: ClassVar[bool] = True

    @classmethod
    @abstractmethod
    def create(cls, config: Any, task: TaskSpec, data: Episodes | None, device: torch.device) -> Agent:
        """Build the agent for ``task``. ``data`` is the training dataset, or ``None`` when the agent is only
        rebuilt to load a checkpoint (its data-derived buffers then come from the checkpoint)."""

    def sampler(self, data: Episodes | None) -> BatchSampler:
        """What the trainer draws batches from; the default is the D4RL-style transitions of ``data``."""
        from rlgen.data import transitions

        if data is None:
            raise ValueError(f"{type(self).__name__} learns from a dataset, but none was given")
        return transitions(data)

    @abstractmethod
    def act(self, observations: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for a batch of observations ``(n, obs_dim)``, as the vector env expects them."""

    def eval_policy(self) -> Policy:
        """A fresh policy for evaluation episodes. Agents that act on the current observations alone return
        :meth:`act`; one that conditions on past transitions returns a policy with ``observe`` (see
        :data:`rlgen.rollout.Policy`), whose memory starts empty."""
        return self.act


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda[:i]``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu" or name.startswith("cuda"):
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("--device cuda was requested but torch sees no CUDA device; use --device cpu or auto")
        return torch.device(name)
    raise ValueError(f"unknown device {name!r}; choose auto, cpu or cuda")
