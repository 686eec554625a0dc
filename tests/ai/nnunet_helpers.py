"""A tiny but real nnU-Net v2 result folder, built in the test the way nnU-Net writes one.

``plans.json`` and ``dataset.json`` follow nnU-Net v2's layout (a 3d_fullres PlainConvUNet with a
transpose and an anisotropic target spacing, and a 2d configuration); each fold's
``checkpoint_final.pth`` is the dict nnU-Net's trainer saves (network weights, optimiser state,
a training log with NumPy floats, init arguments, trainer name, mirroring axes), with
deterministic random weights.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch

from medviewer.core.geometry import Geometry
from medviewer.core.volume import Volume

DATASET_NAME = "Dataset042_Phantom"
TRAINER = "nnUNetTrainer"
PLANS = "nnUNetPlans"

INTENSITY = {"max": 400.0, "mean": 40.0, "median": 35.0, "min": -200.0,
             "percentile_00_5": -100.0, "percentile_99_5": 300.0, "std": 80.0}


def _arch(dim: int, features=(8, 16, 32)) -> dict:
    conv = "torch.nn.modules.conv.Conv3d" if dim == 3 else "torch.nn.modules.conv.Conv2d"
    norm = "torch.nn.modules.instancenorm.InstanceNorm3d" if dim == 3 else "torch.nn.modules.instancenorm.InstanceNorm2d"
    kernels = [[1, 3, 3], [3, 3, 3], [3, 3, 3]] if dim == 3 else [[3, 3]] * 3
    strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2]] if dim == 3 else [[1, 1], [2, 2], [2, 2]]
    return {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": 3, "features_per_stage": list(features), "conv_op": conv, "kernel_sizes": kernels,
            "strides": strides, "n_conv_per_stage": [2, 2, 2], "n_conv_per_stage_decoder": [2, 2],
            "conv_bias": True, "norm_op": norm, "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }


def make_plans(normalization: str = "CTNormalization") -> dict:
    resampling = {
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
    }
    return {
        "dataset_name": DATASET_NAME,
        "plans_name": PLANS,
        "original_median_spacing_after_transp": [3.5, 1.1, 0.9],
        "original_median_shape_after_transp": [14, 36, 50],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [2, 0, 1],
        "transpose_backward": [1, 2, 0],
        "configurations": {
            "2d": {
                "data_identifier": "nnUNetPlans_2d", "preprocessor_name": "DefaultPreprocessor", "batch_size": 12,
                "patch_size": [32, 32], "median_image_size_in_voxels": [33.0, 41.0], "spacing": [1.2, 1.2],
                "normalization_schemes": [normalization], "use_mask_for_norm": [False], **resampling,
                "architecture": _arch(2), "batch_dice": True,
            },
            "3d_fullres": {
                "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 2, "patch_size": [8, 32, 32], "median_image_size_in_voxels": [12.0, 33.0, 41.0],
                "spacing": [4.0, 1.2, 1.2], "normalization_schemes": [normalization], "use_mask_for_norm": [False],
                **resampling, "architecture": _arch(3), "batch_dice": False,
            },
        },
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": dict(INTENSITY)},
    }


def make_dataset_json(regions: bool = False) -> dict:
    data = {"channel_names": {"0": "CT"}, "numTraining": 10, "file_ending": ".nii.gz",
            "name": "Phantom", "licence": "CC-BY-4.0"}
    if regions:
        data["labels"] = {"background": 0, "organ": [1, 2], "lesion": [2]}
        data["regions_class_order"] = [1, 2]
    else:
        data["labels"] = {"background": 0, "liver": 1, "tumour": 2}
    return data


def _checkpoint(network: torch.nn.Module, plans: dict, dataset_json: dict, configuration: str, fold: int,
                mirror_axes) -> dict:
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01, momentum=0.99, nesterov=True)
    network(torch.zeros((1, 1, *plans["configurations"][configuration]["patch_size"]))).mean().backward()
    optimizer.step()
    log = {"mean_fg_dice": [np.float64(0.61)], "ema_fg_dice": [np.float64(0.6)],
           "dice_per_class_or_region": [[np.float64(0.5), np.float64(0.7)]], "train_losses": [np.float64(-0.4)],
           "val_losses": [np.float32(-0.35)], "lrs": [0.01], "epoch_start_timestamps": [1.0e9],
           "epoch_end_timestamps": [1.0e9 + 60]}
    return {
        "network_weights": network.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "grad_scaler_state": None,
        "logging": log,
        "_best_ema": np.float64(0.6),
        "current_epoch": 1000,
        "init_args": {"plans": copy.deepcopy(plans), "configuration": configuration, "fold": fold,
                      "dataset_json": copy.deepcopy(dataset_json), "device": torch.device("cpu")},
        "trainer_name": TRAINER,
        "inference_allowed_mirroring_axes": mirror_axes,
    }


def make_trained_model(root: Path, configuration: str = "3d_fullres", folds=(0, 1), regions: bool = False,
                       normalization: str = "CTNormalization", mirror_axes=(0, 1, 2), seed: int = 0) -> Path:
    """``root/Dataset042_Phantom/nnUNetTrainer__nnUNetPlans__<configuration>/`` with one checkpoint per fold."""
    from medviewer.ai.nnunet.network import build_network

    plans = make_plans(normalization)
    dataset_json = make_dataset_json(regions)
    folder = Path(root) / DATASET_NAME / f"{TRAINER}__{PLANS}__{configuration}"
    folder.mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(plans, indent=2))
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    heads = 2 if regions else 3
    if configuration == "2d":
        mirror_axes = tuple(a for a in mirror_axes if a < 2) if mirror_axes else mirror_axes
    for fold in folds:
        torch.manual_seed(seed + 1000 * fold)
        network = build_network(plans["configurations"][configuration]["architecture"], 1, heads,
                                folder / "plans.json").train()
        (folder / f"fold_{fold}").mkdir()
        torch.save(_checkpoint(network, plans, dataset_json, configuration, fold, mirror_axes),
                   folder / f"fold_{fold}" / "checkpoint_final.pth")
    return folder


def oblique_direction(angle_degrees: float = 20.0) -> np.ndarray:
    a = np.deg2rad(angle_degrees)
    about_z = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    b = np.deg2rad(10.0)
    about_x = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return about_z @ about_x


def phantom_ct(seed: int = 3) -> Volume:
    """An anisotropic, oblique CT-like study: a body with a bright ball, a zero border outside the field of view.

    Spacing (x, y, z) = (3.5, 0.9, 1.1) mm: the x axis is the thick one, which the plans'
    transpose puts first.
    """
    rng = np.random.default_rng(seed)
    shape = (36, 50, 14)  # (z, y, x)
    z, y, x = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    body = ((z - 18) / 15) ** 2 + ((y - 25) / 20) ** 2 + ((x - 7) / 6) ** 2 <= 1
    ball = ((z - 14) / 6) ** 2 + ((y - 22) / 7) ** 2 + ((x - 6) / 2.5) ** 2 <= 1
    array = np.full(shape, -1000.0, dtype=np.float32)
    array[body] = 40.0
    array[ball] = 180.0
    array += rng.normal(0, 15, shape).astype(np.float32)
    array[:3] = 0  # outside the reconstructed field of view: nnU-Net crops it away
    array[:, :, :1] = 0
    geometry = Geometry.from_matrix((shape[2], shape[1], shape[0]), (3.5, 0.9, 1.1), (-12.0, 30.5, 7.25),
                                    oblique_direction())
    return Volume(array.astype(np.int16), geometry, modality="CT", name="phantom")
