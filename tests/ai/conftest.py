"""Tiny model packages for the AI engine tests.

The networks are deterministic TorchScript modules with known behaviour ("label the
bright voxels", "a heat map that is high where the image is bright"), so tests can
check exact voxels and world positions after the full pipeline (resampling there and
back, sliding windows, post-processing).
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn


class BrightSegmenter(nn.Module):
    """Two-channel logits (background, foreground) with foreground where the input exceeds 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([(0.5 - x) * 20.0, (x - 0.5) * 20.0], dim=1)


class BrightHeatmap(nn.Module):
    """One heat-map channel whose probability exceeds 0.5 where the input exceeds 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - 0.5) * 20.0


class MeanClassifier(nn.Module):
    """Logits (mean intensity, 1 - mean intensity) of the whole input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3, 4))
        return torch.stack([mean, 1.0 - mean], dim=1)


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.0


NETWORKS = {
    "segmentation": BrightSegmenter,
    "detection": BrightHeatmap,
    "classification": MeanClassifier,
    "enhancement": Identity,
}

BASE_MANIFEST = {
    "format_version": 1,
    "name": "bright",
    "version": "1.0.0",
    "title": "Bright voxels",
    "task": "segmentation",
    "modality": ["CT"],
    "input": {
        "channels": 1,
        "spacing": None,
        "orientation": None,
        "normalization": {"method": "ct_window", "window": [0, 1000], "output_range": [0, 1]},
    },
    "inference": {"patch_size": [16, 16, 16], "overlap": 0.25, "batch_size": 2},
    "outputs": {"labels": [{"value": 1, "name": "bright", "color": [255, 0, 0]}]},
    "runtime": {"type": "torchscript", "file": "model.ts"},
    "provenance": {"training_data": "none: a hand-written test network", "license": "Apache-2.0"},
}

OUTPUTS = {
    "segmentation": {"labels": [{"value": 1, "name": "bright", "color": [255, 0, 0]}]},
    "detection": {"classes": ["blob"], "probability_threshold": 0.5, "score_threshold": 0.1, "nms_iou": 0.1},
    "classification": {"classes": ["bright", "dark"], "activation": "softmax"},
    "enhancement": {"image_name": "copy", "denormalize": True},
}


def manifest_for(task: str = "segmentation", **changes) -> dict:
    """A valid manifest dict for ``task``; ``changes`` replace top-level keys (dicts are merged one level)."""
    manifest = copy.deepcopy(BASE_MANIFEST)
    manifest["task"] = task
    manifest["outputs"] = copy.deepcopy(OUTPUTS[task])
    if task == "classification":
        manifest["inference"] = {"mode": "whole", "patch_size": [8, 8, 8]}
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(manifest.get(key), dict):
            manifest[key] = {**manifest[key], **value}
        else:
            manifest[key] = value
    return manifest


def write_package(folder: Path, task: str = "segmentation", network: nn.Module | None = None, **changes) -> Path:
    """A TorchScript package for ``task`` in ``folder``; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = manifest_for(task, **changes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated but still a supported format
        module = torch.jit.script(network if network is not None else NETWORKS[task]())
        torch.jit.save(module, str(folder / manifest["runtime"]["file"]))
    (folder / "model.json").write_text(json.dumps(manifest, indent=2))
    (folder / "MODEL_CARD.md").write_text(f"# {manifest['name']}\n\nA test network.\n")
    return folder


@pytest.fixture
def package_factory(tmp_path):
    """``package_factory(task, name=..., **manifest_changes)`` -> a loaded ModelPackage."""
    from medviewer.ai.pipeline import load_package

    def make(task: str = "segmentation", network: nn.Module | None = None, **changes):
        name = changes.get("name", f"bright-{task}")
        changes["name"] = name
        folder = write_package(tmp_path / "models" / f"{name}-{changes.get('version', '1.0.0')}", task, network, **changes)
        return load_package(folder)

    return make
