"""Validation metrics, torch-free: Dice per label, box sensitivity / false positives per scan, FROC of nodule
centres, masked RMSE.

The one definition of each, used by fine-tuning (``evaluate``) and by the demo-model
scripts' model cards alike, so both score a model the same way.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from medviewer.core.detection import Detection
from medviewer.core.geometry import Geometry


def dice(prediction: np.ndarray, truth: np.ndarray) -> float | None:
    """Dice coefficient of two boolean masks; ``None`` when both are empty (nothing to compare).

    Not 1.0 for two empty masks: a structure absent from a case says nothing about
    the model, and averages (``mean_scores``) leave such cases out.
    """
    total = int(np.count_nonzero(prediction)) + int(np.count_nonzero(truth))
    if total == 0:
        return None
    return 2.0 * int(np.count_nonzero(np.logical_and(prediction, truth))) / total


def dice_per_label(prediction: np.ndarray, truth: np.ndarray, values: Sequence[int],
                   known: np.ndarray | None = None) -> dict[int, float | None]:
    """Dice of each label value (voxels outside ``known`` are left out)."""
    if known is not None:
        prediction, truth = prediction[known], truth[known]
    return {int(v): dice(prediction == v, truth == v) for v in values}


def mean_scores(per_case: list[dict[str, float | None]]) -> dict[str, float | None]:
    """Mean over cases of each label's Dice, skipping cases where it was undefined."""
    names = list(per_case[0]) if per_case else []
    result: dict[str, float | None] = {}
    for name in names:
        values = [case[name] for case in per_case if case.get(name) is not None]
        result[name] = round(float(np.mean(values)), 4) if values else None
    return result


def mean_of(scores: dict[str, float | None]) -> float | None:
    values = [v for v in scores.values() if v is not None]
    return round(float(np.mean(values)), 4) if values else None


def box_hits(found: Detection, truth: Detection, geometry: Geometry, tolerance_mm: float = 1.5) -> bool:
    """A detection finds a true box when its centre lies inside that box (grown by ``tolerance_mm``).

    Measured along the image's axes. A detection much larger than the finding (a box
    around half the chest) does not count, as its centre lies elsewhere.
    """
    centre = geometry.world_to_index(found.center)
    low, high = truth.index_bounds(geometry)
    margin = tolerance_mm / np.asarray(geometry.spacing)
    return bool(np.all(centre >= low - margin) and np.all(centre <= high + margin))


def detection_scores(per_scan: list[tuple[list[Detection], list[Detection], Geometry]]) -> dict[str, float | int]:
    """Sensitivity and false positives per scan over ``(detections, true boxes, geometry)`` triples.

    Each true box counts once however many detections hit it; a detection hitting no
    true box is a false positive.
    """
    found = total = false_positives = 0
    for detections, truths, geometry in per_scan:
        total += len(truths)
        hit = set()
        for detection in detections:
            matches = [n for n, truth in enumerate(truths) if box_hits(detection, truth, geometry)]
            if matches:
                hit.update(matches)
            else:
                false_positives += 1
        found += len(hit)
    scans = max(1, len(per_scan))
    return {
        "sensitivity": round(found / total, 4) if total else None,
        "false_positives_per_scan": round(false_positives / scans, 3),
        "boxes": total,
        "found": found,
        "scans": len(per_scan),
    }


def centre_hits(centre: Sequence[float], nodule: dict) -> bool:
    """A detection centre (world mm) hits a round finding when it lies within its radius (at least 3 mm).

    ``nodule`` holds ``center`` (world mm) and ``diameter_mm`` (LUNA16's rule).
    """
    distance = float(np.linalg.norm(np.asarray(centre, float) - np.asarray(nodule["center"], float)))
    return distance <= max(nodule["diameter_mm"] / 2.0, 3.0)


def froc_points(per_scan: list[tuple[list[tuple[float, np.ndarray]], list[dict]]],
                fp_rates: Sequence[float] = (0.125, 0.25, 0.5, 1, 2, 4, 8)) -> dict[float, float]:
    """Sensitivity at given false positives per scan (LUNA16-style FROC).

    ``per_scan`` holds, for each scan, its detections as (score, centre world mm) and
    its true findings (``center``, ``diameter_mm``). A detection hits the nearest
    finding it lies in (``centre_hits``); several hits on one finding count once, and
    a detection hitting nothing is a false positive.
    """
    candidates = []  # (score, scan, finding index or -1)
    total = 0
    for scan, (detections, nodules) in enumerate(per_scan):
        total += len(nodules)
        for score, centre in detections:
            hit, best = -1, np.inf
            for n, nodule in enumerate(nodules):
                distance = float(np.linalg.norm(np.asarray(centre) - np.asarray(nodule["center"])))
                if centre_hits(centre, nodule) and distance < best:
                    hit, best = n, distance
            candidates.append((score, scan, hit))
    candidates.sort(key=lambda c: -c[0])
    scans = max(1, len(per_scan))
    found: set[tuple[int, int]] = set()
    false_positives = 0
    curve = [(0.0, 0.0)]  # (FP per scan, sensitivity)
    for _score, scan, hit in candidates:
        if hit < 0:
            false_positives += 1
        else:
            found.add((scan, hit))
        curve.append((false_positives / scans, len(found) / max(1, total)))
    return {rate: max(s for fp, s in curve if fp <= rate) for rate in fp_rates}


def masked_rmse(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """Root-mean-square difference of two images inside ``mask`` (in the images' units, e.g. HU)."""
    difference = image.astype(np.float64)[mask] - reference.astype(np.float64)[mask]
    return float(np.sqrt(np.mean(difference**2)))
