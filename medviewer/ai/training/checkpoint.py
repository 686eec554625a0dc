"""Training checkpoints: written atomically after every epoch, read back safely to resume.

A checkpoint holds only tensors and plain values (network, optimizer and gradient
scaler state, the best weights so far) plus the run's description as a JSON string,
so it loads with ``torch.load(weights_only=True)``. It is replaced atomically, so an
interruption (cancel, Ctrl+C, a crash) leaves the previous epoch's checkpoint whole.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import torch

from medviewer.core.errors import ModelError
from medviewer.io.atomic import atomic_write_with

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = 1


def checkpoint_path(folder: str | Path) -> Path:
    return Path(folder) / CHECKPOINT_NAME


def _cpu(state: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.detach().cpu().clone() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}


def save_checkpoint(folder: str | Path, model: dict[str, torch.Tensor], optimizer: dict, scaler: dict,
                    best_model: dict[str, torch.Tensor], info: dict[str, Any]) -> Path:
    """Write ``folder/checkpoint.pt`` atomically; ``info`` must be JSON-serialisable."""
    path = checkpoint_path(folder)
    data = {
        "format": FORMAT,
        "model": _cpu(model),
        "optimizer": optimizer,
        "scaler": scaler or {},
        "best_model": _cpu(best_model),
        "info_json": json.dumps(info),
    }
    atomic_write_with(path, lambda tmp: torch.save(data, tmp))
    return path


def load_checkpoint(folder: str | Path) -> dict[str, Any]:
    """The checkpoint in ``folder`` with ``info`` decoded; ``ModelError`` when there is none or it is unreadable."""
    path = checkpoint_path(folder)
    if not path.is_file():
        raise ModelError("there is no training checkpoint to resume from; start without --resume", path.parent)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        info = json.loads(data["info_json"])
    except Exception as error:  # noqa: BLE001 - any failure means the file cannot be used
        raise ModelError(f"the training checkpoint cannot be read ({error}); start without --resume", path) from None
    if data.get("format") != FORMAT:
        raise ModelError(f"the training checkpoint has format {data.get('format')}, this medviewer reads {FORMAT}", path)
    data["info"] = info
    return data


def remove_checkpoint(folder: str | Path) -> None:
    """Delete a finished run's checkpoint (and its folder when nothing else is in it)."""
    checkpoint_path(folder).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        Path(folder).rmdir()
