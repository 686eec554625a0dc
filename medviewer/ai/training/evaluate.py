"""Validation: quick scores on the model grid after each epoch, and the full-pipeline before/after comparison.

The per-epoch score runs the network in sliding windows over the validation images
already on the model grid (cheap: no resampling). The before/after comparison runs
the base package and the new package through ``ModelRunner`` exactly as the app does
(model grid and back to each case's own grid), so the numbers describe what a user
will see.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from medviewer.ai.pipeline import ModelRunner, fit_roi_to_image
from medviewer.ai.registry import ModelPackage
from medviewer.ai.tasks import Task
from medviewer.ai.training.config import IGNORE_VALUE
from medviewer.ai.training.data import EvaluationCase, LabelPlan, TrainingCase, label_key
from medviewer.ai.training.metrics import detection_scores, dice_per_label, mean_of, mean_scores
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback


@torch.no_grad()
def model_grid_scores(
    network: torch.nn.Module,
    cases: list[TrainingCase],
    plan: LabelPlan,
    roi_zyx: tuple[int, int, int],
    device: torch.device,
    activation: str,
    threshold: float = 0.5,
    cancel: CancelToken | None = None,
) -> tuple[dict[str, float | None], float | None]:
    """Dice per class (name -> value) of ``network`` on model-grid validation cases, and their mean.

    Segmentation: argmax (softmax) or the most probable label above ``threshold``
    (sigmoid). Detection: the heat map above ``threshold`` against the box ellipsoids.
    """
    was_training = network.training
    network.eval()
    per_case = []
    try:
        for case in cases:
            if cancel is not None:
                cancel.raise_if_cancelled()
            image = torch.from_numpy(np.ascontiguousarray(case.image))[None, None].to(device)
            roi = fit_roi_to_image(tuple(roi_zyx), tuple(image.shape[2:]))

            def predict(batch: torch.Tensor) -> torch.Tensor:
                if cancel is not None:
                    cancel.raise_if_cancelled()
                out = network(batch)
                return (out[0] if isinstance(out, (list, tuple)) else out).float()

            logits = sliding_window_inference(image, roi, 1, predict, overlap=0.25, mode="gaussian",
                                              cval=case.background)[0].cpu().numpy()
            if activation == "softmax":
                prediction = np.argmax(logits, axis=0)
            else:
                best = np.argmax(logits, axis=0)
                best_logit = np.take_along_axis(logits, best[None], axis=0)[0]
                limit = float(np.log(threshold / (1 - threshold))) if 0 < threshold < 1 else 0.0
                prediction = np.where(best_logit > limit, best + 1, 0)
            known = case.target != IGNORE_VALUE
            scores = dice_per_label(prediction, case.target, range(1, plan.classes + 1), known)
            per_case.append({plan.class_names[k - 1]: v for k, v in scores.items()})
    finally:
        network.train(was_training)
    scores = mean_scores(per_case)
    return scores, mean_of(scores)


def evaluate_package(
    package: ModelPackage,
    cases: list[EvaluationCase],
    plan: LabelPlan,
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
    device: str = "auto",
) -> dict:
    """Before/after metrics of ``package`` on the validation cases through the full inference pipeline.

    Segmentation: Dice per label name (the package's labels are matched to the plan's
    by name; a label the package does not predict scores as missing). Detection:
    sensitivity and false positives per scan at the package's operating point.
    """
    from medviewer.ai.results import InferenceOptions

    runner = ModelRunner(package)
    options = InferenceOptions(device=device)
    per_case = []
    per_scan = []
    seconds = []
    for number, case in enumerate(cases):
        if cancel is not None:
            cancel.raise_if_cancelled()
        progress(number / max(1, len(cases)), f"{package.manifest.display_name}: validation case {case.case_id}")
        result = runner.run(case.volume, cancel=cancel, options=options)
        seconds.append(result.seconds)
        if plan.task == Task.SEGMENTATION:
            predicted = result.label_map.array if result.label_map is not None else np.zeros(case.volume.geometry.shape, np.uint8)
            package_values = {label_key(label.name): label.value for label in package.manifest.outputs.labels}
            scores = {}
            for name, value in zip(plan.class_names, plan.model_values):
                truth = case.truth == value
                mine = package_values.get(label_key(name))
                prediction = predicted == mine if mine is not None else np.zeros_like(truth)
                scores[name] = dice_per_label(prediction.astype(np.uint8), truth.astype(np.uint8), [1])[1]
            per_case.append(scores)
        else:
            per_scan.append((list(result.detections), case.boxes, case.volume.geometry))
    progress(1.0, "")
    summary: dict = {"model": package.ref, "cases": [c.case_id for c in cases],
                     "seconds_per_case": round(float(np.median(seconds)), 2) if seconds else None}
    if plan.task == Task.SEGMENTATION:
        dice = mean_scores(per_case)
        summary.update(dice=dice, mean_dice=mean_of(dice),
                       dice_per_case={c.case_id: s for c, s in zip(cases, per_case)})
    else:
        summary.update(detection_scores(per_scan))
    return summary
