"""Checkpoints: the agent's full training state, every random generator and the step, written atomically.

A checkpoint is one ``torch.save`` file ``checkpoints/step_<step>.pt`` holding plain data only (tensors,
numbers, strings, lists, dicts), so it loads with ``weights_only=True``::

    step       int                 steps done as ``train.steps`` counts them (gradient steps; environment steps
                                   for online agents)
    agent      dict                Agent.state_dict(): networks, optimisers, normalisation buffers; online agents
                                   add their replay buffer and environment state (rlgen.algos.online)
    rng        dict                torch (CPU and CUDA), numpy Generator and python ``random`` states
    replica_rng list               data-parallel runs only: every process's ``rng`` in rank order (``rng``: rank 0's)
    trainer    dict                the trainer's own state: gradient steps done (``updates``), running sums of the
                                   scalars being averaged, the best evaluation so far (``best``)

Restoring all of it makes a resumed run continue bit for bit like one that was never stopped. Beside them,
``checkpoints/best.pt`` holds the agent of the best evaluation so far (``step``, ``agent`` and ``score``); pruning
keeps it.
"""

from __future__ import annotations

import io
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlgen.data.atomic import atomic_path
from rlgen.train.agent import Learner

_NAME = re.compile(r"^step_(\d+)\.pt$")
BEST_NAME = "best.pt"


class CheckpointError(ValueError):
    """A checkpoint file does not load (truncated, not a checkpoint) or does not fit the model it is loaded into."""


def checkpoint_path(folder: Path, step: int) -> Path:
    return folder / f"step_{step:08d}.pt"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every checkpoint in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest_checkpoint(folder: Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1][1] if found else None


def capture_rng(generator: np.random.Generator) -> dict[str, Any]:
    """The states of torch's CPU (and CUDA) generators, ``generator`` and python's ``random``."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": generator.bit_generator.state,
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], generator: np.random.Generator) -> None:
    """Inverse of :func:`capture_rng`; ``generator`` is set in place."""
    torch.set_rng_state(state["torch"])
    generator.bit_generator.state = state["numpy"]
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))  # tuples may come back as lists
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def best_checkpoint_path(folder: Path) -> Path:
    return folder / BEST_NAME


def save_checkpoint(folder: Path, step: int, payload: dict[str, Any], keep: int) -> Path:
    """Write ``payload`` (plus ``step``) to ``folder/step_<step>.pt`` atomically; keep only the ``keep`` newest."""
    path = checkpoint_path(folder, step)
    _write(path, {"step": step, **payload})
    for _, old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def save_best_checkpoint(folder: Path, step: int, agent: dict[str, Any], score: float) -> Path:
    """Write the agent state of the best evaluation so far to ``folder/best.pt`` atomically."""
    path = best_checkpoint_path(folder)
    _write(path, {"step": step, "agent": agent, "score": score})
    return path


def _write(path: Path, state: dict[str, Any]) -> None:
    # Serialised in memory, written with one plain write: torch.save straight to a full disk fails with
    # "RuntimeError: unexpected pos", which atomic_path could not tell from a bug.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path, force=True) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU (``load_state_dict`` of modules and optimisers moves tensors where
    their parameters live)."""
    try:
        # Opened first: a file the trainer deletes while it is read (an older checkpoint) stays readable.
        file = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError as error:
        raise FileNotFoundError(f"checkpoint {path} not found") from error
    try:
        with file:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged file surfaces as RuntimeError, OSError, UnpicklingError, KeyError, ...
        reason = str(error).split(". ")[0].rstrip(".")  # torch's zip errors go on for several sentences
        raise CheckpointError(
            f"checkpoint {path} is unreadable (truncated, or not a checkpoint): {type(error).__name__}: {reason}"
        ) from error
    if not (isinstance(state, dict) and isinstance(state.get("step"), int) and isinstance(state.get("agent"), dict)):
        raise CheckpointError(f"{path} is not an rlgen checkpoint: expected a mapping with 'step' and 'agent'")
    return state


def load_agent_state(agent: Learner, state: dict[str, Any], path: Path, model: str) -> None:
    """Load checkpoint ``state`` (read from ``path``) into ``agent``; a checkpoint of another model (other sizes,
    other layers) raises :class:`CheckpointError` naming ``path`` and ``model``, the model it was loaded into."""
    try:
        agent.load_state_dict(state["agent"])
    except (RuntimeError, KeyError, ValueError, TypeError) as error:  # torch's size/key mismatches, foreign layouts
        summary = " ".join(line.strip() for line in str(error).strip().splitlines()[:2])
        raise CheckpointError(f"checkpoint {path} does not match the model of {model}: {summary}") from error
