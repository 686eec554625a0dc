"""Every CUDA path once, in a few minutes, as one table (run by bench/gpu_check.sh on a GPU machine).

The CPU tests simulate these paths; this runs them on a real GPU:

* each built-in model on the demo CT with mixed precision (autocast), against the same run
  in full precision: time, peak GPU memory, and whether the results agree;
* the out-of-memory fallback: the same model under a capped memory fraction must finish by
  retrying with fewer windows per batch and then on the CPU, with a warning that says so;
* one training epoch on CUDA (AMP) through ``medviewer.ai.training``;
* nnU-Net folders and MONAI bundles built as in the tests, on CUDA;
* promptable interaction time, once a promptable model exists (issue 13).

    python bench/gpu_check.py                 # exits 2 with a message where CUDA is missing
    python bench/gpu_check.py --cpu-dry-run   # the same checks on the CPU (no OOM check): tests this script
"""

from __future__ import annotations

import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "ai"))  # training_helpers: the tiny dataset and base model

ROWS: list[tuple[str, str, str, str]] = []  # (check, result, figure, detail)
#: "cuda", or "cpu" with --cpu-dry-run (checks this script's own logic on a machine without a GPU)
DEVICE = "cuda"


def record(check: str, fn) -> None:
    started = time.perf_counter()
    try:
        figure, detail = fn()
        result = "ok"
    except Exception as error:  # noqa: BLE001 - every check reports, none stops the table
        figure, detail, result = "", f"{type(error).__name__}: {error}".splitlines()[0][:160], "FAILED"
        traceback.print_exc()
    ROWS.append((check, result, figure, f"{detail} ({time.perf_counter() - started:.1f} s)"))
    print(f"[gpu_check] {check}: {result} {figure}", flush=True)


def demo_ct():
    from medviewer.demo.phantoms import ChestPhantomParams, generate_chest_ct
    from medviewer.services.demo import DEMO_SEED

    return generate_chest_ct(ChestPhantomParams.from_seed(DEMO_SEED)).volume


def agreement(first, second) -> str:
    import numpy as np

    if first.label_map is not None and second.label_map is not None:
        same = float(np.mean(first.label_map.array == second.label_map.array))
        return f"labels agree on {same:.4%} of voxels"
    if first.detections or second.detections:
        return f"{len(first.detections)} vs {len(second.detections)} boxes"
    if first.volume is not None and second.volume is not None:
        diff = np.abs(first.volume.array.astype(float) - second.volume.array.astype(float))
        return f"images differ by {diff.mean():.2f} on average (max {diff.max():.0f})"
    return ""


def builtin_models(volume) -> None:
    import torch

    from medviewer.ai.pipeline import ModelRunner
    from medviewer.ai.registry import ModelRegistry
    from medviewer.ai.results import InferenceOptions

    for package in [p for p in ModelRegistry.default().packages if p.origin == "builtin"]:
        runner = ModelRunner(package)

        def run(runner=runner):
            gpu = DEVICE == "cuda"
            if gpu:
                runner.run(volume, options=InferenceOptions(device=DEVICE, mixed_precision=True))  # warm-up
                torch.cuda.reset_peak_memory_stats()
                torch.cuda.synchronize()
            started = time.perf_counter()
            amp = runner.run(volume, options=InferenceOptions(device=DEVICE, mixed_precision=True))
            if gpu:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            peak = torch.cuda.max_memory_allocated() / 2**30 if gpu else 0.0
            full = runner.run(volume, options=InferenceOptions(device=DEVICE, mixed_precision=False))
            return f"{seconds:.2f} s, {peak:.2f} GB", f"AMP vs fp32: {agreement(amp, full)}; {amp.warnings or ''}"

        record(f"{package.ref} on CUDA, mixed precision", run)


