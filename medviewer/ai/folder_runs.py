"""The frame of a run for models that predict labels with their own machinery (nnU-Net folders, MONAI bundles).

Both take a study and give a label array on its grid; what surrounds that is the same
as for medviewer's own packages: a result that names the model, a warning when the
study's modality is not the model's, the device choice, the CPU fallback when the GPU
runs out of memory, the label table from the manifest, and the timing.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from medviewer.ai import devices
from medviewer.ai.results import InferenceOptions, InferenceResult
from medviewer.core.jobs import ProgressCallback
from medviewer.core.labels import LabelMap, LabelTable
from medviewer.core.volume import Volume


def run_label_model(
    manifest,
    volume: Volume,
    options: InferenceOptions,
    progress: ProgressCallback,
    first_step: str,
    predict: Callable[[torch.device], np.ndarray],
) -> InferenceResult:
    """Run ``predict(device)`` (labels on ``volume``'s grid) inside the common frame; see the module docstring."""
    started = time.perf_counter()
    result = InferenceResult(manifest.name, manifest.version, manifest.task)
    if not manifest.accepts_modality(volume.modality):
        result.warnings.append(f"{manifest.display_name} is meant for {', '.join(manifest.modality)} images, "
                               f"this image is {volume.modality}")
    device, device_warnings = devices.resolve_device(options.device)
    result.warnings += device_warnings
    progress(0.0, f"{manifest.display_name}: {first_step}")
    with devices.cpu_threads(options.cpu_threads), torch.inference_mode():
        try:
            labels = predict(device)
        except Exception as error:  # noqa: BLE001 - only memory errors are retried
            if not devices.is_out_of_memory(error) or device.type == "cpu":
                raise
            devices.release_cached_memory(device)
            result.warnings.append(f"out of memory on {device}; ran on the CPU instead")
            device = torch.device("cpu")
            labels = predict(device)
    table = LabelTable()
    for label in manifest.outputs.labels:
        table.add(label.value, label.name, label.color)
    result.label_map = LabelMap(labels, volume.geometry, table, name=manifest.title or manifest.name,
                                source=result.source)
    result.device = str(device)
    result.seconds = time.perf_counter() - started
    progress(1.0, f"{manifest.display_name}: done in {result.seconds:.1f} s")
    return result
