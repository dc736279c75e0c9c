"""Scaling out with existing engines: sweeps of runs over agents x datasets x seeds x override sets on Ray, and
data-parallel training under ``torchrun`` (:mod:`rlgen.scale.distributed`).

>>> from rlgen.scale import Grid, plan_sweep, run_sweep, summarise
>>> grid = Grid(["bc-gaussian", "bc-dlml"], ["hopper-medium"], seeds=[0, 1, 2], overrides=["train.steps=5000"])
>>> cells = plan_sweep(grid, "sweeps/bc")       # every name checked and every dataset resolved here
>>> records = run_sweep(cells)                   # a local Ray instance; address="host:6379" joins a cluster
>>> rows = summarise(records)
"""

from rlgen.scale.distributed import TorchReplicas, distributed_training, launched_by_torchrun
from rlgen.scale.sweep import (
    Cell,
    Grid,
    RunRecord,
    check_address,
    load_grid,
    plan_sweep,
    run_cell,
    run_sweep,
    summarise,
    write_summary,
)

__all__ = [
    "Cell",
    "Grid",
    "RunRecord",
    "TorchReplicas",
    "check_address",
    "distributed_training",
    "launched_by_torchrun",
    "load_grid",
    "plan_sweep",
    "run_cell",
    "run_sweep",
    "summarise",
    "write_summary",
]
