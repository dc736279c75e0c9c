"""Data-parallel training: 2 gloo processes at global batch B land on the weights of one process at batch B, rank 1
writes nothing, a resumed 2-process run matches an uninterrupted one, and agents that cannot be distributed are
refused."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import random_episodes

from rlgen.algos import BC, BCConfig
from rlgen.data import Episodes, Transitions, transitions
from rlgen.heads import head_config
from rlgen.runs import start_run
from rlgen.scale.distributed import TorchReplicas, distributed_training
from rlgen.tasks import load_task
from rlgen.train import RunDir, TrainConfig, fit, load_checkpoint, seed_everything
from rlgen.train.parallel import Replicas

BATCH, STEPS = 16, 6
CONFIG = TrainConfig(steps=STEPS, batch_size=BATCH, log_every=2, checkpoint_every=3, eval_every=0)


class FixedOrder:
    """Global batch ``k`` is rows ``[k B, (k + 1) B)`` of a fixed permutation; rank ``r`` of ``n`` draws the ``r``-th
    ``B / n`` of them, so every process count sees the same global batches."""

    def __init__(self, data: Transitions, rank: int, world_size: int) -> None:
        self.data, self.rank, self.world_size, self.step = data, rank, world_size, 0
        self.order = np.random.default_rng(1).permutation(len(data.observations))

    def sample(self, batch_size: int, rng: np.random.Generator) -> Transitions:
        start = self.step * batch_size * self.world_size + self.rank * batch_size
        self.step += 1
        rows = self.order[start : start + batch_size]
        return self.data[rows]


def bc_agent(data: Episodes) -> BC:
    seed_everything(0)  # every process builds the same initial weights
    config = BCConfig(head=head_config("gaussian"), hidden=(32, 32))
    return BC.create(config, load_task("invertedpendulum"), data, torch.device("cpu"))


def weights(agent: BC) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in agent.policy.state_dict().items()}


def record_writes_under(root: Path) -> list[str]:
    """Every file this process opens for writing, makes, renames or deletes under ``root`` from now on."""
    writes: list[str] = []
    modes = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def hook(event: str, args: tuple) -> None:
        writing = event == "open" and isinstance(args[2], int) and args[2] & modes
        if (writing or event in ("os.mkdir", "os.rename", "os.replace", "os.remove")) and args and \
                str(args[0]).startswith(str(root)):  # fmt: skip
            writes.append(f"{event} {args[0]}")

    sys.addaudithook(hook)
    return writes


def worker(rank: int, world_size: int, port: int, root: Path) -> None:
    """One process as torchrun would start it, inside :func:`distributed_training` (the group joined, and left
    after a barrier, as ``rlgen train`` does)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size))  # fmt: skip
    torch.set_num_threads(1)
    with distributed_training("cpu") as (replicas, _):
        assert isinstance(replicas, TorchReplicas)
        writes = record_writes_under(root) if rank else []

        data = random_episodes(200, obs_dim=4, act_dim=1)
        # the same global batches as the single process of the test
        agent = bc_agent(data)
        fit(agent, FixedOrder(transitions(data), rank, world_size), CONFIG, RunDir(root / "fixed"), progress=False,
            replicas=replicas)  # fmt: skip
        torch.save(weights(agent), root / f"fixed-{rank}.pt.out")
        # each rank's own seed stream: trained straight through, then again from its step-3 checkpoint
        agent = bc_agent(data)
        fit(agent, agent.sampler(data), CONFIG, RunDir(root / "straight"), progress=False, replicas=replicas)
        if rank == 0:  # as a kill after step 3 would have left it
            shutil.copytree(root / "straight", root / "resumed", ignore=shutil.ignore_patterns("step_00000006.pt"))
        dist.barrier()
        agent = bc_agent(data)
        fit(agent, agent.sampler(data), CONFIG, RunDir(root / "resumed"), progress=False, replicas=replicas)
        if rank:
            (root / "rank1-writes.txt.out").write_text("\n".join(writes))
    (root / f"threads-{rank}.txt.out").write_text("\n".join(thread_names()))


