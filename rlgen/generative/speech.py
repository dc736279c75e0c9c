"""Speech synthesised locally with espeak-ng, resampled and quantised to integer levels.

espeak-ng (Debian package ``espeak-ng``) speaks a fixed list of sentences in a few voices; each utterance is
resampled to ``sample_rate`` and peak-normalised. The last sentences are held out for testing, so the test
set is speech the model never heard, in the same voices. Synthesised audio is cached under
``$RLGEN_CACHE_DIR/speech`` keyed by everything it depends on (sentences, voices, rate, espeak-ng version).

Quantisation follows 8-bit telephony: mu-law companding ``sign(x) log(1 + mu |x|) / log(1 + mu)`` and L
uniform levels of the companded value (``mulaw``), or L uniform levels of the raw amplitude (``linear``).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from rlgen.data.atomic import atomic_path
from rlgen.data.cache import cache_dir

Transform = Literal["mulaw", "linear"]
INSTALL_HINT = "install it with `sudo apt-get install -y espeak-ng` (Debian/Ubuntu)"
PEAK = 0.9
#: leading and trailing samples quieter than this (after normalisation) are trimmed, up to a margin of 20 ms
SILENCE = 0.01
#: bump when the processing below changes, so that stale caches are not reused
FORMAT_VERSION = 2

SENTENCES: tuple[str, ...] = (
    "A small robot learned to walk by watching the others.",
    "Every model in this toolkit ends in the same family of heads.",
    "The river was cold, but the children swam until sunset.",
    "Seven green bottles stood on the kitchen table.",
    "Please bring the blue folder to the meeting on Thursday.",
    "Rain is expected in the north by the end of the week.",
    "She counted the steps from the door to the old oak tree.",
    "Numbers can be rounded up, rounded down, or left alone.",
    "The train to the coast leaves at half past nine.",
    "A quiet voice can carry further than a loud one.",
    "He painted the fence white and the gate dark red.",
    "Learning from examples is sometimes easier than learning from rewards.",
    "The market opens early and closes before noon on Sundays.",
    "Four hundred birds flew south over the frozen lake.",
    "Turn left at the bakery and walk until you see the bridge.",
    "The recipe needs two eggs, a cup of flour and some milk.",
    "Clouds gathered over the hills as the wind picked up.",
    "Our neighbour fixes old radios in his garage.",
    "The library keeps its rarest books in a locked room.",
    "A careful plan saves time when the weather turns.",
    "The orchestra tuned their instruments before the concert began.",
    "Bright lanterns lined the path down to the harbour.",
    "The old clock in the hall chimes every quarter hour.",
    "Nobody expected the tiny cat to climb so high.",
)
#: sentences at the end of :data:`SENTENCES` held out for testing
TEST_SENTENCES = 4


def espeak_binary() -> str:
    """Path of the ``espeak-ng`` program; ``FileNotFoundError`` with the install command if it is missing."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise FileNotFoundError(f"espeak-ng is not installed: the speech data are synthesised locally with it; "
                                f"{INSTALL_HINT}")  # fmt: skip
    return path


def synthesize(text: str, voice: str, sample_rate: int, speed: int = 150) -> np.ndarray:
    """One utterance as float32 samples at ``sample_rate``, peak-normalised to :data:`PEAK`, silence trimmed.

    :param voice: an espeak-ng voice, e.g. ``en-us`` or ``en-gb+f3``.
    :param speed: words per minute.
    """
    from scipy.signal import resample_poly

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "utterance.wav"
        result = subprocess.run([espeak_binary(), "-v", voice, "-s", str(speed), "-w", str(path), text],
                                capture_output=True, text=True)  # fmt: skip
        if result.returncode != 0 or not path.is_file():
            raise ValueError(f"espeak-ng failed for voice {voice!r}: {result.stderr.strip() or result.returncode}")
        rate, samples = read_wav(path)
    ratio = math.gcd(sample_rate, rate)
    audio = resample_poly(samples, sample_rate // ratio, rate // ratio).astype(np.float32)
    audio *= PEAK / max(float(np.abs(audio).max()), 1e-6)
    loud = np.flatnonzero(np.abs(audio) > SILENCE)
    margin = sample_rate // 50
    return audio[max(0, loud[0] - margin) : loud[-1] + margin + 1]


def load_speech(
    voices: Sequence[str], sample_rate: int, speed: int = 150, test_sentences: int = TEST_SENTENCES
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Train and test utterances (float32 in [-1, 1]) of :data:`SENTENCES` in every voice, from the cache or
    synthesised (a few seconds).

    :param test_sentences: how many of the last sentences are held out.
    """
    if not voices:
        raise ValueError("give at least one espeak-ng voice")
    if not 0 < test_sentences < len(SENTENCES):
        raise ValueError(f"test_sentences must be in [1, {len(SENTENCES) - 1}], got {test_sentences}")
    version = subprocess.run([espeak_binary(), "--version"], capture_output=True, text=True).stdout.strip()
    key = json.dumps([FORMAT_VERSION, SENTENCES, list(voices), sample_rate, speed, version])
    path = cache_dir() / "speech" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if not path.is_file():
        utterances = [synthesize(text, voice, sample_rate, speed) for voice in voices for text in SENTENCES]
        with atomic_path(path, force=True) as tmp:
            with tmp.open("wb") as file:
                np.savez(file, *utterances)
    with np.load(path) as stored:
        utterances = [stored[f"arr_{i}"] for i in range(len(stored.files))]
    split = len(SENTENCES) - test_sentences
    per_voice = [utterances[v * len(SENTENCES) : (v + 1) * len(SENTENCES)] for v in range(len(voices))]
    return [u for group in per_voice for u in group[:split]], [u for group in per_voice for u in group[split:]]


def quantize(audio: np.ndarray, num_levels: int = 256, transform: Transform = "mulaw") -> np.ndarray:
    """Integer levels ``0 .. num_levels - 1`` (int64) of samples in [-1, 1]."""
    x = np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0)
    if transform == "mulaw":
        mu = num_levels - 1
        x = np.sign(x) * np.log1p(mu * np.abs(x)) / math.log1p(mu)
    elif transform != "linear":
        raise ValueError(f"unknown transform {transform!r}; choose mulaw or linear")
    return np.rint((x + 1.0) * 0.5 * (num_levels - 1)).astype(np.int64)


def dequantize(levels: np.ndarray, num_levels: int = 256, transform: Transform = "mulaw") -> np.ndarray:
    """Samples in [-1, 1] (float32) of integer levels; the inverse of :func:`quantize` up to rounding."""
    y = np.asarray(levels, dtype=np.float64) * (2.0 / (num_levels - 1)) - 1.0
    if transform == "mulaw":
        mu = num_levels - 1
        y = np.sign(y) * np.expm1(np.abs(y) * math.log1p(mu)) / mu
    elif transform != "linear":
        raise ValueError(f"unknown transform {transform!r}; choose mulaw or linear")
    return y.astype(np.float32)


def read_wav(path: Path) -> tuple[int, np.ndarray]:
    """Sample rate and float32 samples in [-1, 1] of a 16-bit PCM WAV file (channels averaged)."""
    with wave.open(str(path), "rb") as file:
        if file.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit PCM, got {8 * file.getsampwidth()}-bit samples")
        frames = np.frombuffer(file.readframes(file.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
        return file.getframerate(), frames.reshape(-1, file.getnchannels()).mean(axis=1)
