"""A small but real MONAI bundle, built in the test in the Model Zoo's layout.

``configs/metadata.json`` with ``network_data_format``, ``configs/inference.json`` with
preprocessing (LoadImaged, EnsureChannelFirstd, Orientationd, Spacingd, ScaleIntensityRanged),
``network_def`` (a small MONAI UNet), a SlidingWindowInferer and postprocessing (softmax,
Invertd, argmax, SaveImaged), and ``models/model.pt`` (the UNet's state dict, deterministic
random weights) or ``models/model.ts`` (the same network as TorchScript).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch

from medviewer.core.geometry import Geometry
from medviewer.core.volume import Volume

NETWORK_DEF = {"_target_": "UNet", "spatial_dims": 3, "in_channels": 1, "out_channels": 3,
               "channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1}

INFERENCE = {
    "bundle_root": ".",
    "output_dir": "eval",
    "preprocessing": {"_target_": "Compose", "transforms": [
        {"_target_": "LoadImaged", "keys": "image"},
        {"_target_": "EnsureChannelFirstd", "keys": "image"},
        {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
        {"_target_": "Spacingd", "keys": "image", "pixdim": [1.5, 1.5, 2.0], "mode": "bilinear"},
        {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -200, "a_max": 300,
         "b_min": 0.0, "b_max": 1.0, "clip": True},
        {"_target_": "EnsureTyped", "keys": "image"},
    ]},
    "network_def": NETWORK_DEF,
    "network": "@network_def",
    "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [32, 32, 16], "sw_batch_size": 2,
                "overlap": 0.25, "mode": "gaussian"},
    "postprocessing": {"_target_": "Compose", "transforms": [
        {"_target_": "Activationsd", "keys": "pred", "softmax": True},
        {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image",
         "nearest_interp": False, "to_tensor": True},
        {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
        {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir", "output_postfix": "seg",
         "resample": False, "separate_folder": False, "print_log": False},
    ]},
}

METADATA = {
    "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json",
    "version": "0.2.1",
    "changelog": {"0.2.1": "test bundle"},
    "monai_version": "1.3.0",
    "pytorch_version": "2.1.0",
    "numpy_version": "1.26.0",
    "name": "Phantom organ segmentation",
    "task": "Segmentation of a phantom body and ball",
    "description": "A small UNet with random weights, for tests.",
    "authors": "medviewer tests",
    "license": "Apache-2.0",
    "data_source": "synthetic phantoms",
    "network_data_format": {
        "inputs": {"image": {"type": "image", "format": "hounsfield", "modality": "CT", "num_channels": 1,
                             "spatial_shape": [32, 32, 16], "dtype": "float32", "value_range": [0, 1],
                             "is_patch_data": True, "channel_def": {"0": "image"}}},
        "outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": 3,
                             "spatial_shape": [32, 32, 16], "dtype": "float32", "value_range": [0, 1, 2],
                             "is_patch_data": True, "channel_def": {"0": "background", "1": "body", "2": "ball"}}},
    },
}


def network(seed: int = 2) -> torch.nn.Module:
    from monai.networks.nets import UNet

    torch.manual_seed(seed)
    kwargs = {k: v for k, v in NETWORK_DEF.items() if k != "_target_"}
    return UNet(**kwargs).eval()


def make_bundle(root: Path, name: str = "phantom_bundle", weights: str = "pt", config: dict | None = None,
                yaml_config: bool = False) -> Path:
    folder = root / name
    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    (folder / "docs").mkdir()
    (folder / "configs" / "metadata.json").write_text(json.dumps(METADATA, indent=2))
    config = copy.deepcopy(config or INFERENCE)
    if yaml_config:
        import yaml

        (folder / "configs" / "inference.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    else:
        (folder / "configs" / "inference.json").write_text(json.dumps(config, indent=2))
    (folder / "docs" / "README.md").write_text("# Phantom bundle\n\nFor tests.\n")
    net = network()
    if weights == "pt":
        torch.save(net.state_dict(), folder / "models" / "model.pt")
    else:
        torch.jit.script(net).save(str(folder / "models" / "model.ts"))
    return folder


def oblique_direction() -> np.ndarray:
    angle = np.deg2rad(12)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    return rot @ np.diag([1.0, -1.0, 1.0])  # a flipped y axis too: Orientationd has work to do


def phantom_ct(seed: int = 5) -> Volume:
    """A CT-like study with an anisotropic, oblique grid: a body with a bright ball."""
    rng = np.random.default_rng(seed)
    shape = (20, 44, 40)  # (z, y, x)
    z, y, x = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    body = ((z - 10) / 9) ** 2 + ((y - 22) / 18) ** 2 + ((x - 20) / 16) ** 2 <= 1
    ball = ((z - 9) / 4) ** 2 + ((y - 18) / 6) ** 2 + ((x - 24) / 6) ** 2 <= 1
    array = np.full(shape, -1000.0, dtype=np.float32)
    array[body] = 40.0
    array[ball] = 220.0
    array += rng.normal(0, 20, shape).astype(np.float32)
    geometry = Geometry.from_matrix((shape[2], shape[1], shape[0]), (0.9, 1.1, 2.5), (-20.0, 15.5, 7.25),
                                    oblique_direction())
    return Volume(array.astype(np.int16), geometry, modality="CT", name="phantom")