def oom_fallback(volume) -> None:
    import torch

    from medviewer.ai.pipeline import ModelRunner
    from medviewer.ai.registry import ModelRegistry
    from medviewer.ai.results import InferenceOptions

    def run():
        package = ModelRegistry.default().find("ct-nodule-det")
        runner = ModelRunner(package)
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(0.0005)  # ~70 MB of an H200: the first batch cannot fit
        try:
            result = runner.run(volume, options=InferenceOptions(device=DEVICE, batch_size=8))
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0)
        said = [w for w in result.warnings if "out of memory" in w]
        if not said:
            raise AssertionError(f"no out-of-memory fallback was reported: {result.warnings}")
        return f"{len(result.detections)} boxes", "; ".join(said)

    record("out-of-memory fallback under a capped memory fraction", run)


def training_epoch() -> None:
    from training_helpers import make_base_package, make_dataset

    from medviewer.ai.training import TrainingRequest, TrainingSettings
    from medviewer.ai.training.trainer import run_training

    def run():
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            dataset = make_dataset(root / "datasets", seeds=range(6))
            base = make_base_package(root / "base")
            settings = TrainingSettings(epochs=1, iterations_per_epoch=40, patch_size=(16, 32, 32), device=DEVICE,
                                        patience=0)
            started = time.perf_counter()
            result = run_training(TrainingRequest(dataset.root, base, "gpu-check", settings, models_dir=root / "models"))
            seconds = time.perf_counter() - started
            dice = result.after.get("dice", {})
            return f"{seconds:.1f} s", f"{result.name}:{result.version}; validation Dice after one epoch {dice}"

    record("one training epoch on CUDA (AMP)", run)


def field_models() -> None:
    """An nnU-Net result folder and a MONAI bundle on CUDA, built as their tests build them."""
    import nnunet_helpers
    import bundle_helpers

    from medviewer.ai.pipeline import ModelRunner
    from medviewer.ai.registry import ModelRegistry
    from medviewer.ai.results import InferenceOptions

    def run_folder(make, volume):
        def run():
            with tempfile.TemporaryDirectory() as folder:
                path = make(Path(folder))
                registry = ModelRegistry.default(extra_folders=[path])
                package = next(p for p in registry.packages if p.origin != "builtin")
                options = InferenceOptions(device=DEVICE, mixed_precision=True)
                cpu = ModelRunner(package).run(volume, options=InferenceOptions(device="cpu"))
                started = time.perf_counter()
                gpu = ModelRunner(package).run(volume, options=options)
                return f"{time.perf_counter() - started:.2f} s", f"{package.ref}; CUDA vs CPU: {agreement(gpu, cpu)}"
        return run

    record("nnU-Net result folder on CUDA", run_folder(
        lambda root: nnunet_helpers.make_trained_model(root, "3d_fullres", folds=(0, 1)), nnunet_helpers.phantom_ct()))
    record("MONAI bundle on CUDA", run_folder(lambda root: bundle_helpers.make_bundle(root), bundle_helpers.phantom_ct()))


def main() -> int:
    import torch

    global DEVICE
    if "--cpu-dry-run" in sys.argv:
        DEVICE = "cpu"
    elif not torch.cuda.is_available():
        print("gpu_check: CUDA is not available here (torch %s); run it on a GPU machine" % torch.__version__)
        return 2
    name = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "CPU dry run"
    volume = demo_ct()
    if "--only-fast" not in sys.argv:
        builtin_models(volume)
    if DEVICE == "cuda":
        oom_fallback(volume)
    training_epoch()
    field_models()
    ROWS.append(("promptable interaction time", "n/a", "", "no promptable model yet (issue 13)"))
    print(f"\n## GPU check: {name}, torch {torch.__version__}, CUDA {torch.version.cuda}\n")
    print("| check | result | figure | detail |\n|---|---|---|---|")
    for row in ROWS:
        print("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |")
    return 0 if all(r[1] in ("ok", "n/a", "skipped") for r in ROWS) else 1


if __name__ == "__main__":
    sys.exit(main())
