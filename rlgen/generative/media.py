"""Writing generated samples: a PNG grid of images and a 16-bit PCM WAV file, both written atomically."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np

from rlgen.data.atomic import atomic_path


def image_grid(images: np.ndarray, columns: int = 8, scale: int = 4, gap: int = 1) -> np.ndarray:
    """Tile images ``(N, H, W)`` with values in [0, 1] into one ``uint8`` picture, each pixel ``scale`` times larger."""
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"image_grid expects images (N, H, W) with N >= 1, got shape {images.shape}")
    if columns < 1 or scale < 1 or gap < 0:
        raise ValueError(f"need columns >= 1, scale >= 1, gap >= 0, got {columns}, {scale}, {gap}")
    count, height, width = images.shape
    rows, columns = -(-count // columns), min(columns, count)
    cell_h, cell_w = height * scale + gap, width * scale + gap
    grid = np.ones((rows * cell_h + gap, columns * cell_w + gap))
    for k, image in enumerate(images):
        top, left = gap + (k // columns) * cell_h, gap + (k % columns) * cell_w
        grid[top : top + height * scale, left : left + width * scale] = np.kron(image, np.ones((scale, scale)))
    return np.rint(np.clip(grid, 0.0, 1.0) * 255).astype(np.uint8)


def write_png(path: str | os.PathLike[str], picture: np.ndarray) -> Path:
    """Save a greyscale ``uint8`` picture ``(H, W)`` as PNG (replacing ``path``)."""
    import matplotlib.image

    path = Path(path)
    with atomic_path(path, force=True) as tmp:
        matplotlib.image.imsave(tmp, picture, cmap="gray", vmin=0, vmax=255, format="png")
    return path


def write_wav(path: str | os.PathLike[str], samples: np.ndarray, sample_rate: int) -> Path:
    """Save mono samples in [-1, 1] as a 16-bit PCM WAV file (replacing ``path``)."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 1:
        raise ValueError(f"write_wav expects mono samples (T,), got shape {samples.shape}")
    pcm = np.rint(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    path = Path(path)
    with atomic_path(path, force=True) as tmp:
        with wave.open(str(tmp), "wb") as file:
            file.setnchannels(1)
            file.setsampwidth(2)
            file.setframerate(sample_rate)
            file.writeframes(pcm.tobytes())
    return path
