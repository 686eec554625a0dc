"""Writing model packages: what training and fine-tuning produce (weights + model.json + MODEL_CARD.md).

A fine-tuned model is just another package: write it with ``save_package`` into
``registry.new_package_folder(name, version)`` (the user's models folder) with a
manifest derived from its parent (``manifest.derive(version=..., provenance=...)``),
then ``ModelRegistry.refresh()`` lists it beside the other versions.
"""

from __future__ import annotations

from pathlib import Path

import torch

from medviewer.ai.manifest import MODEL_CARD_NAME, ModelManifest, write_manifest
from medviewer.core.errors import ModelError
from medviewer.io.atomic import atomic_write_text, atomic_write_with


def save_package(folder: str | Path, manifest: ModelManifest, network: torch.nn.Module | dict, model_card: str) -> Path:
    """Write a ``builtin``-runtime package atomically: a plain state dict, the manifest and the model card.

    Only tensors are saved (never pickled objects), so the package loads with
    ``torch.load(weights_only=True)``.
    """
    if manifest.runtime.type != "builtin":
        raise ModelError(f"save_package writes state dicts for 'builtin' runtimes, not '{manifest.runtime.type}'")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = network.state_dict() if isinstance(network, torch.nn.Module) else network
    state = {key: value.detach().cpu().contiguous() for key, value in state.items()}
    atomic_write_with(folder / manifest.runtime.file, lambda tmp: torch.save(state, tmp))
    write_manifest(manifest, folder)
    atomic_write_text(folder / MODEL_CARD_NAME, model_card)
    return folder
