"""Train the built-in CT lung nodule detection demo model.

    python -m medviewer.ai.demo_models.nodule_det [--minutes 15] [--iterations 900]

Design: a MONAI UNet at 2 mm predicts a nodule probability map (one sigmoid
channel); the pipeline turns each connected region above a probability threshold into
a 3D box scored by its peak probability, then applies score threshold and NMS (see
``medviewer.ai.postprocess.detections_from_heatmaps``). This segmentation-then-boxes
design is simple, fast on a CPU and well suited to roundish lesions.

Trained on synthetic chest CT phantoms (seeds 1000-1023, "standard") rendered on the
demo CT grid; evaluated with FROC on held-out phantoms (seeds 9000-9009) through the
full pipeline. Writes resources/models/ct-nodule-det/.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch

from medviewer.ai.demo_models import common
from medviewer.ai.manifest import ModelManifest
from medviewer.ai.registry import ModelPackage
from medviewer.ai.training.losses import DetectionLoss
from medviewer.ai.training.metrics import centre_hits, froc_points
from medviewer.ai.training.package import markdown_table
from medviewer.ai.training.sampling import PatchSampler

NAME = "ct-nodule-det"
VERSION = "1.0.0"
SEED = 11
ARGUMENTS = {
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 1,
    "channels": [16, 32, 64, 128],
    "strides": [2, 2, 2],
    "num_res_units": 1,
}
TRAIN_PATCH = (64, 64, 64)
SPACING_MM = 2.0
#: Operating point shipped in the manifest (candidates below are dropped).
PROBABILITY_THRESHOLD = 0.5
SCORE_THRESHOLD = 0.5


def manifest(metrics: dict | None = None, training_data: str = "", created: str | None = None,
             probability_threshold: float = PROBABILITY_THRESHOLD, score_threshold: float = SCORE_THRESHOLD) -> ModelManifest:
    return ModelManifest.from_dict({
        "name": NAME,
        "version": VERSION,
        "title": "CT lung nodules (demo)",
        "description": "3D boxes around lung nodules on chest CT, scored 0..1. "
                       "Trained on synthetic phantoms only: a demonstration, not a medical device.",
        "task": "detection",
        "modality": ["CT"],
        "input": {
            "channels": 1,
            "spacing": [SPACING_MM] * 3,
            "orientation": "LPS",
            "normalization": {"method": "ct_window", "window": [-1000, 400], "output_range": [0, 1], "clip": True},
        },
        "inference": {"mode": "sliding_window", "patch_size": [128, 128, 128], "overlap": 0.25, "batch_size": 1,
                      "blend": "gaussian"},
        "outputs": {
            "classes": ["nodule"],
            "probability_threshold": probability_threshold,
            "score_threshold": score_threshold,
            "nms_iou": 0.1,
            "max_detections": 30,
            "min_size_mm": 2.0,
        },
        "runtime": {"type": "builtin", "file": "weights.pt", "architecture": "monai.UNet", "arguments": ARGUMENTS},
        "provenance": common.provenance(NAME, metrics, training_data,
                                        "synthetic chest CT phantoms (medviewer.demo.phantoms)", created),
    })


def make_training_arrays(seed: int, model: ModelManifest) -> dict[str, np.ndarray]:
    """Image and nodule mask on the model grid, cropped to the lungs (nodules only occur there) plus a margin."""
    case = common.generate_case(seed)
    prepared, labels = common.to_model_grid(case.volume.array, case.labels.array, case.volume.geometry, model)
    lungs = np.isin(labels, (1, 2, 3))
    margin = 12
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(lungs.any(axis=other))
        box.append(slice(max(0, hits[0] - margin), min(labels.shape[axis], hits[-1] + 1 + margin)))
    box = tuple(box)
    # Hard negatives: vessels and other dense tissue inside the lungs (what nodules are confused with).
    low, high = model.input.normalization.window
    hard = np.isin(labels, (1, 2)) & (prepared.array > (-500.0 - low) / (high - low))  # denser than -500 HU
    return {"image": prepared.array[box].astype(np.float16), "target": (labels[box] == 3).astype(np.uint8),
            "hard": hard[box].astype(np.uint8)}


def nodule_truth(case) -> list[dict]:
    return [{"center": record["nodule_center_mm"], "diameter_mm": record["diameter_mm"]} for record in case.nodule_records()]


def evaluate(package: ModelPackage, seeds) -> dict:
    """FROC on held-out phantoms: all candidates (low thresholds), then the shipped operating point."""
    from medviewer.ai.pipeline import ModelRunner

    permissive = dataclasses.replace(
        package.manifest,
        outputs=dataclasses.replace(package.manifest.outputs, probability_threshold=0.2, score_threshold=0.2,
                                    max_detections=100),
    )
    runner = ModelRunner(dataclasses.replace(package, manifest=permissive))
    per_scan = []
    seconds = []
    nodules_total = 0
    for seed in seeds:
        case = common.generate_case(seed)
        result = runner.run(case.volume)
        seconds.append(result.seconds)
        truth = nodule_truth(case)
        nodules_total += len(truth)
        detections = [(d.score, np.asarray(d.center)) for d in result.detections]
        per_scan.append((detections, truth))
        common.log(f"held-out seed {seed}: {len(truth)} nodules, {len(detections)} candidates")
    threshold = package.manifest.outputs.score_threshold  # the package's own operating point
    froc = froc_points(per_scan)
    operating = froc_points(
        [([(s, c) for s, c in dets if s >= threshold], truth) for dets, truth in per_scan], fp_rates=(1e9,)
    )[1e9]
    false_positives = sum(
        sum(1 for s, c in dets if s >= threshold and not _hits(c, truth)) for dets, truth in per_scan
    ) / len(per_scan)
    by_size = _sensitivity_by_size(per_scan, threshold)
    return {
        "froc_sensitivity": {f"{rate:g} FP/scan": round(value, 3) for rate, value in froc.items()},
        "sensitivity_at_1_fp_per_scan": round(froc[1], 3),
        "sensitivity_at_4_fp_per_scan": round(froc[4], 3),
        "operating_point": {"score_threshold": threshold, "sensitivity": round(operating, 3),
                            "false_positives_per_scan": round(false_positives, 2)},
        "sensitivity_by_diameter_at_operating_point": by_size,
        "held_out_scans": len(seeds),
        "held_out_nodules": nodules_total,
        "held_out_seeds": [int(s) for s in seeds],
        "seconds_per_case_cpu": round(float(np.median(seconds)), 2),
    }


def _hits(centre, truth) -> bool:
    return any(centre_hits(centre, nodule) for nodule in truth)


def _sensitivity_by_size(per_scan, threshold: float) -> dict[str, str]:
    bins = {"< 6 mm": (0, 6), "6-10 mm": (6, 10), "10-20 mm": (10, 20), ">= 20 mm": (20, 1e9)}
    counts = {name: [0, 0] for name in bins}
    for detections, truth in per_scan:
        kept = [c for s, c in detections if s >= threshold]
        for nodule in truth:
            name = next(n for n, (lo, hi) in bins.items() if lo <= nodule["diameter_mm"] < hi)
            counts[name][1] += 1
            counts[name][0] += any(_hits(c, [nodule]) for c in kept)
    return {name: f"{found}/{total}" for name, (found, total) in counts.items()}


def model_card(metrics: dict, train_seeds, iterations: int, minutes: float, package: ModelManifest) -> str:
    """The card of the package with manifest ``package`` (its spacing and thresholds, which may predate this script's)."""
    spacing = package.input.spacing[0]
    outputs = package.outputs
    froc_rows = [(rate, f"{value:.3f}") for rate, value in metrics["froc_sensitivity"].items()]
    size_rows = list(metrics["sensitivity_by_diameter_at_operating_point"].items())
    op = metrics["operating_point"]
    return f"""# CT lung nodules (demo) - {NAME} {VERSION}

Finds **lung nodules** on chest CT and returns 3D boxes (world mm) with a score 0..1.
A small MONAI `UNet` (channels 16-32-64-128, one residual unit per level) at {spacing:g} mm
isotropic spacing predicts a nodule probability map; each connected region above
probability {outputs.probability_threshold} becomes a box scored by its peak probability; boxes
below score {outputs.score_threshold} are dropped and overlapping boxes suppressed (NMS, IoU {outputs.nms_iou:g}).

**Demonstration model trained on synthetic data only. Not for clinical use.**

## Training data
{len(train_seeds)} synthetic chest CT phantoms (`medviewer.demo.phantoms`, variant
"standard", seeds {min(train_seeds)}-{max(train_seeds)}, 3-8 solid, part-solid and
ground-glass nodules of 4-30 mm each) rendered on the demo CT grid (512 x 512 x 200 at
0.7 x 0.7 x 1.5 mm), resampled to {spacing:g} mm with the pipeline's own preprocessing and cropped
to the lungs. 64^3 patches: 50 % centred on a randomly chosen nodule (so small and large
nodules are seen equally often), 25 % on dense tissue inside the lungs (vessels: the
usual false positives), 25 % anywhere; random flips; loss: binary cross-entropy plus a
per-patch soft Dice (patches with a nodule) or predicted-volume penalty (patches without); Adam with cosine decay, {iterations} iterations (~{minutes:.0f} min on 2 CPU cores),
random contrast/brightness/noise augmentation.

## Metrics (held-out phantoms, seeds {metrics['held_out_seeds'][0]}-{metrics['held_out_seeds'][-1]}: {metrics['held_out_scans']} scans, {metrics['held_out_nodules']} nodules)
A detection is a hit when its centre lies within the nodule's radius (at least 3 mm);
FROC from all candidates with score >= 0.2 through the full pipeline:

{markdown_table(froc_rows, ["false positives per scan", "sensitivity"])}

**Sensitivity at 1 FP/scan: {metrics['sensitivity_at_1_fp_per_scan']:.3f}; at 4 FP/scan: {metrics['sensitivity_at_4_fp_per_scan']:.3f}.**

At the shipped operating point (score >= {op['score_threshold']}): sensitivity
{op['sensitivity']:.3f} with {op['false_positives_per_scan']} false positives per scan.
By nodule diameter: {", ".join(f"{k}: {v}" for k, v in size_rows)}.

CPU inference on one 512 x 512 x 200 phantom: about {metrics['seconds_per_case_cpu']} s (median).

## Limitations
Synthetic nodules and vessels are idealised; real scans have many more nodule mimics.
Nodules smaller than about 6 mm are mostly missed at {spacing:g} mm. Expect poor results on
real patients.
Boxes surround the region the network is confident about (probability >= {outputs.probability_threshold}), so
they tend to be smaller than large nodules (a 30 mm nodule gets a box of about 15-25 mm).
The network was trained on lung-cropped patches with instance normalisation: on images
covering less than about 7 cm head to foot it becomes unreliable.

{common.card_footer(NAME, metrics, SEED)}"""


def training_step(network: torch.nn.Module, seeds: list[int], draft: ModelManifest, batch: int,
                  generator: torch.Generator) -> Callable[[int], torch.Tensor]:
    cases = []
    for seed in seeds:
        cases.append(common.cached_arrays(NAME, seed, lambda s: make_training_arrays(s, draft), tag=f"v2-{SPACING_MM:g}mm"))
        common.log(f"training case {seed} ready: {cases[-1]['image'].shape}, {int(cases[-1]['target'].sum())} nodule voxels")
    sampler = PatchSampler([c["image"] for c in cases], [c["target"] for c in cases], TRAIN_PATCH,
                           foreground_fraction=0.5, seed=SEED, per_object=True,
                           hard_negatives=[c["hard"] for c in cases], hard_fraction=0.25)
    return common.patch_step(network, sampler, DetectionLoss(1), batch, generator, flip_axes=(2, 3, 4))


MODEL = common.DemoModel(
    name=NAME, description=__doc__.splitlines()[0], seed=SEED, architecture="monai.UNet", arguments=ARGUMENTS,
    manifest=manifest, training_step=training_step, evaluate=evaluate, model_card=model_card,
    training_data=common.phantom_training_data, summary=lambda metrics: f"FROC {metrics['froc_sensitivity']}",
    iterations=2000, minutes=20.0, train_cases=24, held_out=10, batch=4, learning_rate=3e-3,
)


def main(argv=None) -> int:
    return common.main(MODEL, argv)


if __name__ == "__main__":
    raise SystemExit(main())
