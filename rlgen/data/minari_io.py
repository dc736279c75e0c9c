"""Minari datasets: written in Minari's layout (``metadata.json`` by ``minari``), read with ``minari``'s API.

A Minari episode stores ``N + 1`` observations (the last one is the final observation), ``N`` actions, rewards,
terminations and truncations, and ``infos`` with ``N`` or ``N + 1`` rows. rlgen maps terminations to
``terminals`` and truncations to ``timeouts``; an info with ``N + 1`` rows keeps its last row in
``final_infos``. rlgen's own metadata travels in the ``rlgen`` entry of ``metadata.json`` (losslessly, see
:mod:`rlgen.data.codec`), and ``ref_min_score``/``ref_max_score`` are set so that
``minari.get_normalized_score`` works (on Minari's 0-1 scale).

:func:`read_minari_api` is the reference reader; :mod:`rlgen.data.minari_fast` reads the same files directly
and much faster, and must return identical arrays.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import gymnasium as gym
import h5py
import numpy as np

from rlgen.data.atomic import atomic_path, check_writable
from rlgen.data.codec import from_json, to_json
from rlgen.data.episodes import Episodes
from rlgen.data.errors import DatasetError
from rlgen.data.hdf5 import flatten, unflatten, write_hdf5
from rlgen.data.spaces import BoxSpace, DiscreteSpace, Space, check_declared

ROOT_VAR = "MINARI_DATASETS_PATH"
RLGEN_KEY = "rlgen"  # metadata.json entry holding rlgen's own metadata
FORMAT_VERSION = 1


def minari_root() -> Path:
    """Minari's local store, as an absolute path: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``."""
    env = os.environ.get(ROOT_VAR)
    return store_root(env) if env else Path.home() / ".minari" / "datasets"


def store_root(root: str | os.PathLike[str] | None) -> Path:
    """``root`` made absolute (default :func:`minari_root`).

    minari joins a relative store path onto paths it already derived from it (doubling it), and
    :func:`write_minari` points the store at a staging folder: every store path handed to minari must be absolute.
    """
    return Path(root).expanduser().absolute() if root is not None else minari_root()


