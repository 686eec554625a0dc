"""Data-parallel training with ``torch.distributed``: the same entry point alone or under torchrun.

Under ``torchrun --nproc_per_node=N -m medviewer train ...`` (or ``python -m
medviewer.ai.training``) every process sees ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``; the trainer then joins a process group (NCCL on CUDA, gloo on the
CPU), wraps the network in ``DistributedDataParallel`` and lets rank 0 alone
validate, write checkpoints and write the package. Decisions that must be the same
everywhere (stop now, early stopping) are broadcast from rank 0.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from medviewer.ai.parallel import ProcessGroupPlace


@dataclass
class DistributedContext(ProcessGroupPlace):
    """Where this process stands in a (possibly one-process) training group."""

    backend: str = ""
    owns_group: bool = False

    def broadcast_values(self, values: list[float]) -> list[float]:
        """Rank 0's ``values`` on every rank."""
        if not self.active:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64)
        if self.backend == "nccl":
            tensor = tensor.cuda()
        dist.broadcast(tensor, src=0)
        return [float(v) for v in tensor.cpu()]

    def mean(self, value: float) -> float:
        """The mean of ``value`` over all ranks."""
        if not self.active:
            return float(value)
        tensor = torch.tensor([float(value)], dtype=torch.float64)
        if self.backend == "nccl":
            tensor = tensor.cuda()
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def gather_strings(self, text: str) -> list[str]:
        """Every rank's ``text``, in rank order."""
        if not self.active:
            return [text]
        gathered: list[str | None] = [None] * self.world_size
        dist.all_gather_object(gathered, text)
        return [str(t) for t in gathered]

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False


def environment_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def setup_distributed(device: torch.device) -> tuple[DistributedContext, torch.device]:
    """Join the process group torchrun describes (if any); returns the context and this rank's device.

    CUDA ranks use ``cuda:LOCAL_RANK`` and NCCL; CPU ranks use gloo.
    """
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", rank))
        backend = dist.get_backend()
        if backend == "nccl":
            device = torch.device("cuda", local)
        return DistributedContext(rank, world, local, backend, owns_group=False), device
    world = environment_world_size()
    if world <= 1 or not dist.is_available():
        return DistributedContext(), device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        backend = "nccl"
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        backend = "gloo"
        device = torch.device("cpu")
    dist.init_process_group(backend=backend)
    return DistributedContext(dist.get_rank(), dist.get_world_size(), local, backend, owns_group=True), device


def weights_checksum(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's tensors (names, shapes and bytes), to check that ranks agree."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.numpy().tobytes() if tensor.dtype != torch.bfloat16 else tensor.float().numpy().tobytes())
    return digest.hexdigest()
