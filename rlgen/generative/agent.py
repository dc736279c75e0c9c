"""The image and audio models as agents: a level model and its optimiser, scored by held-out bits/dim.

Recipes name them ``algo: image`` or ``algo: audio`` (``agents/generative/``); :mod:`rlgen.runs` launches them
like every other agent.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from rlgen.data.atomic import atomic_path
from rlgen.generative.audio import AudioConfig, AudioTask
from rlgen.generative.image import ImageConfig, ImageTask
from rlgen.generative.models import LevelModel
from rlgen.train.agent import Learner

LevelData = ImageTask | AudioTask


@dataclass(frozen=True)
class HeldOutResult:
    """Held-out negative log-likelihood of a level model, in bits per element (pixel or sample)."""

    kind: str
    bits_per_dim: float
    step: int | None = None

    def scalars(self) -> dict[str, float]:
        """The numbers to log (``eval/...``)."""
        return {"eval/bits_per_dim": self.bits_per_dim}

    def write(self, path: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Write the result as JSON atomically; an existing ``path`` is refused unless ``force``."""
        path = Path(path)
        with atomic_path(path, force=force) as tmp:
            tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    def summary(self) -> str:
        return f"{self.kind}: held-out bits/dim {self.bits_per_dim:.4f}"


class LevelAgent(Learner):
    """A level model and its Adam optimiser, trained on the exact negative log-mass of its data.

    Build one for a recipe with :meth:`create`; subclasses set ``Config`` (the ``agent:`` block) and ``Data``
    (what :meth:`create` builds the model for, and what is sampled, scored and written).

    :param model: a :class:`~rlgen.generative.models.LevelModel`, already on its device.
    :param lr: Adam learning rate.
    :param grad_clip: gradient-norm clip.
    """

    checkpointed = ("model", "optimizer")

    Data: ClassVar[type[ImageTask] | type[AudioTask]]
    data_parallel = True

    def __init__(self, model: LevelModel, lr: float, grad_clip: float):
        self.model = model
        self.grad_clip = grad_clip
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    @classmethod
    def create(cls, config: ImageConfig | AudioConfig, data: LevelData, device: torch.device) -> LevelAgent:
        """The model ``data`` builds, on ``device``; a quantile head takes its bins from the training levels (a
        resumed run restores them from its checkpoint)."""
        model = data.build().to(device)
        levels = torch.as_tensor(data.train, dtype=torch.float32, device=model.head.low.device)
        model.head.fit_to_data(levels.reshape(-1, 1))
        return cls(model, config.lr, config.grad_clip)

    def update(self, batch: np.ndarray) -> dict[str, torch.Tensor]:
        levels = torch.as_tensor(batch, device=self.model.head.low.device)
        self.model.train()
        nll = -self.model.log_mass(levels).mean()
        self.optimizer.zero_grad(set_to_none=True)
        nll.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        return {"bits_per_dim": nll.detach() / np.log(2.0), "grad_norm": grad_norm}

    def evaluate(self, data: LevelData, step: int | None = None) -> HeldOutResult:
        """Bits/dim of ``data``'s held-out split."""
        self.model.eval()
        return HeldOutResult(data.kind, data.evaluate(self.model)["eval/bits_per_dim"], step)

    def write_samples(self, data: LevelData, folder: Path, seed: int, progress: bool = False) -> Path:
        """Generate from the model into ``folder / data.samples_file`` (``samples.png`` or ``samples.wav``)."""
        self.model.eval()
        return data.write_samples(self.model, folder / data.samples_file, seed=seed, progress=progress)

    def trainable_modules(self) -> list[torch.nn.Module]:
        return [self.model]


class ImageAgent(LevelAgent):
    """A gated PixelCNN over the 8x8 digits (``algo: image``)."""

    Config = ImageConfig
    Data = ImageTask


class AudioAgent(LevelAgent):
    """A WaveNet over espeak-ng speech (``algo: audio``)."""

    Config = AudioConfig
    Data = AudioTask


#: generative algo names of recipes -> agent classes
GENERATIVE_ALGOS: dict[str, type[LevelAgent]] = {"image": ImageAgent, "audio": AudioAgent}