def dataset_dir(dataset_id: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Folder of a Minari dataset id in a store (default :func:`minari_root`), as an absolute path."""
    return store_root(root) / dataset_id


@contextlib.contextmanager
def _root(path: Path) -> Iterator[None]:
    # minari resolves every dataset id through $MINARI_DATASETS_PATH, read at call time.
    old = os.environ.get(ROOT_VAR)
    os.environ[ROOT_VAR] = str(path)
    try:
        yield
    finally:
        if old is None:
            del os.environ[ROOT_VAR]
        else:
            os.environ[ROOT_VAR] = old


# ---------------------------------------------------------------------------------------------- writing


def write_minari(
    episodes: Episodes,
    dataset_id: str,
    *,
    root: str | os.PathLike[str] | None = None,
    env: str | gym.Env | None = None,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    force: bool = False,
) -> Path:
    """Write ``episodes`` as Minari dataset ``dataset_id`` under ``root`` (default :func:`minari_root`).

    The dataset is built in a hidden folder and renamed into place, so a killed write leaves no dataset;
    an existing one is replaced only with ``force=True``. Not thread-safe: minari takes its store from
    ``$MINARI_DATASETS_PATH``, which this function points at the hidden folder while it writes.

    The episodes' spaces are stored (boxes with float32 dtype, the dtype of the arrays; a discrete space of
    unknown size as ``Discrete(largest action + 1)``).

    :param env: the environment (or gymnasium id) that produced the data, recorded as Minari's ``env_spec``;
        default ``metadata["env_id"]`` if that id is registered. Its spaces' shapes must fit the data.
    :param ref_min_score: default ``metadata["ref_min_score"]``; likewise ``ref_max_score``.
    :return: the dataset folder.
    """
    import minari

    root = store_root(root)
    target = dataset_dir(dataset_id, root)
    check_writable(target, force)
    meta = episodes.metadata
    env_obj = _make_env(env if env is not None else meta.get("env_id"))
    try:
        if env_obj is not None:
            shapes = env_obj.observation_space.shape, env_obj.action_space.shape
            episodes.check_shapes(*shapes, expected_by=f"environment {env_obj.spec.id}")
    finally:
        if env_obj is not None and env_obj is not env:
            env_obj.close()  # only its spec and spaces are needed
    obs_space = to_gymnasium(episodes.observation_space, episodes.observations)
    act_space = to_gymnasium(episodes.action_space, episodes.actions)
    ref_min = ref_min_score if ref_min_score is not None else meta.get("ref_min_score")
    ref_max = ref_max_score if ref_max_score is not None else meta.get("ref_max_score")
    extra: dict[str, Any] = {
        RLGEN_KEY: {
            "format_version": FORMAT_VERSION,
            # Without a known final observation the last one is repeated to fill Minari's N + 1 rows.
            "final_observations_known": episodes.final_observations is not None,
            "metadata": to_json(dict(meta)),
        }
    }
    if ref_min is not None and ref_max is not None:
        extra.update(ref_min_score=float(ref_min), ref_max_score=float(ref_max))
    inner = str(PurePosixPath(dataset_id))
    with atomic_path(target, force=force, inner=inner) as work:
        staging = work.parents[len(PurePosixPath(inner).parts) - 1]
        with _root(staging), warnings.catch_warnings():
            # minari nags about unset authorship fields; rlgen records its provenance in the metadata instead.
            warnings.filterwarnings("ignore", message=r".*(is set to None|env_spec is None).*", category=UserWarning)
            # minari writes metadata.json and an empty main_data.hdf5, which rlgen then writes in full.
            dataset = minari.create_dataset_from_buffers(
                dataset_id,
                [],
                env=env_obj,
                observation_space=obs_space,
                action_space=act_space,
                algorithm_name=_optional_str(meta.get("algorithm_name")),
                description=_optional_str(meta.get("description")),
            )
        main_data = work / "data" / "main_data.hdf5"
        main_data.unlink()
        write_hdf5(main_data, lambda f: _write_episodes(f, episodes), track_order=True)
        totals = {"total_steps": episodes.num_steps, "total_episodes": episodes.num_episodes}
        dataset.storage.update_metadata({**totals, **extra, "dataset_size": dataset.storage.get_size()})
        _create_namespaces(root, dataset_id)
    return target


def _write_episodes(f: h5py.File, episodes: Episodes) -> None:
    """Minari's ``main_data.hdf5`` layout: one group ``episode_<j>`` per episode, as ``minari`` writes it."""
    final_known = episodes.final_observations is not None
    finals = episodes.final_observations if final_known else episodes.observations[episodes.episode_ends - 1]
    for j, (start, end) in enumerate(zip(episodes.episode_starts, episodes.episode_ends, strict=True)):
        group = f.create_group(f"episode_{j}")
        group.attrs["id"] = j
        group.attrs["total_steps"] = end - start
        steps = {
            "observations": np.concatenate([episodes.observations[start:end], finals[j : j + 1]]),
            "actions": episodes.actions[start:end],
            "rewards": episodes.rewards[start:end],
            "terminations": episodes.terminals[start:end],
            "truncations": episodes.timeouts[start:end],
        }
        for key, array in steps.items():
            _write_rows(group, key, array)
        infos = {k: v[start:end] for k, v in episodes.infos.items()}
        for k, v in episodes.final_infos.items():
            infos[k] = np.concatenate([infos[k], v[j : j + 1]])
        _write_info_tree(group.create_group("infos"), unflatten(infos))


def _write_info_tree(group: h5py.Group, tree: Mapping[str, Any]) -> None:
    for key, value in tree.items():
        if isinstance(value, Mapping):
            _write_info_tree(group.create_group(key), value)
        else:
            _write_rows(group, key, value)


def _write_rows(group: h5py.Group, key: str, array: np.ndarray) -> None:
    # minari stores strings as UTF-8 and every array resizable along its rows.
    text = array.dtype.kind == "U" or (array.dtype.hasobject and all(isinstance(v, str) for v in array.flat))
    dtype = h5py.string_dtype("utf-8") if text else None
    group.create_dataset(key, data=array, dtype=dtype, chunks=True, maxshape=(None, *array.shape[1:]))


def _create_namespaces(root: Path, dataset_id: str) -> None:
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.namespace import create_namespace, list_local_namespaces

    namespace = parse_dataset_id(dataset_id)[0]
    if namespace is None:
        return
    with _root(root):
        if namespace not in list_local_namespaces():
            create_namespace(namespace)


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _make_env(env: str | gym.Env | None) -> gym.Env | None:
    if env is None or isinstance(env, gym.Env):
        return env
    if env not in gym.registry:
        return None  # e.g. a D4RL-era id such as "hopper-medium-v2": nothing to record
    return gym.make(env)


