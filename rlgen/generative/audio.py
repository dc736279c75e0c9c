"""Audio generation on espeak-ng speech: config, training crops, held-out bits/dim and a generated WAV."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rlgen.config import ConfigError, require_at_least, require_positive
from rlgen.generative.levels import bits_per_dim
from rlgen.generative.media import write_wav
from rlgen.generative.models import AudioModel
from rlgen.generative.speech import TEST_SENTENCES, Transform, dequantize, load_speech, quantize
from rlgen.heads import AdaCatHeadConfig, HeadConfig


@dataclass(frozen=True)
class AudioConfig:
    """The ``agent:`` block of an audio recipe.

    :param head: head of every sample's conditional, e.g. ``{type: adacat, num_bins: 15}`` (a DLML head's
        ``num_classes`` is the number of levels).
    :param channels: WaveNet residual width.
    :param skip_channels: WaveNet skip width.
    :param dilations: one residual block per entry.
    :param kernel: causal kernel size.
    :param features: per-step features handed to the head.
    :param lr: Adam learning rate.
    :param grad_clip: gradient-norm clip.
    :param sample_rate: Hz of the synthesised speech.
    :param num_levels: quantisation levels L (256: 8 bits).
    :param transform: ``mulaw`` (companded levels, as 8-bit telephony) or ``linear``.
    :param voices: espeak-ng voices, each speaking every sentence.
    :param speed: espeak-ng words per minute.
    :param test_sentences: sentences held out for the test NLL.
    :param window: samples per training crop.
    :param eval_span: samples scored per evaluation window (each window adds a receptive field of context).
    :param sample_seconds: length of the WAV generated after training.
    :param temperature: sampling temperature of that WAV.
    """

    head: HeadConfig = field(default_factory=AdaCatHeadConfig)
    channels: int = 32
    skip_channels: int = 64
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64] * 2)
    kernel: int = 2
    features: int = 64
    lr: float = 1e-3
    grad_clip: float = 1.0
    sample_rate: int = 8000
    num_levels: int = 256
    transform: Transform = "mulaw"
    voices: list[str] = field(default_factory=lambda: ["en-us", "en-gb+f3"])
    speed: int = 150
    test_sentences: int = TEST_SENTENCES
    window: int = 1024
    eval_span: int = 4096
    sample_seconds: float = 1.0
    temperature: float = 1.0

    def __post_init__(self) -> None:
        require_at_least(self, "agent", 1, "channels", "skip_channels", "kernel", "features", "sample_rate", "speed",
                         "test_sentences", "window", "eval_span")  # fmt: skip
        require_at_least(self, "agent", 2, "num_levels")
        require_positive(self, "agent", "lr", "grad_clip", "sample_seconds", "temperature")
        if not self.dilations or min(self.dilations) < 1:
            raise ConfigError(f"agent.dilations must be a non-empty list of integers >= 1, got {self.dilations}")


class AudioCrops:
    """Random crops of the training stream: ``sample(batch_size, rng)`` returns levels ``(B, window)``."""

    def __init__(self, stream: np.ndarray, window: int):
        if len(stream) < window:
            raise ValueError(f"training audio has {len(stream)} samples, fewer than one window of {window}")
        self.stream, self.window = stream, window

    def sample(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        starts = rng.integers(0, len(self.stream) - self.window + 1, batch_size)
        return self.stream[starts[:, None] + np.arange(self.window)]


def scored_windows(length: int, context: int, span: int) -> list[tuple[int, int]]:
    """``(start, end)`` windows of a stream of ``length`` samples such that every sample from ``context`` on is
    scored exactly once, as the last ``end - start - context`` samples of one window, with ``context`` samples
    of history before it."""
    return [(s, min(s + context + span, length)) for s in range(0, length - context, span)]


class AudioTask:
    """The speech data and what a run does with them; utterances are concatenated into one stream per split.

    :param config: the recipe's ``agent:`` block.
    :param streams: ``(train, test)`` float waveforms in [-1, 1] to use instead of synthesising speech.
    """

    kind = "audio"
    samples_file = "samples.wav"

    def __init__(self, config: AudioConfig, streams: tuple[np.ndarray, np.ndarray] | None = None):
        self.config = config
        if streams is None:
            train, test = load_speech(config.voices, config.sample_rate, config.speed, config.test_sentences)
            streams = (np.concatenate(train), np.concatenate(test))
        self.train, self.test = (quantize(s, config.num_levels, config.transform) for s in streams)

    def build(self) -> AudioModel:
        c = self.config
        return AudioModel(c.num_levels, c.head, c.channels, c.skip_channels, tuple(c.dilations),
                          c.kernel, c.features)  # fmt: skip

    def batches(self) -> AudioCrops:
        return AudioCrops(self.train, self.config.window)

    @torch.no_grad()
    def evaluate(self, model: AudioModel, chunk: int = 8) -> dict[str, float]:
        """Held-out negative log-likelihood in bits per sample, over every test sample that has a full
        receptive field of history (the first ``receptive_field`` samples are context only)."""
        device = model.head.low.device
        context = model.receptive_field
        windows = scored_windows(len(self.test), context, self.config.eval_span)
        if not windows:
            raise ValueError(f"test audio ({len(self.test)} samples) is shorter than the receptive field {context}")
        by_length: dict[int, list[int]] = {}
        for start, end in windows:  # all windows but the last have one length: batch those of equal length
            by_length.setdefault(end - start, []).append(start)
        total, count = 0.0, 0
        for length, starts in by_length.items():
            for first in range(0, len(starts), chunk):
                batch = np.stack([self.test[s : s + length] for s in starts[first : first + chunk]])
                scored = model.log_mass(torch.as_tensor(batch, device=device))[:, context:]
                total, count = total + float(scored.sum()), count + scored.numel()
        return {"eval/bits_per_dim": bits_per_dim(total, count)}

    def write_samples(self, model: AudioModel, path: Path, seed: int, progress: bool = False) -> Path:
        """``config.sample_seconds`` of generated audio."""
        c = self.config
        generator = torch.Generator(device=model.head.low.device).manual_seed(seed)
        levels = model.sample(1, round(c.sample_seconds * c.sample_rate), c.temperature, generator, progress)
        return write_wav(path, dequantize(levels[0].cpu().numpy(), c.num_levels, c.transform), c.sample_rate)
