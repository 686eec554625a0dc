"""Annotation datasets as training data: label plans, model-grid arrays, box targets, the validation split.

Cases are read with ``NnUNetDataset`` (which refuses missing files and labels whose
geometry differs from their image, naming the case) and brought to the model grid
with the inference pipeline's own ``prepare_input``, so the network sees the same
input at training and inference time.

Targets are integer arrays on the model grid: 0 background, ``k`` the model's
k-th label (segmentation) or class (detection), ``IGNORE_VALUE`` where the truth is
unknown (a dataset label the model does not predict, a box nobody reviewed).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from medviewer.ai.manifest import ModelManifest
from medviewer.ai.preprocess import prepare_input, resample_labels
from medviewer.ai.tasks import Task
from medviewer.ai.training.config import IGNORE_VALUE
from medviewer.core.detection import Detection, DetectionStatus
from medviewer.core.errors import DatasetError
from medviewer.core.geometry import Geometry
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback
from medviewer.core.volume import Volume
from medviewer.io.nnunet_dataset import NnUNetDataset

#: Box review states that count as truth, as negatives, and as unknown.
POSITIVE_STATUSES = (DetectionStatus.ACCEPTED, DetectionStatus.EDITED)
NEGATIVE_STATUSES = (DetectionStatus.REJECTED,)


def label_key(name: str) -> str:
    """A label or class name in the form names are matched by (case and spacing ignored)."""
    return " ".join(name.lower().replace("_", " ").split())


@dataclass
class LabelPlan:
    """How the dataset's labels become the network's target classes.

    ``class_names[k - 1]`` is target class ``k``; ``model_values[k - 1]`` the label
    value the model writes for it (segmentation). ``dataset_to_class`` maps dataset
    label values to target classes (``IGNORE_VALUE`` for labels the model lacks).
    """

    task: str
    class_names: list[str]
    model_values: list[int]
    dataset_to_class: dict[int, int]
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def classes(self) -> int:
        return len(self.class_names)

    def warnings(self) -> list[str]:
        notes = []
        if self.ignored:
            notes.append(
                f"dataset label(s) {', '.join(map(repr, self.ignored))} are not outputs of the model; "
                "their voxels are left out of the loss"
            )
        if self.missing:
            notes.append(
                f"the dataset has no {', '.join(map(repr, self.missing))} labels; the new model learns to call "
                "those voxels background"
            )
        return notes

    def lookup(self, max_value: int) -> np.ndarray:
        """Dataset value -> target class (values not in dataset.json are ignored)."""
        lut = np.full(max(max_value, *self.dataset_to_class.keys(), 0) + 1, IGNORE_VALUE, dtype=np.uint8)
        lut[0] = 0
        for value, target in self.dataset_to_class.items():
            lut[value] = target
        return lut


def segmentation_plan(dataset_labels: dict[str, int], manifest: ModelManifest) -> LabelPlan:
    """Match dataset labels to the model's output labels by name (case and spacing ignored)."""
    model_labels = manifest.outputs.labels
    by_name = {label_key(label.name): k for k, label in enumerate(model_labels, start=1)}
    mapping, ignored, present = {}, [], set()
    for name, value in dataset_labels.items():
        if value == 0:
            continue
        target = by_name.get(label_key(name))
        if target is None:
            ignored.append(name)
            mapping[int(value)] = IGNORE_VALUE
        else:
            mapping[int(value)] = target
            present.add(target)
    if not present:
        raise DatasetError(
            f"none of the dataset's labels ({', '.join(n for n, v in dataset_labels.items() if v) or 'none'}) is an "
            f"output of {manifest.ref} ({', '.join(l.name for l in model_labels)}); label names must match, "
            "or train from scratch"
        )
    missing = [label.name for k, label in enumerate(model_labels, start=1) if k not in present]
    return LabelPlan(Task.SEGMENTATION, [l.name for l in model_labels], [l.value for l in model_labels], mapping, ignored, missing)


def scratch_plan(dataset_labels: dict[str, int]) -> LabelPlan:
    """Every dataset label becomes a class of a new model (dataset values are kept)."""
    labels = sorted((v, n) for n, v in dataset_labels.items() if v != 0)
    if not labels:
        raise DatasetError("the dataset's dataset.json names no labels besides background")
    return LabelPlan(Task.SEGMENTATION, [n for _, n in labels], [v for v, _ in labels],
                     {v: k for k, (v, _) in enumerate(labels, start=1)})


