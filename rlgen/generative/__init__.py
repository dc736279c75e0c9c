"""Autoregressive image and audio models whose per-element conditional is any rlgen head.

* :mod:`~rlgen.generative.levels`: the exact probability mass each head puts on a discrete level, bits/dim;
* :mod:`~rlgen.generative.models`: a gated PixelCNN (digits) and a WaveNet (speech) on top of a head;
* :mod:`~rlgen.generative.digits` / :mod:`~rlgen.generative.speech`: local data (scikit-learn's digits,
  espeak-ng speech);
* :mod:`~rlgen.generative.runs`: recipes in ``generative/`` trained by :func:`rlgen.train.fit`.

>>> from rlgen.generative import start_generative_run
>>> run, result = start_generative_run("image", ["model.head=dlml", "model.head.num_mixtures=5"])
"""

from rlgen.generative.audio import AudioConfig, AudioTask
from rlgen.generative.image import ImageConfig, ImageTask
from rlgen.generative.levels import bits_per_dim, level_head, level_log_mass, level_log_probs, sample_levels
from rlgen.generative.models import AudioModel, ImageModel, LevelModel
from rlgen.generative.runs import (
    GenerativeRecipe,
    GenerativeTrainConfig,
    LevelLearner,
    list_generative_recipes,
    load_generative_recipe,
    resume_generative_run,
    start_generative_run,
)

__all__ = [
    "AudioConfig",
    "AudioModel",
    "AudioTask",
    "GenerativeRecipe",
    "GenerativeTrainConfig",
    "ImageConfig",
    "ImageModel",
    "ImageTask",
    "LevelLearner",
    "LevelModel",
    "bits_per_dim",
    "level_head",
    "level_log_mass",
    "level_log_probs",
    "list_generative_recipes",
    "load_generative_recipe",
    "resume_generative_run",
    "sample_levels",
    "start_generative_run",
]
