"""Image generation on scikit-learn's 8x8 digits: config, batches, test bits/dim and a PNG grid of samples."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rlgen.config import ConfigError, require_at_least, require_positive
from rlgen.generative.digits import NUM_LEVELS, SHAPE, load_digit_levels
from rlgen.generative.levels import bits_per_dim
from rlgen.generative.media import image_grid, write_png
from rlgen.generative.models import ImageModel
from rlgen.heads import AdaCatHeadConfig, HeadConfig


@dataclass(frozen=True)
class ImageConfig:
    """The ``agent:`` block of an image recipe.

    :param head: head of every pixel's conditional, e.g. ``{type: adacat, num_bins: 8}`` or ``{type: dlml,
        num_mixtures: 4}`` (a DLML head's ``num_classes`` is the number of levels).
    :param channels: width of the PixelCNN stacks.
    :param layers: gated PixelCNN layers.
    :param kernel: odd kernel size.
    :param features: per-pixel features handed to the head.
    :param lr: Adam learning rate.
    :param grad_clip: gradient-norm clip.
    :param test_fraction: share of the 1,797 digits held out for test bits/dim.
    :param split_seed: seed of the train/test split (fixed across runs so that test sets match).
    :param samples: images in the PNG grid written after training.
    :param temperature: sampling temperature of the grid.
    """

    head: HeadConfig = field(default_factory=AdaCatHeadConfig)
    channels: int = 64
    layers: int = 5
    kernel: int = 3
    features: int = 128
    lr: float = 1e-3
    grad_clip: float = 1.0
    test_fraction: float = 0.2
    split_seed: int = 0
    samples: int = 64
    temperature: float = 1.0

    def __post_init__(self) -> None:
        require_at_least(self, "agent", 1, "channels", "layers", "kernel", "features", "samples")
        require_positive(self, "agent", "lr", "grad_clip", "temperature")
        if self.kernel % 2 == 0:
            raise ConfigError(f"agent.kernel must be odd (a centred masked kernel), got {self.kernel}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"agent.test_fraction must be in (0, 1), got {self.test_fraction}")


class ImageBatches:
    """Random training images: ``sample(batch_size, rng)`` returns levels ``(B, 8, 8)``."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def sample(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        return self.images[rng.integers(0, len(self.images), batch_size)]


class ImageTask:
    """The digits data and what a run does with them.

    :param config: the recipe's ``agent:`` block.
    """

    kind = "image"
    samples_file = "samples.png"

    def __init__(self, config: ImageConfig):
        self.config = config
        self.train, self.test = load_digit_levels(config.test_fraction, config.split_seed)

    def build(self) -> ImageModel:
        c = self.config
        return ImageModel(SHAPE, NUM_LEVELS, c.head, c.channels, c.layers, c.kernel, c.features)

    def batches(self) -> ImageBatches:
        return ImageBatches(self.train)

    @torch.no_grad()
    def evaluate(self, model: ImageModel, chunk: int = 256) -> dict[str, float]:
        """Test negative log-likelihood in bits per pixel (exact discrete likelihood)."""
        device = model.head.low.device
        total = 0.0
        for start in range(0, len(self.test), chunk):
            batch = torch.as_tensor(self.test[start : start + chunk], device=device)
            total += float(model.log_mass(batch).sum())
        return {"eval/bits_per_dim": bits_per_dim(total, self.test.size)}

    def write_samples(self, model: ImageModel, path: Path, seed: int, progress: bool = False) -> Path:
        """A grid of ``config.samples`` generated digits."""
        generator = torch.Generator(device=model.head.low.device).manual_seed(seed)
        images = model.sample(self.config.samples, self.config.temperature, generator, progress)
        return write_png(path, image_grid(images.cpu().numpy() / (NUM_LEVELS - 1)))
