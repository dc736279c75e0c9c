"""A dataset at a glance: sizes, shapes, spaces, flags, episode-return statistics and the normalised score."""

from __future__ import annotations

from typing import Any

import numpy as np

from rlgen.data.episodes import Episodes
from rlgen.tasks import normalized_score


def summarize(
    episodes: Episodes, ref_min_score: float | None = None, ref_max_score: float | None = None
) -> dict[str, Any]:
    """Plain-typed summary; the normalised score (of the mean episode return, D4RL scale) is included when
    reference scores are given or found in the metadata."""
    returns = episodes.episode_returns()
    ref_min = ref_min_score if ref_min_score is not None else episodes.metadata.get("ref_min_score")
    ref_max = ref_max_score if ref_max_score is not None else episodes.metadata.get("ref_max_score")
    out: dict[str, Any] = {
        "source": episodes.source,
        "episodes": episodes.num_episodes,
        "steps": episodes.num_steps,
        "observation_shape": list(episodes.observation_shape),
        "action_shape": list(episodes.action_shape),
        "discrete_actions": episodes.discrete_actions,
        "observation_space": str(episodes.observation_space),
        "action_space": str(episodes.action_space),
        "terminals": int(episodes.terminals.sum()),
        "timeouts": int(episodes.timeouts.sum()),
        "final_observations_known": episodes.final_observations is not None,
        "episode_length_mean": float(episodes.episode_lengths.mean()) if episodes.num_episodes else 0.0,
    }
    if len(returns):
        out.update(
            return_mean=float(returns.mean()),
            return_std=float(returns.std()),
            return_min=float(returns.min()),
            return_max=float(returns.max()),
        )
        if ref_min is not None and ref_max is not None:
            out["ref_min_score"], out["ref_max_score"] = float(ref_min), float(ref_max)
            out["normalized_score"] = float(normalized_score(np.mean(returns), float(ref_min), float(ref_max)))
    return out
