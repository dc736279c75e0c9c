"""A small WaveNet body (van den Oord et al. 2016): dilated causal convolutions over a 1-D signal.

The input is shifted one step right, so the features at step ``t`` see the samples ``t - R .. t - 1`` only
(``R`` = :attr:`WaveNet.receptive_field`), and every convolution is padded on the left only. Residual blocks
gate ``tanh(a) * sigmoid(b)`` of a dilated convolution; their skip outputs are summed and mapped to
per-step features that a head turns into the conditional of sample ``t``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CausalConv1d(nn.Conv1d):
    """A 1-D convolution padded ``dilation * (kernel - 1)`` on the left: output ``t`` sees inputs ``<= t``."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, dilation: int = 1):
        super().__init__(in_channels, out_channels, kernel, dilation=dilation)
        self.left = dilation * (kernel - 1)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, (self.left, 0)))


class ResidualBlock(nn.Module):
    """Gated dilated convolution with a residual output (added to the input) and a skip output."""

    def __init__(self, channels: int, skip_channels: int, kernel: int, dilation: int):
        super().__init__()
        self.conv = CausalConv1d(channels, 2 * channels, kernel, dilation)
        self.residual = nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, skip_channels, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        a, b = self.conv(x).chunk(2, dim=1)
        z = torch.tanh(a) * torch.sigmoid(b)
        return x + self.residual(z), self.skip(z)


class WaveNet(nn.Module):
    """Signals ``(B, C_in, T)`` to features ``(B, T, out_features)``; step ``t`` depends on steps ``< t`` only.

    :param in_channels: channels of the input signal (1 for mono audio).
    :param channels: residual width.
    :param skip_channels: width of the summed skip connections.
    :param dilations: one residual block per entry, e.g. ``[1, 2, 4, ..., 64] * 2`` (two stacks).
    :param kernel: kernel size of every causal convolution (2 as in WaveNet).
    :param out_features: size F of the per-step features handed to a head.
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: int = 32,
        skip_channels: int = 64,
        dilations: Sequence[int] = (1, 2, 4, 8, 16, 32, 64) * 2,
        kernel: int = 2,
        out_features: int = 64,
    ):
        super().__init__()
        if min(in_channels, channels, skip_channels, out_features) < 1 or kernel < 2:
            raise ValueError("WaveNet sizes must be positive and kernel >= 2, got "
                             f"in_channels={in_channels} channels={channels} skip_channels={skip_channels} "
                             f"kernel={kernel} out_features={out_features}")  # fmt: skip
        if not dilations or min(dilations) < 1:
            raise ValueError(f"dilations must be a non-empty list of positive integers, got {list(dilations)}")
        self.in_channels = in_channels
        self.out_features = out_features
        self.receptive_field = kernel + (kernel - 1) * sum(dilations)
        self.input = CausalConv1d(in_channels, channels, kernel)
        self.blocks = nn.ModuleList(ResidualBlock(channels, skip_channels, kernel, d) for d in dilations)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(skip_channels, out_features, 1), nn.ReLU())

    def forward(self, signal: Tensor) -> Tensor:
        if signal.ndim != 3 or signal.shape[1] != self.in_channels:
            raise ValueError(f"WaveNet expects signals (B, {self.in_channels}, T), got {tuple(signal.shape)}")
        x = self.input(F.pad(signal, (1, 0))[:, :, :-1])  # shift right: step t sees samples < t
        skips = 0
        for block in self.blocks:
            x, skip = block(x)
            skips = skips + skip
        return self.head(skips).transpose(1, 2)
