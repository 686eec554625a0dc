"""Tiny datasets and base models for the training tests (seconds on a CPU).

Each case is a small CT-like volume (air-like background with noise) holding a
"ball" (+300 HU) and a "cyst" (-1000 HU: darker than the background, so the two differ in the sign of their contrast, which instance normalisation keeps) at seed-dependent positions and sizes; the
labels are exact. The base models are tiny MONAI UNets with random (seeded) weights,
so the "before" scores are poor and only real training can make them good.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medviewer.ai.architectures import build_architecture
from medviewer.ai.manifest import ModelManifest
from medviewer.ai.packaging import save_package
from medviewer.core import Detection, Geometry, LabelMap, LabelTable, Volume, VolumeMetadata
from medviewer.core.detection import DetectionStatus
from medviewer.io.nnunet_dataset import NnUNetDataset

@pytest.fixture
def isolated_training(tmp_path, monkeypatch):
    """Own user folders per test (trained models must not leak into other tests); one thread, as results
    are reproducible for a fixed thread count (and the CI machine has 2 cores)."""
    monkeypatch.setenv("MEDVIEWER_HOME", str(tmp_path / "home"))
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


SHAPE = (24, 32, 32)  # (z, y, x)
SPACING = (2.0, 2.0, 2.0)
UNET = {"spatial_dims": 3, "in_channels": 1, "out_channels": 3, "channels": [8, 16, 32], "strides": [2, 2],
        "num_res_units": 1}


def ball_case(seed: int, shape=SHAPE, spacing=SPACING) -> tuple[Volume, LabelMap, list[Detection]]:
    """A volume with a ball (label 1 "ball") and a cyst (label 2 "cyst"), plus boxes around both.

    Boxes: the ball's is accepted (a true finding), the cyst's rejected (a false alarm).
    """
    rng = np.random.default_rng(seed)
    geometry = Geometry(tuple(shape[::-1]), spacing, (-30.0, -20.0, 100.0 + seed))
    z, y, x = np.indices(shape)
    image = rng.normal(-700, 40, shape)
    labels = np.zeros(shape, np.uint8)
    boxes = []
    centres = []
    for value, hu, status in ((1, 300.0, DetectionStatus.ACCEPTED), (2, -1000.0, DetectionStatus.REJECTED)):
        radius = rng.uniform(3.0, 5.0)
        while True:
            centre = rng.uniform([radius + 1] * 3, np.asarray(shape) - radius - 2)
            if all(np.linalg.norm(centre - c) > 2 * 5.0 + 2 for c in centres):
                break
        centres.append(centre)
        inside = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius ** 2
        image[inside] = rng.normal(hu, 40, int(inside.sum()))
        labels[inside] = value
        low = np.argwhere(inside).min(axis=0)[::-1] - 0.5  # (i, j, k) voxel edges
        high = np.argwhere(inside).max(axis=0)[::-1] + 0.5
        boxes.append(Detection.from_index_bounds(geometry, low, high, label="nodule", status=status, source="test"))
    volume = Volume(image.astype(np.int16), geometry, "CT",
                    VolumeMetadata(series_uid=f"1.2.826.0.1.3680043.2.1125.9.{seed}"), name=f"balls {seed}")
    table = LabelTable.from_names({1: "ball", 2: "cyst"})
    return volume, LabelMap(labels, geometry, table, source="manual"), boxes


def make_dataset(parent: Path, seeds=range(6), dataset_id: int = 901, name: str = "Balls",
                 with_boxes: bool = False) -> NnUNetDataset:
    """An nnU-Net dataset with one case per seed (case ids ``ball-SEED``), saved the way the app saves them."""
    dataset = NnUNetDataset.create_or_open(parent, dataset_id, name, "CT")
    for seed in seeds:
        volume, labels, boxes = ball_case(seed)
        dataset.save_case(volume, labels, detections=boxes if with_boxes else None, case_id=f"ball-{seed}")
    return dataset


def base_manifest(task: str = "segmentation", name: str = "tiny-balls", labels=("ball", "cyst")) -> ModelManifest:
    arguments = dict(UNET, out_channels=len(labels) + 1 if task == "segmentation" else 1)
    outputs = ({"labels": [{"value": v, "name": n} for v, n in enumerate(labels, start=1)], "activation": "softmax"}
               if task == "segmentation" else
               {"classes": ["nodule"], "probability_threshold": 0.5, "score_threshold": 0.3, "nms_iou": 0.1})
    return ModelManifest.from_dict({
        "name": name,
        "version": "1.0.0",
        "title": "Tiny test model",
        "task": task,
        "modality": ["CT"],
        "input": {"channels": 1, "spacing": None, "orientation": None,
                  "normalization": {"method": "ct_window", "window": [-1000, 1000], "output_range": [0, 1]}},
        "inference": {"mode": "sliding_window", "patch_size": [16, 16, 16], "overlap": 0.25, "batch_size": 2},
        "outputs": outputs,
        "runtime": {"type": "builtin", "file": "weights.pt", "architecture": "monai.UNet", "arguments": arguments},
        "provenance": {"training_data": "none (random weights)", "license": "Apache-2.0"},
    })


def make_base_package(folder: Path, task: str = "segmentation", seed: int = 3, **kwargs) -> Path:
    """A tiny built-in-architecture package with random weights."""
    manifest = base_manifest(task, **kwargs)
    torch.manual_seed(seed)
    network = build_architecture("monai.UNet", manifest.runtime.arguments)
    save_package(folder, manifest, network, "# Tiny test model\n")
    return folder


def read_manifest(folder: Path) -> dict:
    return json.loads((Path(folder) / "model.json").read_text())
