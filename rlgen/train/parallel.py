"""The processes that train one learner data-parallel, as :func:`rlgen.train.fit` sees them.

:class:`Replicas` is one process alone (every method an identity); :mod:`rlgen.scale.distributed` implements it
over ``torch.distributed`` for ``torchrun``. Each of the ``world_size`` processes draws its own shard of every
batch, the gradients of :meth:`~rlgen.train.Learner.trainable_modules` are averaged after every backward pass,
and rank 0 (the writer) alone writes the run folder.
"""

from __future__ import annotations

import random
from typing import Any, TypeVar

import numpy as np
import torch

from rlgen.train.agent import Learner

T = TypeVar("T")


class Replicas:
    """One process training alone: the single-process behaviour of every data-parallel hook of the fit loop."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_writer(self) -> bool:
        """Whether this process writes the run folder, logs, checkpoints and evaluates (rank 0)."""
        return self.rank == 0

    def attach(self, learner: Learner) -> None:
        """Average ``learner``'s gradients across the processes after every backward pass, before its optimisers
        (or gradient clipping) read them."""

    def mean(self, values: dict[str, float | torch.Tensor]) -> dict[str, float]:
        """``values`` (the same names on every process) averaged over the processes."""
        return {name: float(value) for name, value in values.items()}

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any process."""
        return flag

    def gather(self, value: T) -> list[T] | None:
        """Every process's ``value`` in rank order on the writer, ``None`` elsewhere."""
        return [value]

    def share(self, value: T) -> T:
        """The writer's ``value``, on every process."""
        return value


def shard_size(batch_size: int, replicas: Replicas) -> int:
    """Samples each process draws for a global batch of ``batch_size``; refuses a size the processes cannot split
    evenly (uneven shards would weigh samples unequally in the averaged gradient)."""
    if batch_size % replicas.world_size:
        raise ValueError(f"train.batch_size={batch_size} is the global batch of {replicas.world_size} processes "
                         f"and must be a multiple of {replicas.world_size}")  # fmt: skip
    return batch_size // replicas.world_size


def rank_generator(seed: int, replicas: Replicas) -> np.random.Generator:
    """The sampling generator of this process: ``default_rng(seed)`` alone; with several processes, stream ``rank``
    spawned from ``seed`` (distinct per rank), with torch's and python's generators seeded from it too, so that
    dropout and noise differ across shards."""
    if replicas.world_size == 1:
        return np.random.default_rng(seed)
    sequence = np.random.SeedSequence(seed, spawn_key=(replicas.rank,))
    torch.manual_seed(int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1)))
    random.seed(int(sequence.generate_state(1)[0]))
    return np.random.default_rng(sequence)


def rank_state(states: Any, replicas: Replicas, where: str) -> Any:
    """This process's entry of the per-process ``states`` a checkpoint (``where``) holds; a checkpoint written by
    another number of processes is refused (its generators could not continue as one stream per process)."""
    if len(states) != replicas.world_size:
        raise ValueError(f"{where} was written by {len(states)} training process(es); resume it with as many "
                         f"(torchrun's --nproc_per_node x --nnodes), not {replicas.world_size}")  # fmt: skip
    return states[replicas.rank]