def to_gymnasium(space: Space, array: np.ndarray) -> gym.Space:
    """``space`` as a gymnasium space: a float32 ``Box``, or a ``Discrete`` (sized by ``array``'s largest action
    when the space does not know its size)."""
    if isinstance(space, DiscreteSpace):
        n = space.n if space.n is not None else int(array.max(initial=space.start)) - space.start + 1
        return gym.spaces.Discrete(n, start=space.start)
    low, high = space.bounds()
    return gym.spaces.Box(low.astype(np.float32), high.astype(np.float32), space.shape, dtype=np.float32)


def from_gymnasium(space: gym.Space) -> Space:
    """A gymnasium ``Box`` or ``Discrete`` as rlgen's space; ``ValueError`` for another kind or invalid bounds."""
    if isinstance(space, gym.spaces.Discrete):
        return DiscreteSpace(int(space.n), int(space.start))
    if isinstance(space, gym.spaces.Box):
        return BoxSpace(space.shape, space.low, space.high, space.dtype.name)
    raise ValueError(f"{space} is neither a Box nor a Discrete space")


# ---------------------------------------------------------------------------------------------- reading


def read_minari_api(dataset: str | os.PathLike[str]) -> Episodes:
    """Read a Minari dataset (an id in the store, or a dataset folder) with ``minari``'s own episode iterator."""
    from minari import MinariDataset

    data_path = resolve_data_path(dataset)
    meta = read_metadata(data_path)
    spaces = read_spaces(data_path, meta)
    source = str(data_path.parent)
    obs, finals, act, rew, term, trunc, lengths = [], [], [], [], [], [], []
    infos: list[dict[str, np.ndarray]] = []
    for ep in MinariDataset(data_path).iterate_episodes():
        n = len(ep.rewards)
        obs.append(ep.observations[:n])
        finals.append(ep.observations[n:])
        act.append(ep.actions)
        rew.append(ep.rewards)
        term.append(ep.terminations)
        trunc.append(ep.truncations)
        lengths.append(n)
        infos.append(flatten(ep.infos or {}))
    step_infos, final_infos = split_infos(source, infos, lengths)
    return assemble(
        data_path,
        meta,
        spaces,
        observations=_concat(obs),
        final_observations=_concat(finals),
        actions=_concat(act),
        rewards=_concat(rew),
        terminals=_concat(term),
        timeouts=_concat(trunc),
        episode_ends=np.cumsum(lengths, dtype=np.int64),
        infos=step_infos,
        final_infos=final_infos,
    )


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0)


def resolve_data_path(dataset: str | os.PathLike[str]) -> Path:
    """The ``data`` folder (holding ``metadata.json``) of a dataset id, dataset folder or ``data`` folder."""
    path = Path(dataset)
    candidates = [path / "data", path] if path.is_dir() else [minari_root() / str(dataset) / "data"]
    for candidate in candidates:
        if (candidate / "metadata.json").is_file():
            return candidate
    raise FileNotFoundError(
        f"{dataset}: no Minari dataset (looked for {', '.join(str(c / 'metadata.json') for c in candidates)})"
    )


def read_metadata(data_path: Path) -> dict[str, Any]:
    """``metadata.json`` of a Minari ``data`` folder, with every field rlgen reads checked for its type."""
    file = data_path / "metadata.json"
    try:
        meta = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise DatasetError(f"{file}: not a readable Minari metadata file: {e}") from e
    if not isinstance(meta, dict):
        raise DatasetError(f"{file}: expected a JSON object of dataset metadata; found a {type(meta).__name__}")
    for key in ("total_episodes", "total_steps"):
        value = meta.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DatasetError(f"{file}: key '{key}' is {value!r}; expected a count (an integer >= 0)")
    for key in ("ref_min_score", "ref_max_score"):
        value = meta.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise DatasetError(f"{file}: key '{key}' is {value!r}; expected a number")
    block = meta.get(RLGEN_KEY)
    if block is not None:
        if not isinstance(block, dict):
            raise DatasetError(f"{file}: key '{RLGEN_KEY}' is {block!r}; expected an object written by rlgen")
        if not isinstance(block.get("metadata", {}), dict):
            raise DatasetError(f"{file}: key '{RLGEN_KEY}.metadata' is {block['metadata']!r}; expected an object")
        if not isinstance(block.get("final_observations_known", True), bool):
            raise DatasetError(f"{file}: key '{RLGEN_KEY}.final_observations_known' is not true or false")
    return meta


