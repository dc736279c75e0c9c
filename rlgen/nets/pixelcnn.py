"""A gated PixelCNN body (van den Oord et al. 2016): per-pixel features that see only earlier pixels.

Pixels are ordered in raster order (row by row, left to right). Two stacks of convolutions keep the model
causal without the blind spot of plain masked 3x3 kernels:

* the *vertical* stack sees every pixel in the rows up to and including the current one (a kernel of
  ``k // 2 + 1`` rows padded from the top); shifted down by one row it tells the horizontal stack about the
  rows strictly above;
* the *horizontal* stack sees the pixels to the left in the current row (a ``1 x (k // 2 + 1)`` kernel padded
  from the left). Its first layer is shifted one pixel right so that it excludes the current pixel
  ("mask A"); later layers may include it ("mask B"), since their input already excludes it.

Each layer gates ``tanh(a) * sigmoid(b)``; the horizontal stack is residual. All input channels of a pixel
count as one element: the features at pixel ``p`` depend on every channel of the pixels before ``p`` only, so
a head with ``D = in_channels`` models the channels of a pixel as one factorised conditional.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _gate(x: Tensor) -> Tensor:
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


def _shift_down(x: Tensor) -> Tensor:
    """Row ``i`` of the result holds row ``i - 1`` of ``x`` (zeros in row 0)."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1, :]


def _shift_right(x: Tensor) -> Tensor:
    """Column ``j`` of the result holds column ``j - 1`` of ``x`` (zeros in column 0)."""
    return F.pad(x, (1, 0))[:, :, :, :-1]


class GatedLayer(nn.Module):
    """One layer of both stacks.

    :param in_channels: channels entering both stacks.
    :param channels: channels leaving both stacks.
    :param kernel: odd kernel size k; the vertical kernel is ``(k // 2 + 1) x k``, the horizontal ``1 x (k // 2 + 1)``.
    :param first: the input layer ("mask A"): the horizontal stack excludes the current pixel and is not residual.
    """

    def __init__(self, in_channels: int, channels: int, kernel: int, first: bool):
        super().__init__()
        self.first = first
        self.half = kernel // 2
        self.vertical = nn.Conv2d(in_channels, 2 * channels, (self.half + 1, kernel))
        self.horizontal = nn.Conv2d(in_channels, 2 * channels, (1, self.half + 1))
        self.link = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, v: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        # Pad the top and sides so that output row i covers input rows i - half .. i.
        v_pre = self.vertical(F.pad(v, (self.half, self.half, self.half, 0)))
        h_in = _shift_right(h) if self.first else h
        h_pre = self.horizontal(F.pad(h_in, (self.half, 0, 0, 0))) + self.link(_shift_down(v_pre))
        h_out = self.out(_gate(h_pre))
        return _gate(v_pre), h_out if self.first else h + h_out


class GatedPixelCNN(nn.Module):
    """Images ``(B, C_in, H, W)`` to features ``(B, H, W, out_features)``; pixel ``(i, j)``'s features depend
    only on the pixels before it in raster order.

    :param in_channels: channels of the input image (1 for greyscale).
    :param channels: width of both stacks.
    :param layers: gated layers (the first one is the "mask A" layer).
    :param kernel: odd kernel size.
    :param out_features: size F of the per-pixel features handed to a head.
    """

    def __init__(self, in_channels: int = 1, channels: int = 64, layers: int = 5, kernel: int = 3,
                 out_features: int = 128):  # fmt: skip
        super().__init__()
        if min(in_channels, channels, layers, out_features) < 1:
            raise ValueError("GatedPixelCNN sizes must be positive, got "
                             f"in_channels={in_channels} channels={channels} layers={layers} "
                             f"out_features={out_features}")  # fmt: skip
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"kernel must be a positive odd number, got {kernel}")
        self.in_channels = in_channels
        self.out_features = out_features
        self.layers = nn.ModuleList(
            GatedLayer(in_channels if i == 0 else channels, channels, kernel, first=i == 0) for i in range(layers)
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, out_features, 1), nn.ReLU())

    def forward(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"GatedPixelCNN expects images (B, {self.in_channels}, H, W), got {tuple(images.shape)}")
        v = h = images
        for layer in self.layers:
            v, h = layer(v, h)
        return self.head(h).permute(0, 2, 3, 1)