def detection_plan(manifest: ModelManifest) -> LabelPlan:
    """One target class per detection class (boxes are matched to classes by label name)."""
    classes = list(manifest.outputs.classes)
    return LabelPlan(Task.DETECTION, classes, list(range(1, len(classes) + 1)), {})


def box_class(plan: LabelPlan, detection: Detection) -> int | None:
    """Target class of a box: by label name; a one-class model takes every box."""
    if plan.classes == 1:
        return 1
    keys = [label_key(n) for n in plan.class_names]
    key = label_key(detection.label)
    return keys.index(key) + 1 if key in keys else None


def ellipsoid_mask(detection: Detection, geometry: Geometry, shape_zyx: Sequence[int]) -> tuple[tuple[slice, ...], np.ndarray]:
    """The ellipsoid inscribed in a box, as (block of the image, boolean mask of that block).

    Voxel centres inside ``sum(((index - centre) * spacing / half_size)^2) <= 1`` along
    the image's axes (the box's own axes); at least the voxel holding the centre.
    """
    centre = geometry.world_to_index(detection.center)  # (i, j, k)
    half = np.maximum(np.asarray(detection.size) / 2.0, 1e-6)  # mm along i, j, k
    reach = half / np.asarray(geometry.spacing)
    low = np.maximum(np.floor(centre - reach), 0).astype(int)
    high = np.minimum(np.ceil(centre + reach), np.asarray(shape_zyx[::-1]) - 1).astype(int)
    if np.any(high < low):
        return (slice(0, 0),) * 3, np.zeros((0, 0, 0), bool)
    axes = [(np.arange(lo, hi + 1) - c) * s / h for lo, hi, c, s, h in zip(low, high, centre, geometry.spacing, half)]
    ii, jj, kk = axes
    inside = kk[:, None, None] ** 2 + jj[None, :, None] ** 2 + ii[None, None, :] ** 2 <= 1.0
    nearest = np.clip(np.rint(centre).astype(int), low, high)
    inside[nearest[2] - low[2], nearest[1] - low[1], nearest[0] - low[0]] = True
    block = (slice(low[2], high[2] + 1), slice(low[1], high[1] + 1), slice(low[0], high[0] + 1))
    return block, inside


