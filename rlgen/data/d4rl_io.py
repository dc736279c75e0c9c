"""D4RL HDF5 files: read any file under ``~/.d4rl/datasets`` without importing ``d4rl``, and write the same layout.

The layout is flat, one row per step: ``observations``, ``actions``, ``rewards``, ``terminals``, ``timeouts``,
optional ``next_observations``, ``infos/*`` (per step) and ``metadata/*`` (anything). rlgen keeps the episodes'
spaces in ``metadata/observation_space`` and ``metadata/action_space`` (see :mod:`rlgen.data.spaces`); a file
without them (D4RL's own) gets spaces inferred from its arrays, with unknown bounds.

Episode boundaries are where ``terminals`` or ``timeouts`` is set. When ``next_observations`` is present it
gives the final observation of every episode, and a step whose ``next_observations`` row differs from the
following ``observations`` row also ends an episode (D4RL's replay-buffer datasets contain such unflagged
cuts). Writing puts ``next_observations`` back from the episodes, so a float32 file round-trips bit for bit.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import h5py
import numpy as np

from rlgen.data.atomic import atomic_path
from rlgen.data.episodes import Episodes, check_finite, episode_ends_from_flags
from rlgen.data.errors import DatasetError
from rlgen.data.hdf5 import flatten, open_hdf5, read_dataset, read_tree, unflatten, write_hdf5, write_tree
from rlgen.data.spaces import SPACE_KEYS, Space, check_declared, inferred_space, space_from_tree, space_to_tree

STEP_KEYS = {
    "observations": "(N, obs_dim) observations",
    "actions": "(N, act_dim) actions",
    "rewards": "(N,) rewards",
    "terminals": "(N,) terminal flags",
    "timeouts": "(N,) timeout flags",
}
OPTIONAL_KEYS = ("next_observations", "infos", "metadata")


def read_d4rl(path: str | os.PathLike[str]) -> Episodes:
    """Read a D4RL-layout HDF5 file.

    A file without ``timeouts`` (some early D4RL releases) loads with a warning: its episodes are then only
    split at terminals. Any problem raises :class:`DatasetError` naming the file and key.
    """
    path = Path(path)
    with open_hdf5(path) as f:
        arrays = {}
        for key, expected in STEP_KEYS.items():
            if key == "timeouts" and key not in f:
                warnings.warn(f"{path}: no 'timeouts' key; episodes are split at terminals only", stacklevel=2)
                continue
            arrays[key] = read_dataset(f, key, path, expected)
        next_obs = read_dataset(f, "next_observations", path, "(N, obs_dim)") if "next_observations" in f else None
        infos = flatten(read_tree(_group(f, "infos", path), path)) if "infos" in f else {}
        metadata, spaces = _metadata(f, path)
        ignored = sorted(set(f.keys()) - set(STEP_KEYS) - set(OPTIONAL_KEYS))
    if ignored:
        warnings.warn(f"{path}: ignoring keys outside the D4RL layout: {', '.join(ignored)}", stacklevel=2)

    n = len(arrays["observations"])
    arrays.setdefault("timeouts", np.zeros(n, dtype=bool))
    for key, array in arrays.items():
        if array.ndim == 0 or len(array) != n:
            raise DatasetError(f"{path}: key '{key}' has shape {array.shape}; expected {n} rows ({STEP_KEYS[key]})")
    ends, final = _episode_ends(path, arrays, next_obs)
    check_declared(spaces, arrays["observations"], arrays["actions"], str(path), "metadata/")
    return Episodes(
        observations=arrays["observations"],
        actions=arrays["actions"],
        rewards=arrays["rewards"],
        terminals=arrays["terminals"],
        timeouts=arrays["timeouts"],
        episode_ends=ends,
        final_observations=final,
        infos=infos,
        metadata=metadata,
        source=str(path),
        **spaces,
    )


def read_d4rl_metadata(path: str | os.PathLike[str]) -> dict:
    """The ``metadata`` group of a D4RL-layout file (empty if it has none; spaces left out), without reading its
    steps."""
    with open_hdf5(path) as f:
        return _metadata(f, Path(path))[0]


def _metadata(f: h5py.File, path: Path) -> tuple[dict, dict[str, Space]]:
    """The ``metadata`` group without the spaces, and the spaces it records."""
    metadata = read_tree(_group(f, "metadata", path), path) if "metadata" in f else {}
    spaces = {k: space_from_tree(metadata.pop(k), str(path), f"metadata/{k}") for k in SPACE_KEYS if k in metadata}
    return metadata, spaces


def _group(f: h5py.File, key: str, path: Path) -> h5py.Group:
    """``f[key]``, which must be a group of arrays (D4RL's ``infos`` and ``metadata``)."""
    if not isinstance(f[key], h5py.Group):
        raise DatasetError(f"{path}: key '{key}' is a dataset; expected a group of {key} arrays")
    return f[key]


def _episode_ends(
    path: Path, arrays: dict[str, np.ndarray], next_obs: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Episode ends (flags, plus unflagged cuts seen in ``next_observations``) and the final observations."""
    done = (arrays["terminals"] != 0) | (arrays["timeouts"] != 0)
    obs = arrays["observations"]
    if next_obs is None or obs.dtype.kind not in "iuf":  # a bad observations array is reported by Episodes
        return episode_ends_from_flags(done), None
    if next_obs.shape != obs.shape:
        raise DatasetError(
            f"{path}: key 'next_observations' has shape {next_obs.shape}; expected {obs.shape} like 'observations'"
        )
    if next_obs.dtype.kind not in "iuf":
        raise DatasetError(f"{path}: key 'next_observations' has dtype {next_obs.dtype}; expected real values")
    check_finite(str(path), "next_observations", next_obs)
    next32 = np.asarray(next_obs, dtype=np.float32)
    check_finite(str(path), "next_observations", next32)
    # Compared as stored by rlgen (float32): a step whose next state is not the next row ends its episode.
    obs32 = np.asarray(obs, dtype=np.float32)
    if len(obs) > 1:
        done[:-1] |= np.any((next32[:-1] != obs32[1:]).reshape(len(obs) - 1, -1), axis=1)
    ends = episode_ends_from_flags(done)
    return ends, next32[ends - 1]


def write_d4rl(episodes: Episodes, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write ``episodes`` as a D4RL HDF5 file, atomically; an existing file needs ``force=True``.

    ``next_observations`` is written when the final observations are known. A step that is both terminal and a
    timeout (gymnasium allows both) is written as terminal only: D4RL's files never set both, and readers such as
    d3rlpy's refuse a file that does. The spaces are written to
    ``metadata/`` unless they are what reading the arrays infers anyway (then the file is what D4RL writes). The
    layout has no place for ``final_infos`` (dropped) or for an episode end with neither flag nor
    ``next_observations`` (merged).
    """
    path = Path(path)
    reserved = [k for k in SPACE_KEYS if k in episodes.metadata]
    if reserved:
        raise ValueError(f"{episodes.source}: metadata key '{reserved[0]}' is where D4RL files keep the episodes' "
                         f"{reserved[0].replace('_', ' ')}; rename it")  # fmt: skip
    rows = {"observation_space": episodes.observations, "action_space": episodes.actions}
    metadata = dict(episodes.metadata)
    for key, array in rows.items():
        space = getattr(episodes, key)
        if space != inferred_space(array):
            metadata[key] = space_to_tree(space)

    def build(f: h5py.File) -> None:
        f.create_dataset("observations", data=episodes.observations)
        f.create_dataset("actions", data=episodes.actions)
        f.create_dataset("rewards", data=episodes.rewards)
        f.create_dataset("terminals", data=episodes.terminals)
        f.create_dataset("timeouts", data=episodes.timeouts & ~episodes.terminals)
        if episodes.final_observations is not None:
            f.create_dataset("next_observations", data=episodes.next_observations())
        if episodes.infos:
            write_tree(f.create_group("infos"), unflatten(episodes.infos))
        if metadata:
            write_tree(f.create_group("metadata"), metadata)

    with atomic_path(path, force=force) as tmp:
        write_hdf5(tmp, build)
    return path
