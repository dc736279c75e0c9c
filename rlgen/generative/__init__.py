"""Autoregressive image and audio models whose per-element conditional is any rlgen head.

* :mod:`~rlgen.generative.levels`: the exact probability mass each head puts on a discrete level, bits/dim;
* :mod:`~rlgen.generative.models`: a gated PixelCNN (digits) and a WaveNet (speech) on top of a head;
* :mod:`~rlgen.generative.digits` / :mod:`~rlgen.generative.speech`: local data (scikit-learn's digits,
  espeak-ng speech);
* :mod:`~rlgen.generative.agent`: the models as agents (``algo: image`` / ``audio``) that :mod:`rlgen.runs` trains.

>>> from rlgen.runs import start_run
>>> run, result = start_run("image", overrides=["agent.head=dlml", "agent.head.num_mixtures=5"])
"""

from rlgen.generative.agent import GENERATIVE_ALGOS, AudioAgent, HeldOutResult, ImageAgent, LevelAgent, LevelData
from rlgen.generative.audio import AudioConfig, AudioTask
from rlgen.generative.image import ImageConfig, ImageTask
from rlgen.generative.levels import bits_per_dim, level_head, level_log_mass, level_log_probs, sample_levels
from rlgen.generative.models import AudioModel, ImageModel, LevelModel

__all__ = [
    "GENERATIVE_ALGOS",
    "AudioAgent",
    "HeldOutResult",
    "ImageAgent",
    "LevelAgent",
    "LevelData",
    "AudioConfig",
    "AudioModel",
    "AudioTask",
    "ImageConfig",
    "ImageModel",
    "ImageTask",
    "LevelModel",
    "bits_per_dim",
    "level_head",
    "level_log_mass",
    "level_log_probs",
    "sample_levels",
]
