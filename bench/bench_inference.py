"""Built-in models on the demo CT (512 x 512 x 200): wall time and peak memory, CPU (and CUDA when present).

For each model the reference is the bare network pass (sliding windows on the model
grid, already prepared) measured in the same run, so the ratio shows what
preprocessing, post-processing and resampling back to the original grid add.

    python bench/bench_inference.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

from common import Row, median_time, peak_memory_during, print_table

GOALS = {"ct-lung-seg": (20.0, "< 20 s"), "ct-nodule-det": (30.0, "< 30 s")}
MEMORY_GOAL = "< 3 GB"


def demo_ct():
    """The demo study's CT (same seed and grid as ``medviewer --demo``), generated in memory."""
    from medviewer.demo.phantoms import ChestPhantomParams, generate_chest_ct
    from medviewer.services.demo import DEMO_SEED

    return generate_chest_ct(ChestPhantomParams.from_seed(DEMO_SEED)).volume


def _network_only(runner, volume, device):
    """A callable running only the sliding-window network pass on the prepared model-grid image."""
    from medviewer.ai.results import InferenceOptions
    from medviewer.core.jobs import NO_PROGRESS, CancelToken

    prepared = runner._prepare(volume)
    options = InferenceOptions(device=str(device))
    batch = runner.manifest.inference.batch_size

    def run():
        import torch

        with torch.inference_mode():
            runner._predict_on_device(runner.predictor, prepared, device, batch, options, NO_PROGRESS, CancelToken())

    return run, prepared


def collect(repeats: int = 3) -> list[Row]:
    import torch

    from medviewer.ai.pipeline import InferenceOptions, ModelRunner
    from medviewer.ai.registry import ModelRegistry

    volume = demo_ct()
    size = "x".join(str(s) for s in volume.geometry.size)
    registry = ModelRegistry.default()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows: list[Row] = []
    for package in [p for p in registry.packages if p.origin == "builtin"]:
        runner = ModelRunner(package)
        runner.predictor  # load weights before timing
        for device in devices:
            options = InferenceOptions(device=device)
            slow = package.task == "enhancement"
            count = 1 if slow else repeats
            seconds = median_time(lambda: runner.run(volume, options=options), repeats=count, warmup=0 if slow else 1)
            result, peak = peak_memory_during(lambda: runner.run(volume, options=options))
            network, prepared = _network_only(runner, volume, torch.device(device))
            reference = median_time(network, repeats=count, warmup=0 if slow else 1)
            grid = "x".join(str(s) for s in prepared.grid.size)
            goal_seconds, goal_text = GOALS.get(package.name, (None, ""))
            rows.append(Row(f"{package.ref} on demo CT {size}, {device} (model grid {grid})", seconds, "s",
                            reference, "network only", goal_text if device == "cpu" else ""))
            rows.append(Row(f"{package.ref} peak memory growth, {device}", peak / 2**30, "GB", goal=MEMORY_GOAL))
            rows.append(Row(f"{package.ref} cancel latency (cancel at 50 % of the run), {device}",
                            cancel_latency(runner, volume, options, seconds * 0.5), "s", goal="about 1 s"))
            print(f"{package.ref} on {device}: {seconds:.2f} s, +{peak / 2**30:.2f} GB, {_summary(result)}", flush=True)
    return rows


def cancel_latency(runner, volume, options, after_seconds: float) -> float:
    """Seconds from ``cancel()`` to the run giving up, with the cancel sent ``after_seconds`` into the run."""
    import threading

    from medviewer.core.errors import OperationCancelled
    from medviewer.core.jobs import CancelToken

    token = CancelToken()
    stopped = {}

    def work():
        try:
            runner.run(volume, cancel=token, options=options)
        except OperationCancelled:
            pass
        stopped["at"] = time.perf_counter()

    thread = threading.Thread(target=work)
    thread.start()
    time.sleep(after_seconds)
    cancelled_at = time.perf_counter()
    token.cancel()
    thread.join()
    return stopped["at"] - cancelled_at


def _summary(result) -> str:
    if result.label_map is not None:
        return f"labels {result.label_map.present_values()}"
    if result.task == "detection":
        return f"{len(result.detections)} detections"
    if result.volume is not None:
        return f"derived image {result.volume.array.dtype}"
    return str(result.probabilities)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    started = time.perf_counter()
    rows = collect(args.repeats)
    print_table(rows, f"AI inference (torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
                      f"measured in {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
