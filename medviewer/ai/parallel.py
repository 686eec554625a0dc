"""Where this process stands in a data-parallel batch run (``torchrun``): rank, world size, barrier, gather.

``medviewer infer`` over many studies runs the same under ``torchrun --nproc_per_node=N``
(one process per GPU, on one or several machines): each rank infers its share of the
studies and the ranks exchange only small Python objects (result rows). That exchange
always goes through gloo, which works on CPU-only and GPU machines alike and needs no
tensors on a device; each CUDA rank is pinned to ``cuda:LOCAL_RANK`` so that ``cuda``
means its own GPU. Outside torchrun this is a one-process group that does nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

# A rank that finishes its share early waits in the barrier for the slowest one; with
# thousands of studies that is hours, far past gloo's default 30 minutes.
BATCH_TIMEOUT = timedelta(days=7)


@dataclass
class ProcessGroupPlace:
    """Where this process stands in a (possibly one-process) torch.distributed group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


@dataclass
class BatchGroup(ProcessGroupPlace):
    """This process's rank in the batch (rank 0 of 1 when not under torchrun)."""

    owns_group: bool = False

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (picklable), in rank order, on every rank."""
        if not self.active:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False


def join_batch_group(device: str = "auto") -> BatchGroup:
    """Join the process group torchrun describes (``RANK``/``WORLD_SIZE``), or a one-process group.

    ``device`` is the user's choice: for ``auto``/``cuda`` on a CUDA machine each rank is
    pinned to its local GPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    if world > 1 and device in ("auto", "cuda") and torch.cuda.is_available():
        torch.cuda.set_device(local % torch.cuda.device_count())
    if dist.is_available() and dist.is_initialized():  # the caller (e.g. a test harness) made the group
        return BatchGroup(dist.get_rank(), dist.get_world_size(), local, owns_group=False)
    if world <= 1 or not dist.is_available():
        return BatchGroup()
    dist.init_process_group(backend="gloo", timeout=BATCH_TIMEOUT)
    return BatchGroup(dist.get_rank(), dist.get_world_size(), local, owns_group=True)
