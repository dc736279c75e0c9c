"""rlgen's data layer: episodes, their views, statistics and the D4RL / Minari file formats.

It knows nothing of algorithms or environments' internals: numpy arrays in, numpy arrays out.

>>> import numpy as np
>>> from rlgen.data import Segments, load_dataset, transitions
>>> episodes = load_dataset("hopper-medium")   # a Minari id, an rlgen or D4RL name, or a path
>>> episodes.action_space                       # BoxSpace((3,), -1.0, 1.0): the spaces travel with the data
>>> ref = resolve_dataset("hopper")             # task hopper, dataset hopper-medium, where it lives (if made)
>>> batch = transitions(episodes).sample(256, np.random.default_rng(0))   # D4RL q-learning semantics
>>> windows = Segments(episodes, length=10, discount=0.99).sample(64, np.random.default_rng(0))
"""

from rlgen.data.d4rl_io import read_d4rl, write_d4rl
from rlgen.data.episodes import Episodes, check_action_space, check_actions_in_box
from rlgen.data.errors import DatasetError
from rlgen.data.minari_fast import read_minari_hdf5
from rlgen.data.minari_io import minari_root, read_minari_api, write_minari
from rlgen.data.npz_io import read_npz, write_npz
from rlgen.data.reference import DEFAULT_LEVEL, DatasetRef, read_dataset_metadata, resolve_dataset
from rlgen.data.replay import ReplayBuffer
from rlgen.data.segments import SegmentBatch, Segments, reward_to_go
from rlgen.data.spaces import BoxSpace, DiscreteSpace, Space, task_spaces
from rlgen.data.stats import Statistics
from rlgen.data.store import (
    DatasetLocation,
    DatasetSize,
    d4rl_root,
    dataset_size,
    list_local_datasets,
    load_dataset,
    locate,
    rlgen_d4rl_path,
    rlgen_minari_id,
)
from rlgen.data.summary import summarize
from rlgen.data.transitions import Transitions, transitions
from rlgen.tasks import normalized_score

__all__ = [
    "BoxSpace",
    "DEFAULT_LEVEL",
    "DatasetRef",
    "DatasetError",
    "DatasetLocation",
    "DatasetSize",
    "DiscreteSpace",
    "Episodes",
    "ReplayBuffer",
    "SegmentBatch",
    "Segments",
    "Space",
    "Statistics",
    "Transitions",
    "check_action_space",
    "check_actions_in_box",
    "d4rl_root",
    "dataset_size",
    "list_local_datasets",
    "load_dataset",
    "locate",
    "minari_root",
    "normalized_score",
    "read_d4rl",
    "read_dataset_metadata",
    "read_minari_api",
    "read_minari_hdf5",
    "read_npz",
    "resolve_dataset",
    "reward_to_go",
    "rlgen_d4rl_path",
    "rlgen_minari_id",
    "summarize",
    "task_spaces",
    "transitions",
    "write_d4rl",
    "write_minari",
    "write_npz",
]
