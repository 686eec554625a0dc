"""Train the built-in CT lung (and chest structures) segmentation demo model.

    python -m medviewer.ai.demo_models.lung_seg [--minutes 15] [--iterations 600]

A MONAI UNet at 2.5 mm trained on synthetic chest CT phantoms (seeds 1000-1023,
"standard" variant) rendered on the demo CT grid (512 x 512 x 200, 0.7 x 0.7 x 1.5 mm)
and brought to the model grid by the inference pipeline's own preprocessing. It is
evaluated on held-out phantoms (seeds 9000-9005) through the full pipeline (model grid
and back to the original grid). Writes resources/models/ct-lung-seg/.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from scipy import ndimage

from medviewer.ai.architectures import build_architecture
from medviewer.ai.demo_models import common
from medviewer.ai.manifest import ModelManifest
from medviewer.ai.registry import ModelPackage
from medviewer.ai.training.losses import SegmentationLoss
from medviewer.ai.training.metrics import dice_per_label, mean_scores
from medviewer.ai.training.package import markdown_table
from medviewer.ai.training.sampling import PatchSampler
from medviewer.demo.phantom_tissues import LABEL_COLORS

NAME = "ct-lung-seg"
VERSION = "1.0.0"
SEED = 7
#: Phantom label values the model predicts (the nodules are counted as lung of their side).
LABELS = {1: "right lung", 2: "left lung", 4: "heart", 5: "aorta", 6: "airway", 7: "spine", 8: "ribs and sternum"}
ARGUMENTS = {
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": len(LABELS) + 1,
    "channels": [16, 32, 64, 128],
    "strides": [2, 2, 2],
    "num_res_units": 1,
}
TRAIN_PATCH = (80, 80, 80)


def manifest(metrics: dict | None = None, training_data: str = "", created: str | None = None) -> ModelManifest:
    return ModelManifest.from_dict({
        "name": NAME,
        "version": VERSION,
        "title": "CT lungs and chest structures (demo)",
        "description": "Right and left lung, heart, aorta, airway, spine and ribs on chest CT. "
                       "Trained on synthetic phantoms only: a demonstration, not a medical device.",
        "task": "segmentation",
        "modality": ["CT"],
        "input": {
            "channels": 1,
            "spacing": [2.5, 2.5, 2.5],
            "orientation": "LPS",
            "normalization": {"method": "ct_window", "window": [-1000, 1000], "output_range": [0, 1], "clip": True},
        },
        "inference": {"mode": "sliding_window", "patch_size": [144, 144, 64], "overlap": 0.25, "batch_size": 1,
                      "blend": "gaussian"},
        "outputs": {
            "labels": [{"value": v, "name": n, "color": list(LABEL_COLORS[v])} for v, n in LABELS.items()],
            "activation": "softmax",
            "keep_largest_component": [1, 2, 4, 5],  # vertebrae and ribs are separate pieces
        },
        "runtime": {"type": "builtin", "file": "weights.pt", "architecture": "monai.UNet", "arguments": ARGUMENTS},
        "provenance": common.provenance(NAME, metrics, training_data,
                                        "synthetic chest CT phantoms (medviewer.demo.phantoms)", created),
    })


def lungs_with_nodules(labels: np.ndarray) -> np.ndarray:
    """Labels with nodule voxels given to the nearest lung (lung masks include their nodules)."""
    labels = labels.copy()
    nodule = labels == 3
    if nodule.any():
        lung = (labels == 1) | (labels == 2)
        _, nearest = ndimage.distance_transform_edt(~lung, return_indices=True)
        labels[nodule] = labels[tuple(index[nodule] for index in nearest)]
    return labels


def channel_targets(labels: np.ndarray) -> np.ndarray:
    """Phantom label values -> softmax channel indices (0 background)."""
    lut = np.zeros(256, dtype=np.uint8)
    for channel, value in enumerate(LABELS, start=1):
        lut[value] = channel
    return lut[lungs_with_nodules(labels)]


def make_training_arrays(seed: int, model: ModelManifest) -> dict[str, np.ndarray]:
    """Normalised image and channel targets of one phantom on the model grid."""
    case = common.generate_case(seed)
    prepared, labels = common.to_model_grid(case.volume.array, case.labels.array, case.volume.geometry, model)
    return {"image": prepared.array.astype(np.float32), "target": channel_targets(labels)}


def ground_truth_full_resolution(case) -> np.ndarray:
    """The phantom's labels restricted to ``LABELS``, nodules counted as lung of their side."""
    truth = case.labels.array.copy()
    for detection, spec in zip(case.nodules, case.nodule_specs):
        low, high = detection.voxel_box(case.volume.geometry)
        block = tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(low[::-1], high[::-1]))
        region = truth[block]
        region[region == 3] = 1 if spec.side < 0 else 2
    truth[~np.isin(truth, list(LABELS))] = 0
    return truth


