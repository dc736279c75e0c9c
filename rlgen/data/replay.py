"""A FIFO replay buffer of transitions for online agents: fixed capacity, uniform sampling, checkpoint state and
atomic save/load."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlgen.data.atomic import atomic_path
from rlgen.data.errors import DatasetError
from rlgen.data.transitions import Transitions

_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals")


class ReplayBuffer:
    """Ring buffer: once full, each new transition overwrites the oldest one.

    :param action_shape: ``()`` for a discrete action (stored as int64), else float32 actions of that shape.
    """

    def __init__(
        self,
        capacity: int,
        observation_shape: Sequence[int],
        action_shape: Sequence[int] = (),
        discrete: bool = False,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        obs_shape, act_shape = tuple(observation_shape), tuple(action_shape)
        self.capacity = capacity
        self.arrays = {
            "observations": np.zeros((capacity, *obs_shape), dtype=np.float32),
            "actions": np.zeros((capacity, *act_shape), dtype=np.int64 if discrete else np.float32),
            "rewards": np.zeros(capacity, dtype=np.float32),
            "next_observations": np.zeros((capacity, *obs_shape), dtype=np.float32),
            "terminals": np.zeros(capacity, dtype=bool),
        }
        self.position = 0  # next slot to write
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        observation: np.ndarray,
        action: np.ndarray | float | int,
        reward: np.ndarray | float,
        next_observation: np.ndarray,
        terminal: np.ndarray | bool,
    ) -> None:
        """Add one transition, or a batch whose arrays have a leading batch axis."""
        obs_ndim = self.arrays["observations"].ndim - 1
        values = dict(zip(_FIELDS, (observation, action, reward, next_observation, terminal), strict=True))
        batched = np.ndim(observation) > obs_ndim
        batch = {}
        for name, value in values.items():
            target = self.arrays[name]
            array = np.asarray(value, dtype=target.dtype)
            array = array if batched else array[None]
            if array.shape[1:] != target.shape[1:]:
                raise ValueError(f"{name}: got shape {array.shape[1:]} per transition, expected {target.shape[1:]}")
            batch[name] = array
        n = len(batch["observations"])
        if any(len(a) != n for a in batch.values()):
            raise ValueError(f"batched add needs equal lengths, got {[len(a) for a in batch.values()]}")
        if n > self.capacity:  # only the newest `capacity` survive anyway
            batch = {k: v[-self.capacity :] for k, v in batch.items()}
            self.position = (self.position + n - self.capacity) % self.capacity
            n = self.capacity
        slots = (self.position + np.arange(n)) % self.capacity
        for name, array in batch.items():
            self.arrays[name][slots] = array
        self.position = int((self.position + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def extend(self, transitions: Transitions) -> None:
        """Add every transition of an offline dataset (e.g. to pre-fill the buffer)."""
        self.add(
            transitions.observations,
            transitions.actions,
            transitions.rewards,
            transitions.next_observations,
            transitions.terminals.astype(bool),
        )

    def sample(self, batch_size: int, rng: np.random.Generator) -> Transitions:
        """``batch_size`` stored transitions drawn uniformly with replacement."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = rng.integers(0, self.size, size=batch_size)
        a = {k: v[idx] for k, v in self.arrays.items()}
        return Transitions(
            observations=a["observations"],
            actions=a["actions"],
            rewards=a["rewards"],
            next_observations=a["next_observations"],
            terminals=a["terminals"].astype(np.float32),
            timeouts=np.zeros(batch_size, dtype=bool),
            steps=idx,
        )

    def ordered(self) -> dict[str, np.ndarray]:
        """The stored transitions from oldest to newest."""
        start = self.position if self.size == self.capacity else 0
        order = (start + np.arange(self.size)) % self.capacity
        return {k: v[order] for k, v in self.arrays.items()}

    def state_dict(self) -> dict[str, Any]:
        """The buffer as checkpoint data (tensors and ints, loadable with ``torch.load(weights_only=True)``).

        It holds the raw ring slots, not the oldest-first order, so that sampling after :meth:`load_state_dict`
        draws the same rows as the buffer it was taken from.
        """
        arrays = {name: torch.from_numpy(array[: self.size].copy()) for name, array in self.arrays.items()}
        return {"arrays": arrays, "position": self.position, "size": self.size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`, into a buffer of the same capacity and shapes."""
        size, position = int(state["size"]), int(state["position"])
        if not 0 <= size <= self.capacity or not 0 <= position < self.capacity:
            raise ValueError(f"replay state: size {size} and position {position} do not fit a buffer of capacity "
                             f"{self.capacity}")  # fmt: skip
        arrays = state["arrays"]
        if sorted(arrays) != sorted(_FIELDS):
            raise ValueError(f"replay state: arrays {sorted(arrays)}, expected {sorted(_FIELDS)}")
        for name, tensor in arrays.items():
            target = self.arrays[name]
            if tuple(tensor.shape) != (size, *target.shape[1:]):
                raise ValueError(f"replay state: {name} has shape {tuple(tensor.shape)}, expected "
                                 f"{(size, *target.shape[1:])}")  # fmt: skip
        for name, tensor in arrays.items():
            self.arrays[name].fill(0)
            self.arrays[name][:size] = tensor.numpy()
        self.position, self.size = position, size

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the buffer to an ``.npz`` file atomically (a killed save keeps the previous file)."""
        path = Path(path)
        with atomic_path(path, force=True) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, capacity=self.capacity, discrete=self.arrays["actions"].dtype == np.int64, **self.ordered())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReplayBuffer:
        """Read a buffer written by :meth:`save`; the FIFO order continues where it stopped."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = {k: npz[k] for k in npz.files}
        except FileNotFoundError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise DatasetError(f"{path}: not a readable replay-buffer file (truncated or corrupt?): {e}") from e
        missing = [k for k in ("capacity", "discrete", *_FIELDS) if k not in data]
        if missing:
            raise DatasetError(f"{path}: missing key '{missing[0]}' in replay-buffer file")
        obs, act = data["observations"], data["actions"]
        buffer = cls(int(data["capacity"]), obs.shape[1:], act.shape[1:], discrete=bool(data["discrete"]))
        buffer.add(*(data[k] for k in _FIELDS))
        return buffer