def box_targets(detections: list[Detection], geometry: Geometry, plan: LabelPlan) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Target and hard-negative arrays on the image grid from reviewed boxes.

    Accepted and edited boxes become their class's ellipsoid; rejected boxes are
    negatives (target 0, remembered as hard negatives for sampling); boxes nobody
    reviewed are unknown (``IGNORE_VALUE``), as are boxes of classes the model lacks.
    """
    target = np.zeros(geometry.shape, np.uint8)
    negatives = np.zeros(geometry.shape, bool)
    notes: list[str] = []
    unknown = [d for d in detections if d.status not in POSITIVE_STATUSES + NEGATIVE_STATUSES]
    for detection in unknown:
        block, inside = ellipsoid_mask(detection, geometry, geometry.shape)
        target[block][inside] = IGNORE_VALUE
    for detection in detections:
        if detection.status in NEGATIVE_STATUSES:
            block, inside = ellipsoid_mask(detection, geometry, geometry.shape)
            region = target[block]
            region[inside & (region == IGNORE_VALUE)] = 0
            negatives[block] |= inside
    for detection in detections:
        if detection.status in POSITIVE_STATUSES:
            block, inside = ellipsoid_mask(detection, geometry, geometry.shape)
            target_class = box_class(plan, detection)
            if target_class is None:
                notes.append(f"box label {detection.label!r} is not a class of the model; left out")
                target[block][inside] = IGNORE_VALUE
            else:
                target[block][inside] = target_class
    return target, negatives, sorted(set(notes))


@dataclass
class TrainingCase:
    """One case on the model grid (``image`` normalised float32, ``target`` uint8, (z, y, x))."""

    case_id: str
    image: np.ndarray
    target: np.ndarray
    grid: Geometry
    background: float
    hard_negatives: np.ndarray | None = None


@dataclass
class EvaluationCase:
    """One validation case on its own grid, for before/after comparisons through the full pipeline."""

    case_id: str
    volume: Volume
    truth: np.ndarray | None = None  # segmentation: model label values
    boxes: list[Detection] = field(default_factory=list)  # detection: accepted/edited boxes


def split_cases(case_ids: Sequence[str], fraction: float, chosen: Sequence[str] | None = None) -> tuple[list[str], list[str], list[str]]:
    """The fixed (training, validation) split and any warnings.

    ``chosen`` names the validation cases; otherwise ``ceil(fraction * n)`` cases with
    the smallest SHA-256 of their id (the same on every run, machine and rank).
    """
    case_ids = sorted(case_ids)
    if not case_ids:
        raise DatasetError("the dataset has no cases (imagesTr is empty)")
    notes = []
    if chosen is not None:
        unknown = sorted(set(chosen) - set(case_ids))
        if unknown:
            raise DatasetError(f"validation case(s) {', '.join(unknown)} are not in the dataset")
        validation = [c for c in case_ids if c in set(chosen)]
    elif len(case_ids) == 1 or fraction <= 0:
        validation = []
    else:
        count = min(len(case_ids) - 1, max(1, math.ceil(fraction * len(case_ids))))
        ranked = sorted(case_ids, key=lambda c: hashlib.sha256(c.encode()).hexdigest())
        validation = sorted(ranked[:count])
    training = [c for c in case_ids if c not in set(validation)]
    if not training:
        raise DatasetError("every case is a validation case; leave at least one for training")
    if not validation:
        validation = list(training)
        notes.append(
            "too few cases for a separate validation set: the training cases are used for validation, "
            "so the before/after comparison is optimistic"
        )
    return training, validation, notes


def check_dataset(dataset: NnUNetDataset) -> None:
    """Refuse a dataset with no cases or with files missing (each problem names its case)."""
    if not dataset.case_ids():
        raise DatasetError("the dataset has no cases (imagesTr is empty)", dataset.root)
    structural = [p for p in dataset.problems(read_files=False) if "is not DatasetNNN_Name" not in p]
    if structural:
        raise DatasetError("the dataset cannot be used for training: " + "; ".join(structural), dataset.root)


def load_case(
    dataset: NnUNetDataset,
    case_id: str,
    manifest: ModelManifest,
    plan: LabelPlan,
    keep_original: bool = False,
) -> tuple[TrainingCase, EvaluationCase | None, list[str]]:
    """A case on the model grid (and, with ``keep_original``, on its own grid for evaluation)."""
    volume, label_map = dataset.load_case(case_id)  # DatasetError naming the case on missing files / geometry
    notes: list[str] = []
    prepared = prepare_input(volume.array, volume.geometry, manifest.input)
    hard = None
    evaluation = None
    if plan.task == Task.SEGMENTATION:
        lut = plan.lookup(int(label_map.array.max()) if label_map.array.size else 0)
        target_full = lut[label_map.array]
        if keep_original:
            values = np.asarray([0, *plan.model_values])
            truth = np.where(target_full == IGNORE_VALUE, 0, target_full)
            dtype = np.uint8 if values.max() < 256 else np.uint16
            evaluation = EvaluationCase(case_id, volume, truth=values[truth].astype(dtype))
    else:
        detections = dataset.load_detections(case_id)
        target_full, negatives, notes = box_targets(detections, volume.geometry, plan)
        hard = resample_labels(negatives.astype(np.uint8), volume.geometry, prepared.grid).astype(bool)
        if keep_original:
            evaluation = EvaluationCase(case_id, volume, boxes=[d for d in detections if d.status in POSITIVE_STATUSES])
    target = resample_labels(target_full, volume.geometry, prepared.grid).astype(np.uint8)
    case = TrainingCase(case_id, prepared.array.astype(np.float32), target, prepared.grid, prepared.background, hard)
    return case, evaluation, notes


def load_cases(
    dataset: NnUNetDataset,
    case_ids: Sequence[str],
    manifest: ModelManifest,
    plan: LabelPlan,
    keep_original: bool = False,
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
) -> tuple[list[TrainingCase], list[EvaluationCase], list[str]]:
    """Several cases (see ``load_case``); notes are de-duplicated."""
    cases, evaluations, notes = [], [], []
    for number, case_id in enumerate(case_ids):
        if cancel is not None:
            cancel.raise_if_cancelled()
        progress(number / max(1, len(case_ids)), f"reading case {case_id}")
        case, evaluation, case_notes = load_case(dataset, case_id, manifest, plan, keep_original)
        cases.append(case)
        if evaluation is not None:
            evaluations.append(evaluation)
        notes += [n for n in case_notes if n not in notes]
    progress(1.0, "")
    return cases, evaluations, notes