def read_spaces(data_path: Path, meta: Mapping[str, Any]) -> dict[str, Space]:
    """The spaces ``metadata.json`` records (by :data:`~rlgen.data.spaces.SPACE_KEYS` key; old datasets may record
    none): rlgen holds flat arrays, so Box observations and Box or Discrete actions, stored raw (not JPEG)."""
    from minari.dataset.minari_storage import is_image_space
    from minari.serialization import deserialize_space

    file = data_path / "metadata.json"
    allowed_spaces = {"observation_space": (gym.spaces.Box,), "action_space": (gym.spaces.Box, gym.spaces.Discrete)}
    spaces: dict[str, Space] = {}
    for key, allowed in allowed_spaces.items():
        if key not in meta:
            continue  # old datasets: the spaces come from the env spec; rlgen infers them from the arrays
        try:
            space = deserialize_space(meta[key])
        except Exception as e:  # minari raises whatever its parser meets (KeyError, TypeError, JSONDecodeError, ...)
            raise DatasetError(
                f"{file}: key '{key}' is not a serialised gymnasium space: {type(e).__name__}: {e}"
            ) from e
        if not isinstance(space, allowed):
            raise DatasetError(
                f"{file}: '{key}' is {space}; rlgen reads {' or '.join(a.__name__ for a in allowed)} spaces only"
            )
        if meta.get("jpeg_encoding", True) and is_image_space(space):
            raise DatasetError(f"{file}: '{key}' is JPEG-encoded images; rlgen reads raw arrays")
        try:
            spaces[key] = from_gymnasium(space)
        except (TypeError, ValueError) as e:
            raise DatasetError(f"{file}: key '{key}' is not a valid space: {e}") from e
    return spaces


def split_infos(
    source: str, per_episode: list[dict[str, np.ndarray]], lengths: list[int]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Concatenate per-episode infos; a key with ``N + 1`` rows in every episode also gives ``final_infos``."""
    if not per_episode:
        return {}, {}
    keys = set(per_episode[0])
    steps: dict[str, np.ndarray] = {}
    finals: dict[str, np.ndarray] = {}
    for j, infos in enumerate(per_episode):
        if set(infos) != keys:
            raise DatasetError(f"{source}: episode_{j} has infos {sorted(infos)}; episode_0 has {sorted(keys)}")
    for key in sorted(keys):
        rows = [np.asarray(infos[key]) for infos in per_episode]
        extra = {len(r) - n for r, n in zip(rows, lengths, strict=True)}
        if extra == {0}:
            steps[key] = np.concatenate(rows)
        elif extra == {1}:
            steps[key] = np.concatenate([r[:-1] for r in rows])
            finals[key] = np.stack([r[-1] for r in rows])
        else:
            raise DatasetError(
                f"{source}: key 'infos/{key}' must have N or N + 1 rows in every episode (N steps); "
                f"found N + {sorted(extra)}"
            )
    return steps, finals


def assemble(data_path: Path, meta: Mapping[str, Any], spaces: Mapping[str, Space], **arrays: Any) -> Episodes:
    """Build :class:`Episodes` from concatenated Minari arrays and the dataset's ``metadata.json`` (read by
    :func:`read_metadata`, its ``spaces`` by :func:`read_spaces`) in the ``data`` folder ``data_path``."""
    block = meta.get(RLGEN_KEY)  # its types are checked by read_metadata
    if block is not None and not block.get("final_observations_known", True):
        arrays["final_observations"] = None
    check_declared(spaces, arrays["observations"], arrays["actions"], str(data_path / "metadata.json"))
    source = str(data_path.parent)
    return Episodes(metadata=episodes_metadata(meta, source), source=source, **spaces, **arrays)


def episodes_metadata(meta: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The :attr:`Episodes.metadata` of a Minari dataset, from its checked ``metadata.json`` (see
    :func:`read_metadata`); ``source`` names the dataset in errors."""
    block = meta.get(RLGEN_KEY)
    if block is not None:
        try:
            return from_json(block.get("metadata", {}))
        except (KeyError, TypeError, ValueError) as e:  # a tagged array whose bytes, dtype and shape disagree
            raise DatasetError(f"{source}: key '{RLGEN_KEY}.metadata' in metadata.json does not decode: {e}") from e
    # a dataset written by other tools: keep what rlgen uses
    kept = ("ref_min_score", "ref_max_score", "algorithm_name", "description")
    metadata = {k: meta[k] for k in kept if k in meta}
    try:
        metadata["env_id"] = json.loads(meta["env_spec"])["id"]
    except (KeyError, TypeError, ValueError):
        pass  # no (readable) env spec: the data is still usable
    return metadata