def evaluate(package: ModelPackage, seeds) -> dict:
    """Dice per structure on held-out phantoms through the full pipeline (``medviewer.ai.training.metrics``).

    A structure missing from both the truth and the prediction of a case has no Dice
    and is left out of that structure's mean and minimum (as in fine-tuning reports).
    """
    from medviewer.ai.pipeline import ModelRunner

    runner = ModelRunner(package)
    per_case: list[dict[str, float | None]] = []
    seconds = []
    for seed in seeds:
        case = common.generate_case(seed)
        result = runner.run(case.volume)
        seconds.append(result.seconds)
        scores = dice_per_label(result.label_map.array, ground_truth_full_resolution(case), list(LABELS))
        per_case.append({LABELS[v]: score for v, score in scores.items()})
        common.log(f"held-out seed {seed}: " + ", ".join(
            f"{name} {'n/a' if d is None else f'{d:.3f}'}" for name, d in per_case[-1].items()))
    worst = {}
    for name in LABELS.values():
        defined = [case[name] for case in per_case if case[name] is not None]
        worst[name] = round(float(np.min(defined)), 4) if defined else None
    return {
        "dice_mean": mean_scores(per_case),
        "dice_min": worst,
        "held_out_seeds": [int(s) for s in seeds],
        "seconds_per_case_cpu": round(float(np.median(seconds)), 2),
    }


def model_card(metrics: dict, train_seeds, iterations: int, minutes: float, package: ModelManifest) -> str:
    rows = [(name, _score(metrics["dice_mean"][name]), _score(metrics["dice_min"][name])) for name in LABELS.values()]
    return f"""# CT lungs and chest structures (demo) - {NAME} {VERSION}

Segments the **right lung, left lung, heart, aorta, airway, spine and ribs/sternum** on
chest CT. A small MONAI `UNet` (channels 16-32-64-128, one residual unit per level,
{sum(p.numel() for p in build_architecture('monai.UNet', ARGUMENTS).parameters()):,} parameters) at 2.5 mm isotropic
spacing in LPS orientation, intensities windowed to -1000..1000 HU.

**Demonstration model trained on synthetic data only. Not for clinical use.**

## Training data
{len(train_seeds)} synthetic chest CT phantoms (`medviewer.demo.phantoms`, variant
"standard", seeds {min(train_seeds)}-{max(train_seeds)}) rendered on the demo CT grid
(512 x 512 x 200 at 0.7 x 0.7 x 1.5 mm) and resampled to the model grid with the
inference pipeline's own preprocessing. Nodules are counted as part of the lung of their
side. Patches of 80^3 voxels (half centred on a labelled voxel), Dice + cross-entropy
loss, Adam with cosine decay, {iterations} iterations (~{minutes:.0f} min on 2 CPU cores),
random contrast/brightness/noise augmentation. The "dense_lungs" variant was **not**
used (it is kept for the fine-tuning demonstration).

## Metrics (held-out phantoms, seeds {metrics['held_out_seeds'][0]}-{metrics['held_out_seeds'][-1]})
Dice on the original 0.7 x 0.7 x 1.5 mm grid, after the full pipeline (resampling to
2.5 mm and back with nearest neighbour), computed as in fine-tuning reports
(`medviewer.ai.training.metrics`; a structure absent from both truth and prediction
would be left out, not counted as 1):

{markdown_table(rows, ["structure", "mean Dice", "worst case"])}

CPU inference on one 512 x 512 x 200 phantom: about {metrics['seconds_per_case_cpu']} s (median).

## Limitations
Synthetic anatomy is much simpler than real patients (no pathology besides nodules, no
motion, no contrast agent variation, idealised noise). Expect poor results on real
scans. Label boundaries come back at 2.5 mm resolution.

{common.card_footer(NAME, metrics, SEED)}"""


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def training_step(network: torch.nn.Module, seeds: list[int], draft: ModelManifest, batch: int,
                  generator: torch.Generator) -> Callable[[int], torch.Tensor]:
    cases = []
    for seed in seeds:
        cases.append(common.cached_arrays(NAME, seed, lambda s: make_training_arrays(s, draft)))
        common.log(f"training case {seed} ready: {cases[-1]['image'].shape}")
    sampler = PatchSampler([c["image"] for c in cases], [c["target"] for c in cases], TRAIN_PATCH,
                           foreground_fraction=0.5, seed=SEED)
    # No flips: they would swap the left and right lung.
    return common.patch_step(network, sampler, SegmentationLoss(len(LABELS), "softmax"), batch, generator)


MODEL = common.DemoModel(
    name=NAME, description=__doc__.splitlines()[0], seed=SEED, architecture="monai.UNet", arguments=ARGUMENTS,
    manifest=manifest, training_step=training_step, evaluate=evaluate, model_card=model_card,
    training_data=common.phantom_training_data, summary=lambda metrics: str(metrics["dice_mean"]),
    iterations=1200, minutes=20.0, train_cases=24, held_out=6, batch=2, learning_rate=3e-3, loss_digits=4,
)


def main(argv=None) -> int:
    return common.main(MODEL, argv)


if __name__ == "__main__":
    raise SystemExit(main())
