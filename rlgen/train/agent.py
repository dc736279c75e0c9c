"""The small interfaces every trainable model implements; :func:`rlgen.train.fit` drives them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from rlgen.data import Episodes
from rlgen.rollout import Policy
from rlgen.tasks import TaskSpec


class BatchSampler(Protocol):
    """Anything that draws training batches from a numpy Generator (e.g. :class:`rlgen.data.Transitions`)."""

    def sample(self, batch_size: int, rng: np.random.Generator) -> Any: ...


class Learner(ABC):
    """What :func:`rlgen.train.fit` trains: networks and optimisers updated from batches, checkpointed whole.

    Subclasses set ``Config`` (a dataclass, the ``agent:`` block of a recipe), implement :meth:`update` and
    name in :attr:`checkpointed` the attributes that make up their state. All randomness must come from torch's
    global generator or the ``rng`` the trainer passes to the sampler, so that checkpoints capture it.
    """

    Config: ClassVar[type]
    #: attributes saved and restored through their own ``state_dict`` / ``load_state_dict`` (networks,
    #: optimisers, schedules, buffers); one that is ``None`` (an optional EMA, say) is skipped. State of other
    #: kinds (a number, a counter) is added by overriding :meth:`state_dict` and :meth:`load_state_dict`.
    checkpointed: ClassVar[tuple[str, ...]] = ()
    #: whether several processes may train it on shards of every batch (``torchrun``): then it lists the modules
    #: whose gradients are averaged in :meth:`trainable_modules`
    data_parallel: ClassVar[bool] = False

    @abstractmethod
    def update(self, batch: Any) -> dict[str, Tensor | float]:
        """One gradient step on ``batch``; returns scalars to log (tensors are fine: no device sync needed)."""

    def steps_done(self, updates: int) -> int:
        """What ``train.steps`` counts once ``updates`` gradient steps are done: the gradient steps themselves;
        online agents count the environment steps those updates learned from (SB3's ``total_timesteps``)."""
        return updates

    def set_total_steps(self, total_steps: int) -> None:
        """Told the run's budget of gradient steps (``train.steps``) before training starts or resumes, for
        learners whose schedules follow it; others ignore it."""
        return None

    def counters(self) -> dict[str, float]:
        """Progress counts logged with every evaluation as ``progress/<name>`` (online agents: environment
        steps and episodes, the x-axis that sample efficiency is measured on)."""
        return {}

    def trainable_modules(self) -> list[nn.Module]:
        """The modules its optimisers update, whose gradients data-parallel training averages across processes
        (target and averaged copies are not among them); needed only when :attr:`data_parallel` is set."""
        raise NotImplementedError(f"{type(self).__name__} cannot be trained data-parallel")

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training: the state of every :attr:`checkpointed` attribute."""
        if not self.checkpointed:
            raise NotImplementedError(f"{type(self).__name__} names no checkpointed attributes")
        return {name: part.state_dict() for name in self.checkpointed if (part := getattr(self, name)) is not None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        if not self.checkpointed:
            raise NotImplementedError(f"{type(self).__name__} names no checkpointed attributes")
        for name in self.checkpointed:
            if (part := getattr(self, name)) is not None:
                part.load_state_dict(state[name])


class Agent(Learner):
    """A learner that acts in a task: an algorithm plus its networks and optimisers.

    Subclasses implement :meth:`create` and :meth:`act` besides :class:`Learner`'s methods.
    """

    #: whether the agent learns from a dataset, given to :meth:`create` and :meth:`sampler` (offline agents, and
    #: GAIL's demonstrations); agents that learn from their own environments alone get ``data=None``. Whether an
    #: agent steps environments is a separate matter: see ``rlgen.algos.online.OnlineAgent``.
    needs_dataset: ClassVar[bool] = True

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
