"""Data-parallel training under ``torchrun``: the process group from torchrun's environment, a device per local
rank, and :class:`TorchReplicas`, the :class:`~rlgen.train.parallel.Replicas` that :func:`rlgen.train.fit` averages
gradients and gathers state through.

    torchrun --nproc_per_node 2 -m rlgen train bc-dlml hopper-medium              # gloo on CPU, NCCL on GPUs
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --master_port 29500 --nproc_per_node 8 -m rlgen train ...

>>> with distributed_training("auto") as (replicas, device):   # None, "auto" when not launched by torchrun
...     start_run("bc-dlml", "hopper-medium", device=device, replicas=replicas)
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.autograd import Variable

from rlgen.train.agent import Learner
from rlgen.train.parallel import Replicas

T = TypeVar("T")

#: how long a process waits in a collective: the others wait for rank 0's evaluations (TT plans for many minutes on a
#: CPU), longer than NCCL's default 10 minutes
COLLECTIVE_TIMEOUT = timedelta(hours=2)
#: the variables torchrun sets in every process it starts
TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """Whether this process is one of those ``torchrun`` started (its environment variables are set)."""
    return all(var in os.environ for var in TORCHRUN_VARS)


def process_device(device: str, local_rank: int) -> str:
    """The device of the process with ``local_rank`` on its node: ``cuda:<local_rank>`` for ``auto`` on a machine
    with GPUs and for ``cuda``, else ``cpu``. One GPU per process: ``cuda:<i>`` would put every process on one."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device != "cuda":
        raise ValueError(f"--device {device} under torchrun: give auto, cpu or cuda (each process then takes "
                         f"cuda:<LOCAL_RANK>)")  # fmt: skip
    if local_rank >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(f"process LOCAL_RANK={local_rank} has no GPU of its own: this node has {count}; start at "
                         f"most that many (torchrun --nproc_per_node)")  # fmt: skip
    return f"cuda:{local_rank}"


class TorchReplicas(Replicas):
    """The processes of the initialised default ``torch.distributed`` group (see :func:`distributed_training`).

    Gradients are averaged by one all-reduce per backward pass: a hook on each trainable parameter notes the
    gradients as they are accumulated, and a callback at the end of the backward pass averages them all at once,
    before the agent clips them or steps its optimisers. So agents with several optimisers, backward passes or
    gradient clipping train as one process would on the whole batch.
    """

    def __init__(self, device: torch.device) -> None:
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.device = device  # where collectives of plain values go: NCCL reduces CUDA tensors only
        self._pending: list[torch.Tensor] = []

    def attach(self, learner: Learner) -> None:
        if not type(learner).data_parallel:
            raise ValueError(f"{type(learner).__name__} cannot be trained data-parallel")
        seen: set[int] = set()
        for module in learner.trainable_modules():
            for parameter in module.parameters():
                if parameter.requires_grad and id(parameter) not in seen:
                    seen.add(id(parameter))
                    parameter.register_post_accumulate_grad_hook(self._note)

    def _note(self, parameter: nn.Parameter) -> None:
        if not self._pending:  # the first gradient of this backward pass: average them all when it ends
            Variable._execution_engine.queue_callback(self._average)
        self._pending.append(parameter.grad)  # type: ignore[arg-type]

    def _average(self) -> None:
        grads, self._pending = self._pending, []
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        for grad, averaged in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            grad.copy_(averaged.view_as(grad))

    def mean(self, values: dict[str, float | torch.Tensor]) -> dict[str, float]:
        names = sorted(values)
        if not names:
            return {}
        stacked = torch.tensor([float(values[n]) for n in names], dtype=torch.float64, device=self.device)
        dist.all_reduce(stacked)
        return dict(zip(names, (stacked / self.world_size).tolist(), strict=True))

    def any(self, flag: bool) -> bool:
        count = torch.tensor([int(flag)], device=self.device)
        dist.all_reduce(count)
        return bool(count.item())

    def gather(self, value: T) -> list[T] | None:
        gathered: list[T] | None = [value] * self.world_size if self.is_writer else None
        dist.gather_object(value, gathered, dst=0)
        return gathered

    def share(self, value: T) -> T:
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


@contextmanager
def distributed_training(device: str) -> Iterator[tuple[TorchReplicas | None, str]]:
    """Inside ``torchrun``: join the process group (NCCL for CUDA devices, gloo on CPU) for the block, and yield
    this process's :class:`TorchReplicas` and device (see :func:`process_device`); otherwise ``(None, device)``.
    The group is left once every process has finished the block."""
    if not launched_by_torchrun():
        yield None, device
        return
    local = process_device(device, int(os.environ["LOCAL_RANK"]))
    if local.startswith("cuda"):
        torch.cuda.set_device(local)
    # Imported inside the group (as an agent's first optimiser does), torch._dynamo keeps the group alive past
    # destroy_process_group: gloo's worker threads then outlive it and abort the process at interpreter exit
    # (about 1 run in 10 on 2 CPUs). Imported first, it does not, and the group is freed when left.
    importlib.import_module("torch._dynamo")
    dist.init_process_group("nccl" if local.startswith("cuda") else "gloo", timeout=COLLECTIVE_TIMEOUT)
    try:
        yield TorchReplicas(torch.device(local)), local
        dist.barrier()  # the writer may still be evaluating or saving: the group must outlive its last collective
    finally:
        dist.destroy_process_group()
