"""Choosing where a model runs (CUDA, then Apple MPS, then CPU) and recognising out-of-memory errors."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from medviewer.ai.results import interactive_thread_count  # noqa: F401 - re-exported

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def cuda_available() -> bool:
    return torch.cuda.is_available()


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Devices usable on this machine, fastest first (``"cpu"`` is always last)."""
    devices = []
    if cuda_available():
        devices.append("cuda")
    if mps_available():
        devices.append("mps")
    return devices + ["cpu"]


def resolve_device(preference: str | torch.device = "auto") -> tuple[torch.device, list[str]]:
    """The device to use for ``preference`` and any warnings for the user.

    ``"auto"`` picks CUDA, then MPS, then the CPU. An explicit request for an
    accelerator that is not present falls back to the CPU with a warning rather
    than failing: a demo must keep working on any laptop.
    """
    if isinstance(preference, torch.device):
        return preference, []
    choice = (preference or "auto").lower()
    index = None
    if ":" in choice:
        choice, index = choice.split(":", 1)
    if choice not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {', '.join(DEVICE_CHOICES)}, got '{preference}'")
    if choice == "auto":
        return torch.device(available_devices()[0]), []
    if choice == "cuda" and not cuda_available():
        return torch.device("cpu"), ["CUDA was requested but is not available; running on the CPU"]
    if choice == "mps" and not mps_available():
        return torch.device("cpu"), ["Apple MPS was requested but is not available; running on the CPU"]
    return torch.device(f"{choice}:{index}" if index else choice), []


def describe_device(device: torch.device) -> str:
    """A line naming ``device`` for people (Help > About, logs): the GPU model or the CPU threads."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        properties = torch.cuda.get_device_properties(index)
        return f"CUDA GPU {index}: {properties.name} ({properties.total_memory / 2**30:.0f} GiB)"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocation failures, which deserve a retry rather than a crash."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    message = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in message or "can't allocate memory" in message)


def release_cached_memory(device: torch.device) -> None:
    """Give cached allocator blocks back after an out-of-memory error."""
    if device.type == "cuda" and cuda_available():
        torch.cuda.empty_cache()
    elif device.type == "mps" and mps_available():
        with contextlib.suppress(Exception):
            torch.mps.empty_cache()


@contextlib.contextmanager
def cpu_threads(count: int | None) -> Iterator[None]:
    """Run with ``count`` torch intra-op threads (``None`` leaves the setting alone), then restore it."""
    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(count)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
