"""Autoregressive models of discrete images and audio: a causal network body and any rlgen head per element.

Both models take integer levels, feed the network their values scaled to [-1, 1], and read the conditional of
every element from the head at that element's features. Training minimises the exact negative log-mass of
the observed levels (:mod:`rlgen.generative.levels`), whichever head is used.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn
from tqdm import tqdm

from rlgen.generative.levels import level_head, level_log_mass, sample_levels
from rlgen.heads import HeadConfig
from rlgen.heads.base import BoxDistribution
from rlgen.nets.pixelcnn import GatedPixelCNN
from rlgen.nets.wavenet import WaveNet


class LevelModel(nn.Module, ABC):
    """Base of the models: a body producing features ``element_shape + (F,)`` and a head over ``num_levels``.

    :param body: the causal network (features of element ``i`` depend on elements before ``i`` only).
    :param num_levels: L, levels per element.
    :param head: the head's config (any of :data:`rlgen.heads.HEAD_CONFIGS`).
    """

    def __init__(self, body: nn.Module, num_levels: int, head: HeadConfig):
        super().__init__()
        self.body = body
        self.num_levels = num_levels
        self.head = level_head(head, body.out_features, num_levels)

    def encode(self, levels: Tensor) -> Tensor:
        """Levels as network inputs on [-1, 1]."""
        return levels.float() * (2.0 / (self.num_levels - 1)) - 1.0

    @abstractmethod
    def features(self, levels: Tensor) -> Tensor:
        """Per-element features ``levels.shape + (F,)``."""

    def forward(self, levels: Tensor) -> BoxDistribution:
        """The conditional of every element given the elements before it (batch shape = ``levels.shape``)."""
        return self.head(self.features(levels))

    def log_mass(self, levels: Tensor) -> Tensor:
        """Log-mass of every element's level given the ones before it, shape ``levels.shape``."""
        return level_log_mass(self(levels), levels.unsqueeze(-1), self.num_levels).squeeze(-1)

    def output_parameters(self) -> int:
        """Head outputs per element: the "parameters" axis of the AdaCat paper's Tables 2 and 3."""
        return self.head.params_per_dim


class ImageModel(LevelModel):
    """Gated PixelCNN over greyscale images of integer levels ``(B, H, W)``.

    :param shape: ``(H, W)`` of the images (used by :meth:`sample`).
    :param channels, layers, kernel, features: sizes of :class:`~rlgen.nets.pixelcnn.GatedPixelCNN`.
    """

    def __init__(self, shape: tuple[int, int], num_levels: int, head: HeadConfig, channels: int = 64,
                 layers: int = 5, kernel: int = 3, features: int = 128):  # fmt: skip
        super().__init__(GatedPixelCNN(1, channels, layers, kernel, features), num_levels, head)
        self.shape = tuple(shape)

    def features(self, levels: Tensor) -> Tensor:
        if levels.ndim != 3:
            raise ValueError(f"ImageModel expects levels (B, H, W), got {tuple(levels.shape)}")
        return self.body(self.encode(levels).unsqueeze(1))

    @torch.no_grad()
    def sample(self, count: int, temperature: float = 1.0, generator: torch.Generator | None = None,
               progress: bool = False) -> Tensor:  # fmt: skip
        """``count`` images ``(count, H, W)``, drawn pixel by pixel in raster order.

        :param progress: show a progress bar over the pixels.
        """
        height, width = self.shape
        images = torch.zeros(count, height, width, dtype=torch.long, device=self.head.low.device)
        for p in tqdm(range(height * width), desc="sampling", unit="pixel", disable=not progress):
            i, j = divmod(p, width)
            dist = self.head(self.features(images)[:, i, j])
            images[:, i, j] = sample_levels(dist, self.num_levels, temperature, generator)[:, 0]
        return images


class AudioModel(LevelModel):
    """WaveNet over mono signals of integer levels ``(B, T)``.

    :param channels, skip_channels, dilations, kernel, features: sizes of :class:`~rlgen.nets.wavenet.WaveNet`.
    """

    def __init__(self, num_levels: int, head: HeadConfig, channels: int = 32,
                 skip_channels: int = 64, dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64) * 2,
                 kernel: int = 2, features: int = 64):  # fmt: skip
        body = WaveNet(1, channels, skip_channels, dilations, kernel, features)
        super().__init__(body, num_levels, head)

    @property
    def receptive_field(self) -> int:
        return self.body.receptive_field

    def features(self, levels: Tensor) -> Tensor:
        if levels.ndim != 2:
            raise ValueError(f"AudioModel expects levels (B, T), got {tuple(levels.shape)}")
        return self.body(self.encode(levels).unsqueeze(1))

    @torch.no_grad()
    def sample(self, count: int, length: int, temperature: float = 1.0,
               generator: torch.Generator | None = None, progress: bool = False) -> Tensor:  # fmt: skip
        """``count`` signals ``(count, length)``, drawn step by step; each step reruns the body on the last
        receptive field only (the steps before it cannot change the output).

        :param progress: show a progress bar over the steps.
        """
        window = self.receptive_field + 1
        silence = (self.num_levels - 1) // 2
        signal = torch.full((count, length), silence, dtype=torch.long, device=self.head.low.device)
        for t in tqdm(range(length), desc="sampling", unit="step", disable=not progress):
            start = max(0, t + 1 - window)
            dist = self.head(self.features(signal[:, start : t + 1])[:, -1])
            signal[:, t] = sample_levels(dist, self.num_levels, temperature, generator)[:, 0]
        return signal