def thread_names() -> list[str]:
    """The names of this process's threads (Linux), e.g. gloo's ``pt_gloo_runloop`` workers."""
    tasks = Path("/proc/self/task")
    return [(task / "comm").read_text().strip() for task in tasks.iterdir()] if tasks.is_dir() else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    for name in ("fixed", "straight"):
        (root / name).mkdir()
    mp.start_processes(worker, args=(2, free_port(), root), nprocs=2, start_method="spawn")
    return root


def test_two_processes_at_batch_b_match_one_process_at_batch_b(two_processes, tmp_path) -> None:
    data = random_episodes(200, obs_dim=4, act_dim=1)
    agent = bc_agent(data)
    run = tmp_path / "one"
    run.mkdir()

    fit(agent, FixedOrder(transitions(data), 0, 1), CONFIG, RunDir(run), progress=False)
    single, ranks = weights(agent), [torch.load(two_processes / f"fixed-{r}.pt.out") for r in (0, 1)]
    assert single.keys() == ranks[0].keys()
    for name, value in single.items():
        torch.testing.assert_close(ranks[0][name], value, rtol=1e-5, atol=1e-6)
        assert torch.equal(ranks[0][name], ranks[1][name])  # the ranks never drift apart
    # logged means are over the global batch, as the single process logs them
    one, two = RunDir(run).read_metrics(), RunDir(two_processes / "fixed").read_metrics()
    assert [r["step"] for r in one] == [r["step"] for r in two] == [2, 4, 6]
    for a, b in zip(one, two, strict=True):
        assert a["train/loss"] == pytest.approx(b["train/loss"], rel=1e-5)


def test_rank_1_writes_nothing_and_a_resumed_run_matches(two_processes) -> None:
    assert (two_processes / "rank1-writes.txt.out").read_text() == ""
    events = sorted((two_processes / "fixed").glob("events.out.tfevents.*"))
    assert len(events) == 1  # one TensorBoard writer: rank 0's
    resumed = load_checkpoint(two_processes / "resumed" / "checkpoints" / "step_00000006.pt")
    straight = load_checkpoint(two_processes / "straight" / "checkpoints" / "step_00000006.pt")
    assert len(straight["replica_rng"]) == 2
    assert resumed.keys() == straight.keys()
    for name, value in straight["agent"]["policy"].items():
        assert torch.equal(resumed["agent"]["policy"][name], value)
    assert resumed["trainer"] == straight["trainer"]
    # logged means agree to float rounding: the resumed processes continue from the means of the sums they held
    resumed_rows, straight_rows = (RunDir(two_processes / name).read_metrics() for name in ("resumed", "straight"))
    assert [r["step"] for r in resumed_rows] == [r["step"] for r in straight_rows] == [2, 4, 6]
    for a, b in zip(resumed_rows, straight_rows, strict=True):
        assert a == pytest.approx(b, rel=1e-6)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="thread names come from Linux's /proc")
def test_leaving_the_group_stops_its_threads(two_processes) -> None:
    # threads still running at interpreter exit abort the process now and then (SIGABRT after a finished run)
    for rank in (0, 1):
        names = (two_processes / f"threads-{rank}.txt.out").read_text().split("\n")
        assert not [name for name in names if "gloo" in name or "tcpstore" in name], names


class TwoProcesses(Replicas):
    world_size = 2


def test_agents_that_cannot_be_distributed_are_refused_before_anything_runs(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"DQN cannot be trained data-parallel .*algos that can: .*bc.*tt"):
        start_run("dqn", "cartpole", run_dir=tmp_path / "run", device="cpu", progress=False, replicas=TwoProcesses())
    assert not (tmp_path / "run").exists()


def test_a_global_batch_must_split_evenly() -> None:
    data = random_episodes(200, obs_dim=4, act_dim=1)
    agent = bc_agent(data)
    config = TrainConfig(steps=1, batch_size=15)
    with pytest.raises(ValueError, match="train.batch_size=15 is the global batch of 2 processes"):
        fit(agent, agent.sampler(data), config, None, replicas=TwoProcesses())  # type: ignore[arg-type]
