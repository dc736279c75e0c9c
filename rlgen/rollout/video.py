"""An mp4 of one episode (needs the ``render`` extra: ``pip install 'rlgen[render]'``).

MuJoCo renders off-screen through ``MUJOCO_GL``: ``egl`` (default here) or ``osmesa``. Set it before the first
MuJoCo environment of the process is made.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from rlgen.data.atomic import atomic_path
from rlgen.rollout.envs import make_env
from rlgen.rollout.evaluation import Policy, feedback
from rlgen.tasks import TaskSpec

MISSING_MESSAGE = "video skipped: writing mp4 needs imageio and imageio-ffmpeg (pip install 'rlgen[render]')"


def video_supported() -> bool:
    """True if imageio and its ffmpeg plug-in are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("imageio", "imageio_ffmpeg"))


def record_video(policy: Policy, task: TaskSpec, path: str | os.PathLike[str], seed: int) -> Path | None:
    """Render one episode (reset with ``seed``) of ``policy`` to the mp4 ``path``, written atomically.

    Returns the path, or ``None`` after printing why if the ``render`` extra is not installed.
    """
    if not video_supported():
        print(MISSING_MESSAGE)
        return None
    import imageio.v2 as imageio

    os.environ.setdefault("MUJOCO_GL", "egl")
    env = make_env(task, render_mode="rgb_array")
    frames = []
    try:
        obs, _ = env.reset(seed=seed)
        frames.append(env.render())
        done = False
        observe = feedback(policy)
        while not done:
            action = np.asarray(policy(np.asarray(obs)[None]))[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            frames.append(env.render())
            done = terminated or truncated
            observe(np.array([reward]), np.array([done]))
        fps = int(env.metadata.get("render_fps", 30))
    finally:
        env.close()
    path = Path(path)
    with atomic_path(path, force=True) as tmp:
        imageio.mimwrite(tmp, frames, fps=fps, format="FFMPEG")  # type: ignore[arg-type]
    return path
