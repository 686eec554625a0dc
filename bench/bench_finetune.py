"""Fine-tuning evidence (issue 7): ct-lung-seg on 5 corrected "dense_lungs" phantoms, validated on held-out ones.

The built-in ct-lung-seg was trained on the "standard" phantom variant only; the
"dense_lungs" variant (denser parenchyma at about -600 HU, a higher diaphragm, more
nodules) was kept back for this demonstration. The script builds an annotation dataset
the way the app does (``NnUNetDataset.save_case``): the image, the corrected label
(FINAL = the phantom's ground truth restricted to the model's labels, nodules counted
as lung of their side) and the model's proposal (ORIGINAL = what ct-lung-seg 1.0.0
predicted). It then runs ``medviewer train`` in-process (``run_training``) on 5 cases
and compares validation Dice per label on held-out dense_lungs cases before (the base
model) and after (the fine-tuned package), both through the full inference pipeline.

To keep the run short on 2 CPU cores the phantoms are rendered on a coarser grid than
the demo CT (256 x 256 x 120 at 1.4 x 1.4 x 2.5 mm, the same field of view; the model
works at 2.5 mm anyway) and training has a time budget.

    python bench/bench_finetune.py [--minutes 10] [--train-cases 5] [--held-out 3]
    python bench/bench_finetune.py --task detection     # ct-nodule-det from reviewed boxes

With ``--task detection`` the built-in ct-nodule-det is fine-tuned the same way from the
boxes an annotator would leave: every true nodule's box accepted, every proposal of
the base model that hits no nodule rejected; the table reports sensitivity and false
positives per scan before and after.

The dataset and the new package go to a temporary folder (``--keep DIR`` keeps them).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from common import Row, print_table

GRID_SHAPE = (120, 256, 256)  # (z, y, x)
GRID_SPACING = (1.4, 1.4, 2.5)  # (x, y, z) mm
TRAIN_SEEDS = range(2000, 2100)
HELD_OUT_SEEDS = range(9100, 9200)
_LAST: dict = {}


def dense_case(seed: int):
    from medviewer.demo.phantoms import ChestPhantomParams, generate_chest_ct

    return generate_chest_ct(ChestPhantomParams.from_seed(seed, variant="dense_lungs"), GRID_SHAPE, GRID_SPACING)


def build_dataset(parent: Path, train_seeds: list[int], held_out_seeds: list[int], log,
                  task: str = "segmentation") -> tuple[object, list[str], list[str]]:
    """The annotation dataset as the app would save it after correcting the base model's proposals.

    Segmentation: FINAL = ground truth, ORIGINAL = ct-lung-seg's proposal. Detection: the
    true nodule boxes are accepted, ct-nodule-det's proposals that hit no nodule are
    rejected (FINAL labels = the nodule masks).
    """
    import numpy as np

    from medviewer.ai.demo_models.lung_seg import LABELS, ground_truth_full_resolution
    from medviewer.ai.pipeline import ModelRunner
    from medviewer.ai.registry import ModelRegistry
    from medviewer.ai.training.metrics import box_hits
    from medviewer.core.detection import DetectionStatus
    from medviewer.core.labels import LabelMap, LabelTable
    from medviewer.io.nnunet_dataset import NnUNetDataset

    detection = task == "detection"
    base = "ct-nodule-det:1.0.0" if detection else "ct-lung-seg:1.0.0"
    runner = ModelRunner(ModelRegistry.default().find(base))
    dataset = NnUNetDataset.create_or_open(parent, 951 if detection else 950,
                                           "DenseNodules" if detection else "DenseLungs", "CT")
    table = LabelTable.from_names({1: "nodule"} if detection else LABELS)
    training, validation = [], []
    for seeds, ids, kind in ((train_seeds, training, "train"), (held_out_seeds, validation, "held-out")):
        for seed in seeds:
            started = time.perf_counter()
            case = dense_case(seed)
            case_id = f"dense-{seed}"
            provenance = {"annotator": "phantom ground truth", "model": base}
            if detection:
                geometry = case.volume.geometry
                rejected = [d for d in runner.run(case.volume).detections
                            if not any(box_hits(d, truth, geometry) for truth in case.nodules)]
                for box in rejected:
                    box.status = DetectionStatus.REJECTED
                truth = LabelMap((case.labels.array == 3).astype(np.uint8), geometry, table.copy(), source="manual")
                dataset.save_case(case.volume, truth, detections=[*case.nodules, *rejected], case_id=case_id,
                                  provenance=provenance)
                note = f"{len(case.nodules)} nodules, {len(rejected)} false proposals rejected"
            else:
                truth = LabelMap(ground_truth_full_resolution(case), case.volume.geometry, table.copy(), source="manual")
                proposal = runner.run(case.volume).label_map
                dataset.save_case(case.volume, truth, original=proposal, case_id=case_id, provenance=provenance)
                note = "labels and proposal"
            ids.append(case_id)
            log(f"{kind} case {case_id} saved: {note} ({time.perf_counter() - started:.1f} s)")
    return dataset, training, validation


def collect(minutes: float = 10.0, train_cases: int = 5, held_out: int = 3, keep: str | None = None,
            task: str = "segmentation") -> list[Row]:
    """Build the dataset, fine-tune, and return before/after rows (the reference is the base model)."""
    from medviewer.ai.training import TrainingRequest, TrainingSettings
    from medviewer.ai.training.cli import ConsoleReporter
    from medviewer.ai.training.trainer import run_training

    def log(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="medviewer-finetune-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        dataset, training, validation = build_dataset(
            work / "datasets", list(TRAIN_SEEDS)[:train_cases], list(HELD_OUT_SEEDS)[:held_out], log, task)
        build_seconds = time.perf_counter() - started
        settings = TrainingSettings(epochs=10000, minutes=minutes, iterations_per_epoch=40, batch_size=2,
                                    patch_size=(64, 64, 64), learning_rate=1e-3, validation_cases=tuple(validation),
                                    patience=6, device="cpu")
        base = "ct-nodule-det:1.0.0" if task == "detection" else "ct-lung-seg:1.0.0"
        request = TrainingRequest(dataset.root, base, base.split(":")[0] + "-dense", settings,
                                  models_dir=work / "models",
                                  command_line=f"python bench/bench_finetune.py --minutes {minutes:g}")
        result = run_training(request, on_event=ConsoleReporter())
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    _LAST["result"] = result
    reference = f"{result.base_ref} (base)"
    rows = []
    if task == "detection":
        for key, label in (("sensitivity", "sensitivity at the shipped operating point"),
                           ("false_positives_per_scan", "false positives per scan")):
            rows.append(Row(f"{label} ({held_out} held-out dense_lungs phantoms, {result.after['boxes']} nodules)",
                            result.after[key], "", result.before[key], reference))
    for name, after in result.after.get("dice", {}).items():
        before = result.before["dice"][name]
        rows.append(Row(f"validation Dice {name} ({held_out} held-out dense_lungs phantoms)", after, "Dice",
                        before, reference, "> 1x"))
    if task == "segmentation":
        rows.append(Row("validation mean Dice", result.after["mean_dice"], "Dice", result.before["mean_dice"], reference,
                        "> 1x"))
    iterations = [r.iterations for r in result.history]
    rows += [
        Row("time per epoch (40 batches of 2 x 64^3 patches + validation), CPU", result.seconds_per_epoch, "s"),
        Row("epoch time per training batch (validation included), CPU",
            sum(r.seconds for r in result.history) / max(1, sum(iterations)), "s"),
        Row(f"epochs in the {minutes:g} min budget (best epoch {result.best_epoch})", len(result.history), "epochs"),
        Row("building the dataset (render + base model proposal + save)", build_seconds / (train_cases + held_out),
            "s/case"),
        Row("whole run (training + before/after evaluation)", result.seconds_total / 60.0, "min"),
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training time budget")
    parser.add_argument("--train-cases", type=int, default=5)
    parser.add_argument("--held-out", type=int, default=3)
    parser.add_argument("--keep", default=None, metavar="DIR", help="keep the dataset and the new package in DIR")
    parser.add_argument("--task", default="segmentation", choices=["segmentation", "detection"],
                        help="fine-tune ct-lung-seg (default) or ct-nodule-det from reviewed boxes")
    args = parser.parse_args()
    rows = collect(args.minutes, args.train_cases, args.held_out, args.keep, args.task)
    result = _LAST["result"]
    print()
    print(f"stopped: {result.stopped_because}; training cases {result.training_cases}; "
          f"validation cases {result.validation_cases}")
    for warning in result.warnings:
        print(f"warning: {warning}")
    print_table(rows, f"Fine-tuning {result.base_ref} on dense_lungs phantoms (CPU)")


if __name__ == "__main__":
    main()
