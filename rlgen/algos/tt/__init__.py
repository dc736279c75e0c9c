"""Trajectory Transformer (Janner et al. 2021) with uniform, quantile or AdaCat conditionals and a cached beam
planner: :mod:`.sequences` (transition rows), :mod:`.model` (GPT and per-dimension heads), :mod:`.planner`
(beam search)."""

from rlgen.algos.tt.model import TrajectoryModel, TTModelConfig
from rlgen.algos.tt.planner import Plan, PlannerConfig, beam_plan, make_prefix, planning_cache
from rlgen.algos.tt.sequences import TransitionLayout, TransitionSequences, transition_rows

__all__ = [
    "Plan",
    "PlannerConfig",
    "TTModelConfig",
    "TrajectoryModel",
    "TransitionLayout",
    "TransitionSequences",
    "beam_plan",
    "make_prefix",
    "planning_cache",
    "transition_rows",
]
