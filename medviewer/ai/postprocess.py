"""Turning network outputs into labels, boxes, probabilities: argmax/threshold, components, NMS.

These functions work on NumPy arrays on the model grid and are torch-free, so
training code and tests can use them directly.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medviewer.ai.manifest import OutputSpec
from medviewer.core.detection import Detection
from medviewer.core.errors import ModelError
from medviewer.core.geometry import Geometry


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=axis, keepdims=True)
    return shifted


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))).astype(np.float32)


def labels_from_logits(logits: np.ndarray, spec: OutputSpec) -> np.ndarray:
    """Label values (uint8/uint16, z, y, x) from (channels, z, y, x) network output.

    softmax: channel 0 is background and channel n is ``spec.labels[n-1]``; the label
    is the argmax. sigmoid: channel n is ``spec.labels[n]``; a voxel gets the most
    probable label whose probability exceeds ``spec.threshold``.
    """
    values = np.asarray([0, *spec.label_values])
    dtype = np.uint8 if values.max() < 256 else np.uint16
    if spec.activation == "sigmoid":
        expected = len(spec.labels)
        _check_channels(logits, expected)
        best = np.argmax(logits, axis=0)
        best_logit = np.take_along_axis(logits, best[None], axis=0)[0]
        threshold_logit = np.log(spec.threshold / (1 - spec.threshold)) if 0 < spec.threshold < 1 else (
            -np.inf if spec.threshold <= 0 else np.inf)
        labels = np.where(best_logit > threshold_logit, best + 1, 0)
    else:
        _check_channels(logits, len(spec.labels) + 1)
        labels = np.argmax(logits, axis=0)  # softmax is monotonic: argmax of logits suffices
    return values[labels].astype(dtype)


def _check_channels(output: np.ndarray, expected: int) -> None:
    if output.shape[0] != expected:
        raise ModelError(f"the network returned {output.shape[0]} channels but the manifest's outputs need {expected}")


def keep_largest_components(labels: np.ndarray, values: tuple[int, ...]) -> np.ndarray:
    """Keep only the largest 26-connected piece of each label value in ``values`` (in place)."""
    structure = np.ones((3, 3, 3), dtype=bool)
    for value in values:
        mask = labels == value
        if not mask.any():
            continue
        components, count = ndimage.label(mask, structure=structure)
        if count <= 1:
            continue
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        labels[mask & (components != int(np.argmax(sizes)))] = 0
    return labels


def box_iou(box_a: tuple[np.ndarray, np.ndarray], box_b: tuple[np.ndarray, np.ndarray]) -> float:
    """Intersection over union of two boxes given as (low, high) corner arrays."""
    low = np.maximum(box_a[0], box_b[0])
    high = np.minimum(box_a[1], box_b[1])
    intersection = float(np.prod(np.clip(high - low, 0, None)))
    volume_a = float(np.prod(box_a[1] - box_a[0]))
    volume_b = float(np.prod(box_b[1] - box_b[0]))
    union = volume_a + volume_b - intersection
    return intersection / union if union > 0 else 0.0


def non_max_suppression(detections: list[Detection], geometry: Geometry, iou_threshold: float) -> list[Detection]:
    """Greedy NMS per class: drop boxes overlapping a higher-scored box of the same class by more than ``iou_threshold``."""
    kept: list[Detection] = []
    kept_boxes: list[tuple[str, tuple[np.ndarray, np.ndarray]]] = []
    for detection in sorted(detections, key=lambda d: d.score, reverse=True):
        low, high = detection.index_bounds(geometry)
        box = (low * geometry.spacing, high * geometry.spacing)
        if any(label == detection.label and box_iou(box, other) > iou_threshold for label, other in kept_boxes):
            continue
        kept.append(detection)
        kept_boxes.append((detection.label, box))
    return kept


def detections_from_heatmaps(
    probabilities: np.ndarray,
    grid: Geometry,
    image_geometry: Geometry,
    spec: OutputSpec,
    source: str,
) -> list[Detection]:
    """Boxes from per-class probability maps (classes, z, y, x) on the model ``grid``.

    Each connected region above ``spec.probability_threshold`` becomes one box scored
    by its peak probability. Boxes are returned in world mm, aligned with the axes of
    ``image_geometry`` (the original image): the region's voxel-edge corners are
    mapped to world and then to the image's index space.
    """
    structure = np.ones((3, 3, 3), dtype=bool)
    # Half a model voxel measured along each image axis (the model grid may be rotated against it).
    model_to_image = image_geometry.direction_matrix.T @ grid.direction_matrix
    half_voxel = (np.abs(model_to_image) @ np.asarray(grid.spacing)) / 2.0 / np.asarray(image_geometry.spacing)
    detections: list[Detection] = []
    for channel, class_name in enumerate(spec.classes):
        probability = probabilities[channel]
        components, count = ndimage.label(probability > spec.probability_threshold, structure=structure)
        if count == 0:
            continue
        peaks = ndimage.maximum(probability, components, index=np.arange(1, count + 1))
        for number, (slices, peak) in enumerate(zip(ndimage.find_objects(components), peaks), start=1):
            if peak < spec.score_threshold:
                continue
            # Centres of the region's voxels, from model-grid (z, y, x) to image indices (i, j, k).
            z, y, x = np.nonzero(components[slices] == number)
            model_index = np.stack([x + slices[2].start, y + slices[1].start, z + slices[0].start], axis=1)
            image_index = image_geometry.world_to_index(grid.index_to_world(model_index.astype(float)))
            detection = Detection.from_index_bounds(
                image_geometry, image_index.min(axis=0) - half_voxel, image_index.max(axis=0) + half_voxel,
                label=class_name, score=float(peak), source=source,
            )
            if min(detection.size) < spec.min_size_mm:
                continue
            detections.append(detection)
    detections = non_max_suppression(detections, image_geometry, spec.nms_iou)
    return detections[: spec.max_detections]
