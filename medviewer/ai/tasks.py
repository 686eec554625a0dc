"""Model tasks and everything that differs by task, in one table (MONAI Label's ``InferType`` + stage hooks).

A ``Task`` says what a model produces. ``TASK_HOOKS[task]`` holds each stage that
depends on it:

* manifest: how ``outputs`` in ``model.json`` is read and written, and whether the
  model must see the whole image at once;
* network: how many output channels the manifest implies and whether the output
  keeps the input's spatial size (checked before anything is built from it);
* result: how the network output becomes labels, boxes, probabilities or an image on
  the input's own grid;
* writer: which files ``medviewer infer`` writes;
* UI and training: how the task is named, whether it can be fine-tuned.

Adding a task type means adding a member and its hooks here. ``Task`` is a
``StrEnum``: it is stored in ``model.json`` as its value and compares equal to it.

This module is imported by ``manifest`` (which needs ``Task``), so it imports the
stages it hooks into (manifest types, post-processing, resampling, writers) inside the
hook functions; it stays torch-free so listing models stays cheap.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from medviewer.ai.manifest import ModelManifest, OutputSpec, _Fields
    from medviewer.ai.preprocess import PreparedInput
    from medviewer.ai.results import InferenceResult
    from medviewer.core.geometry import Geometry
    from medviewer.core.volume import Volume


class Task(StrEnum):
    """What a model produces."""

    SEGMENTATION = "segmentation"
    DETECTION = "detection"
    CLASSIFICATION = "classification"
    ENHANCEMENT = "enhancement"


#: ``finish(output, prepared, volume, manifest, result)``: fill ``result`` from the (channels, z, y, x) output.
Finisher = Callable[[np.ndarray, "PreparedInput", "Volume", "ModelManifest", "InferenceResult"], None]
#: ``write(result, prefix, header, manifest, geometry) -> lines to print``: the files ``medviewer infer`` writes
#: beside ``prefix`` for an input of ``geometry``.
Writer = Callable[["InferenceResult", Path, dict, "ModelManifest", "Geometry"], list[str]]


@dataclass(frozen=True)
class TaskHooks:
    """The stages of one task (see the module docstring)."""

    title: str
    parse_outputs: Callable[["_Fields"], "OutputSpec"]
    outputs_to_dict: Callable[["OutputSpec"], dict]
    output_channels: Callable[["OutputSpec"], int]
    spatial_output: bool  # the output is (N, C, z, y, x) on the input window; else (N, C[, ...]) logits
    whole_image_only: bool  # 'inference.mode' must be 'whole'
    trainable: bool  # medviewer's training toolkit can fine-tune it
    finish: Finisher
    write: Writer


# ---------------------------------------------------------------------------- segmentation
def _parse_segmentation(fields: "_Fields") -> "OutputSpec":
    from medviewer.ai.manifest import ACTIVATIONS, LabelSpec, OutputSpec, _short
    from medviewer.core.labels import default_color

    labels = []
    for item in fields.objects("labels"):
        value = item.integer("value", low=1)
        if value > 65535:
            item.fail("value", f"must be <= 65535, got {value}")
        color = item.numbers("color", 3, integer=True, required=False)
        if color is not None and not all(0 <= c <= 255 for c in color):
            item.fail("color", f"must be 3 integers 0..255, got {list(color)}")
        labels.append(LabelSpec(value, item.string("name"), tuple(color) if color else default_color(value)))
    values = [label.value for label in labels]
    if len(set(values)) != len(values):
        fields.fail("labels", f"has repeated label values {values}")
    activation = fields.string("activation", "softmax", choices=ACTIVATIONS)
    keep = fields.data.get("keep_largest_component", [])
    if keep is True:
        keep = values
    if keep is False or keep is None:
        keep = []
    if not isinstance(keep, list) or not all(isinstance(v, int) and v in values for v in keep):
        fields.fail("keep_largest_component", f"must be true, false or a list of label values from 'labels', got {_short(keep)}")
    return OutputSpec(
        labels=tuple(labels),
        activation=activation,
        threshold=fields.number("threshold", 0.5, low=0.0, high=1.0),
        keep_largest_component=tuple(keep),
    )


def _segmentation_to_dict(outputs: "OutputSpec") -> dict:
    return {
        "labels": [{"value": l.value, "name": l.name, "color": list(l.color)} for l in outputs.labels],
        "activation": outputs.activation,
        "threshold": outputs.threshold,
        "keep_largest_component": list(outputs.keep_largest_component),
    }


def _segmentation_channels(outputs: "OutputSpec") -> int:
    # softmax: channel 0 is the background; sigmoid: one channel per label
    return len(outputs.labels) + (1 if outputs.activation == "softmax" else 0)


def _finish_segmentation(output, prepared, volume, manifest, result) -> None:
    from medviewer.ai.postprocess import keep_largest_components, labels_from_logits
    from medviewer.ai.preprocess import resample_labels
    from medviewer.core.labels import LabelMap, LabelTable

    outputs = manifest.outputs
    labels = labels_from_logits(output, outputs)
    if outputs.keep_largest_component:
        keep_largest_components(labels, outputs.keep_largest_component)
    labels = resample_labels(labels, prepared.grid, volume.geometry)
    table = LabelTable()
    for label in outputs.labels:
        table.add(label.value, label.name, label.color)
    result.label_map = LabelMap(labels, volume.geometry, table, name=manifest.title or manifest.name,
                                source=result.source)


def _write_segmentation(result, prefix: Path, header: dict, manifest, geometry) -> list[str]:
    from medviewer.io import write_label_map
    from medviewer.io.atomic import atomic_write_text

    label_map = result.label_map
    target = prefix.with_name(prefix.name + "_labels.nii.gz")
    write_label_map(label_map, target)
    table = {value: info.name for value, info in label_map.table.items()}
    counts = {table[v]: label_map.voxel_count(v) for v in label_map.present_values() if v in table}
    summary = {**header, "labels": label_map.table.to_dict(), "voxel_counts": counts}
    atomic_write_text(target.with_name(prefix.name + "_labels.json"), json.dumps(summary, indent=2) + "\n")
    return [f"wrote {target} ({', '.join(f'{n}: {c} voxels' for n, c in counts.items()) or 'no labels found'})"]


# ---------------------------------------------------------------------------- detection
def _parse_detection(fields: "_Fields") -> "OutputSpec":
    from medviewer.ai.manifest import OutputSpec

    return OutputSpec(
        classes=fields.strings("classes"),
        activation="sigmoid",
        probability_threshold=fields.number("probability_threshold", 0.5, low=0.0, high=1.0),
        score_threshold=fields.number("score_threshold", 0.1, low=0.0, high=1.0),
        nms_iou=fields.number("nms_iou", 0.1, low=0.0, high=1.0),
        max_detections=fields.integer("max_detections", 50, low=1),
        min_size_mm=fields.number("min_size_mm", 0.0, low=0.0),
    )


def _detection_to_dict(outputs: "OutputSpec") -> dict:
    return {
        "classes": list(outputs.classes),
        "probability_threshold": outputs.probability_threshold,
        "score_threshold": outputs.score_threshold,
        "nms_iou": outputs.nms_iou,
        "max_detections": outputs.max_detections,
        "min_size_mm": outputs.min_size_mm,
    }


def _class_channels(outputs: "OutputSpec") -> int:
    return len(outputs.classes)


def _finish_detection(output, prepared, volume, manifest, result) -> None:
    from medviewer.ai.postprocess import detections_from_heatmaps, sigmoid

    result.detections = detections_from_heatmaps(
        sigmoid(output), prepared.grid, volume.geometry, manifest.outputs, result.source
    )


def _write_detection(result, prefix: Path, header: dict, manifest, geometry) -> list[str]:
    from medviewer.io.atomic import atomic_write_text

    target = prefix.with_name(prefix.name + "_detections.json")
    detections = [d.to_dict(geometry) for d in result.detections]
    atomic_write_text(target, json.dumps({**header, "detections": detections}, indent=2) + "\n")
    return [f"wrote {target} ({len(detections)} detection(s))"]


# ---------------------------------------------------------------------------- classification
def _parse_classification(fields: "_Fields") -> "OutputSpec":
    from medviewer.ai.manifest import OutputSpec

    return OutputSpec(
        classes=fields.strings("classes"),
        activation=fields.string("activation", "softmax", choices=("softmax", "sigmoid")),
    )


def _classification_to_dict(outputs: "OutputSpec") -> dict:
    return {"classes": list(outputs.classes), "activation": outputs.activation}


def _finish_classification(output, prepared, volume, manifest, result) -> None:
    from medviewer.ai.postprocess import sigmoid, softmax

    outputs = manifest.outputs
    # Logits per position (N, C, ...) are averaged over the positions.
    logits = output.reshape(output.shape[0], -1).mean(axis=1) if output.ndim > 1 else output
    probabilities = softmax(logits.astype(np.float64)) if outputs.activation == "softmax" else sigmoid(logits)
    result.probabilities = {name: float(p) for name, p in zip(outputs.classes, probabilities)}


def _write_classification(result, prefix: Path, header: dict, manifest, geometry) -> list[str]:
    from medviewer.io.atomic import atomic_write_text

    target = prefix.with_name(prefix.name + "_probabilities.json")
    atomic_write_text(target, json.dumps({**header, "probabilities": result.probabilities}, indent=2) + "\n")
    best = max(result.probabilities.items(), key=lambda kv: kv[1])
    return [f"wrote {target} (most likely {best[0]}: {best[1]:.3f})"]


# ---------------------------------------------------------------------------- enhancement
def _parse_enhancement(fields: "_Fields") -> "OutputSpec":
    from medviewer.ai.manifest import OutputSpec

    value_range = fields.numbers("value_range", 2, required=False)
    if value_range is not None and value_range[1] <= value_range[0]:
        fields.fail("value_range", f"must be (low, high) with low < high, got {list(value_range)}")
    return OutputSpec(
        image_name=fields.string("image_name", "enhanced"),
        denormalize=fields.boolean("denormalize", True),
        value_range=value_range,
    )


def _enhancement_to_dict(outputs: "OutputSpec") -> dict:
    return {
        "image_name": outputs.image_name,
        "denormalize": outputs.denormalize,
        "value_range": list(outputs.value_range) if outputs.value_range else None,
    }


def _one_channel(outputs: "OutputSpec") -> int:
    return 1


def _finish_enhancement(output, prepared, volume, manifest, result) -> None:
    from medviewer.ai.preprocess import resample_image
    from medviewer.core.volume import Volume

    outputs = manifest.outputs
    image = output[0]
    values = prepared.intensity.invert(image) if outputs.denormalize else image.astype(np.float32)
    values = resample_image(values, prepared.grid, volume.geometry, antialias=False)
    if outputs.value_range is not None:
        np.clip(values, outputs.value_range[0], outputs.value_range[1], out=values)
    if np.issubdtype(volume.array.dtype, np.integer):
        info = np.iinfo(volume.array.dtype)
        values = np.clip(np.rint(values), info.min, info.max).astype(volume.array.dtype)
    description = f"{volume.metadata.series_description or volume.name} - {outputs.image_name} ({result.source})"
    metadata = replace(volume.metadata, series_description=description, warnings=list(volume.metadata.warnings),
                       extra={**volume.metadata.extra, "derived_from_model": result.source})
    result.volume = Volume(values, volume.geometry, modality=volume.modality, metadata=metadata, name=description)


def _write_enhancement(result, prefix: Path, header: dict, manifest, geometry) -> list[str]:
    from medviewer.io import write_volume

    image_name = re.sub(r"[^A-Za-z0-9._-]+", "_", manifest.outputs.image_name) or "enhanced"
    target = prefix.with_name(f"{prefix.name}_{image_name}.nii.gz")
    write_volume(result.volume, target)
    return [f"wrote {target}"]


# ---------------------------------------------------------------------------- the table
TASK_HOOKS: dict[Task, TaskHooks] = {
    Task.SEGMENTATION: TaskHooks(
        title="segmentation", parse_outputs=_parse_segmentation, outputs_to_dict=_segmentation_to_dict,
        output_channels=_segmentation_channels, spatial_output=True, whole_image_only=False, trainable=True,
        finish=_finish_segmentation, write=_write_segmentation,
    ),
    Task.DETECTION: TaskHooks(
        title="detection", parse_outputs=_parse_detection, outputs_to_dict=_detection_to_dict,
        output_channels=_class_channels, spatial_output=True, whole_image_only=False, trainable=True,
        finish=_finish_detection, write=_write_detection,
    ),
    Task.CLASSIFICATION: TaskHooks(
        title="classification", parse_outputs=_parse_classification, outputs_to_dict=_classification_to_dict,
        output_channels=_class_channels, spatial_output=False, whole_image_only=True, trainable=False,
        finish=_finish_classification, write=_write_classification,
    ),
    Task.ENHANCEMENT: TaskHooks(
        title="image enhancement", parse_outputs=_parse_enhancement, outputs_to_dict=_enhancement_to_dict,
        output_channels=_one_channel, spatial_output=True, whole_image_only=False, trainable=False,
        finish=_finish_enhancement, write=_write_enhancement,
    ),
}


def task_hooks(task: Task | str) -> TaskHooks:
    """The hooks of ``task`` (a ``Task`` or its value)."""
    return TASK_HOOKS[Task(task)]


def trainable_tasks() -> tuple[Task, ...]:
    """Tasks medviewer's training toolkit can fine-tune."""
    return tuple(task for task in Task if TASK_HOOKS[task].trainable)

