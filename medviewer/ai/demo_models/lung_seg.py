"""Train the built-in CT lung (and chest structures) segmentation demo model.

    python -m medviewer.ai.demo_models.lung_seg [--minutes 15] [--iterations 600]

A MONAI UNet at 2.5 mm trained on synthetic chest CT phantoms (seeds 1000-1023,
"standard" variant) rendered on the demo CT grid (512 x 512 x 200, 0.7 x 0.7 x 1.5 mm)
and brought to the model grid by the inference pipeline's own preprocessing. It is
evaluated on held-out phantoms (seeds 9000-9005) through the full pipeline (model grid
and back to the original grid). Writes resources/models/ct-lung-seg/.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from monai.losses import DiceCELoss
from scipy import ndimage

from medviewer.ai.architectures import build_architecture
from medviewer.ai.demo_models import common
from medviewer.ai.manifest import ModelManifest
from medviewer.ai.registry import ModelPackage

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


def manifest(metrics: dict | None = None, training_data: str = "") -> ModelManifest:
    from medviewer.demo.phantom_tissues import LABEL_COLORS

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
        "provenance": {
            "training_data": training_data or "synthetic chest CT phantoms (medviewer.demo.phantoms)",
            "license": "Apache-2.0",
            "metrics": metrics or {},
            "authors": "medviewer contributors",
            "created": time.strftime("%Y-%m-%d"),
            "training_command": "python -m medviewer.ai.demo_models.lung_seg",
        },
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
    from medviewer.ai.pipeline import ModelRunner

    runner = ModelRunner(package)
    per_label: dict[int, list[float]] = {v: [] for v in LABELS}
    seconds = []
    for seed in seeds:
        case = common.generate_case(seed)
        result = runner.run(case.volume)
        seconds.append(result.seconds)
        truth = ground_truth_full_resolution(case)
        for value in LABELS:
            per_label[value].append(common.dice(result.label_map.array == value, truth == value))
        common.log(f"held-out seed {seed}: " + ", ".join(f"{LABELS[v]} {per_label[v][-1]:.3f}" for v in LABELS))
    return {
        "dice_mean": {LABELS[v]: round(float(np.mean(d)), 4) for v, d in per_label.items()},
        "dice_min": {LABELS[v]: round(float(np.min(d)), 4) for v, d in per_label.items()},
        "held_out_seeds": [int(s) for s in seeds],
        "seconds_per_case_cpu": round(float(np.median(seconds)), 2),
    }


def model_card(metrics: dict, train_seeds, iterations: int, minutes: float) -> str:
    rows = [(name, f"{metrics['dice_mean'][name]:.3f}", f"{metrics['dice_min'][name]:.3f}") for name in LABELS.values()]
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
2.5 mm and back with nearest neighbour):

{common.metrics_table(rows, ["structure", "mean Dice", "worst case"])}

CPU inference on one 512 x 512 x 200 phantom: about {metrics['seconds_per_case_cpu']} s (median).

## Limitations
Synthetic anatomy is much simpler than real patients (no pathology besides nodules, no
motion, no contrast agent variation, idealised noise). Expect poor results on real
scans. Label boundaries come back at 2.5 mm resolution.

## Reproduce
```
python -m medviewer.ai.demo_models.lung_seg      # or: make demo-models
```
{common.reproducibility_note(metrics, SEED)}

Licence: Apache-2.0 (weights and code).
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1200)
    parser.add_argument("--minutes", type=float, default=20.0, help="time budget (0: none)")
    parser.add_argument("--train-cases", type=int, default=24)
    parser.add_argument("--held-out", type=int, default=6)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--out", default=str(common.RESOURCES_MODELS / NAME))
    parser.add_argument("--evaluate-only", action="store_true",
                        help="keep the weights in --out; re-evaluate and rewrite the manifest and card")
    args = parser.parse_args(argv)

    common.set_seeds(SEED, common.threads_from_env())
    draft = manifest()
    train_seeds = list(common.TRAIN_SEEDS)[: args.train_cases]
    cases = []
    for seed in train_seeds if not args.evaluate_only else []:
        cases.append(common.cached_arrays(NAME, seed, lambda s: make_training_arrays(s, draft)))
        common.log(f"training case {seed} ready: {cases[-1]['image'].shape}")
    sampler = common.PatchSampler([c["image"] for c in cases], [c["target"] for c in cases], TRAIN_PATCH,
                                  foreground_fraction=0.5, seed=SEED) if cases else None
    network = build_architecture("monai.UNet", ARGUMENTS)
    loss_function = DiceCELoss(to_onehot_y=True, softmax=True)
    generator = torch.Generator().manual_seed(SEED)

    def step(_iteration: int) -> torch.Tensor:
        images, targets = sampler.sample(args.batch)
        images = common.augment_intensity(images, generator)
        return loss_function(network(images), targets.long())

    out = Path(args.out)
    if args.evaluate_only:
        network.load_state_dict(torch.load(out / "weights.pt", weights_only=True))
        previous = common.load_previous_metrics(out)
        iterations, minutes, final_loss = previous["training_iterations"], previous["training_minutes"], previous["final_training_loss"]
        requested = previous.get("training_iterations_requested", args.iterations)
    else:
        started = time.perf_counter()
        losses = common.train_loop(network, step, args.iterations, learning_rate=3e-3, minutes=args.minutes)
        iterations, minutes, requested = len(losses), (time.perf_counter() - started) / 60, args.iterations
        final_loss = round(float(np.mean(losses[-25:])), 4)
    common.write_model_package(out, draft, network, "# draft\n")
    package = ModelPackage(out, draft, "builtin")
    metrics = evaluate(package, list(common.HELD_OUT_SEEDS)[: args.held_out])
    metrics.update(training_iterations=iterations, training_iterations_requested=requested,
                   training_minutes=round(minutes, 1), final_training_loss=final_loss)
    training_data = (f"{len(train_seeds)} synthetic chest CT phantoms, variant standard, seeds "
                     f"{min(train_seeds)}-{max(train_seeds)}, 512x512x200 at 0.7x0.7x1.5 mm")
    final = manifest(metrics, training_data)
    common.write_model_package(out, final, network, model_card(metrics, train_seeds, iterations, minutes))
    common.log(f"wrote {out}: {metrics['dice_mean']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
