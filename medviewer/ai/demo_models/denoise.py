"""Train the built-in CT denoising demo model (an enhancement model: it produces a derived image).

    python -m medviewer.ai.demo_models.denoise [--minutes 12] [--iterations 1500]

A small residual CNN (``medviewer.DenoiseCNN``, DnCNN-like) working on the image's
own grid. Trained on noise-free synthetic chest CT phantoms (seeds 1000-1011) with CT-like
noise (in-plane correlated Gaussian, 5-60 HU, as ``medviewer.demo.phantoms`` and
``simulate_low_dose`` make it) added on the fly; the target is the noise-free image.
Evaluated on held-out phantoms (seeds 9000-9002) at their normal noise and at a simulated
quarter dose. Writes resources/models/ct-denoise/.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medviewer.ai.architectures import build_architecture
from medviewer.ai.demo_models import common
from medviewer.ai.manifest import ModelManifest
from medviewer.ai.registry import ModelPackage

NAME = "ct-denoise"
VERSION = "1.0.0"
SEED = 23
ARGUMENTS = {"spatial_dims": 3, "in_channels": 1, "features": 8, "depth": 5, "in_plane": True}
WINDOW = (-1000.0, 1000.0)  # HU mapped to OUTPUT_RANGE (not clipped)
# Units of 100 HU: CT noise of 5-60 HU is then 0.05-0.6. On a 0..1 scale the residuals and
# gradients were so small that Adam barely moved the weights (the network stayed an
# identity map); at this scale the same network learns.
OUTPUT_RANGE = (0.0, 20.0)
CROP = (24, 160, 160)  # (z, y, x) crops stored per training case
CROPS_PER_CASE = 8
TRAIN_PATCH = (16, 96, 96)
NOISE_RANGE_HU = (5.0, 60.0)


def manifest(metrics: dict | None = None, training_data: str = "") -> ModelManifest:
    return ModelManifest.from_dict({
        "name": NAME,
        "version": VERSION,
        "title": "CT denoising (demo)",
        "description": "Reduces quantum noise of (low-dose) CT on the image's own grid; adds a derived series. "
                       "Trained on synthetic phantoms only: a demonstration, not a medical device.",
        "task": "enhancement",
        "modality": ["CT"],
        "input": {
            "channels": 1,
            "spacing": None,
            "orientation": None,
            "normalization": {"method": "ct_window", "window": list(WINDOW), "output_range": list(OUTPUT_RANGE),
                              "clip": False},
        },
        "inference": {"mode": "sliding_window", "patch_size": [512, 512, 8], "overlap": 0.25, "batch_size": 1,
                      "blend": "gaussian"},
        "outputs": {"image_name": "denoised", "denormalize": True, "value_range": [-1024, 3071]},
        "runtime": {"type": "builtin", "file": "weights.pt", "architecture": "medviewer.DenoiseCNN",
                    "arguments": ARGUMENTS},
        "provenance": {
            "training_data": training_data or "noise-free synthetic chest CT phantoms with simulated CT noise",
            "license": "Apache-2.0",
            "metrics": metrics or {},
            "authors": "medviewer contributors",
            "created": time.strftime("%Y-%m-%d"),
            "training_command": "python -m medviewer.ai.demo_models.denoise",
        },
    })


def make_training_crops(seed: int) -> dict[str, np.ndarray]:
    """Random crops (inside the body) of a noise-free phantom on the demo grid, int16 HU."""
    case = common.generate_case(seed, noise_free=True)
    image = case.volume.array
    rng = np.random.default_rng(seed)
    body = np.argwhere(image[:: 8, :: 8, :: 8] > -500) * 8
    crops = []
    for _ in range(CROPS_PER_CASE):
        centre = body[int(rng.integers(len(body)))]
        start = np.clip(centre - np.asarray(CROP) // 2, 0, np.asarray(image.shape) - CROP)
        crops.append(image[tuple(slice(int(s), int(s) + c) for s, c in zip(start, CROP))])
    return {"clean": np.stack(crops)}


def correlated_noise(shape: tuple[int, ...], sigma_hu: torch.Tensor, generator: torch.Generator,
                     pixel_mm: float = common.DEMO_SPACING[0]) -> torch.Tensor:
    """Gaussian noise correlated in-plane like the phantoms' CT noise, with standard deviation ``sigma_hu`` per patch."""
    from medviewer.demo.phantoms import NOISE_CORRELATION_MM

    sigma_px = NOISE_CORRELATION_MM / pixel_mm
    radius = max(1, int(np.ceil(3 * sigma_px)))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma_px) ** 2)
    kernel = kernel / kernel.sum()
    noise = torch.randn(shape, generator=generator)
    n, c, z, y, x = shape
    flat = noise.reshape(n * c * z, 1, y, x)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
    noise = flat.reshape(shape)
    noise = noise / noise.std(dim=(1, 2, 3, 4), keepdim=True)
    return noise * sigma_hu.view(-1, 1, 1, 1, 1)


def rmse(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    difference = a.astype(np.float64)[mask] - b.astype(np.float64)[mask]
    return float(np.sqrt(np.mean(difference**2)))


def evaluate(package: ModelPackage, seeds) -> dict:
    import dataclasses

    from medviewer.ai.pipeline import ModelRunner
    from medviewer.demo import phantoms

    runner = ModelRunner(package)
    rows = {"normal dose": {"before": [], "after": []}, "quarter dose": {"before": [], "after": []}}
    seconds = []
    for seed in seeds:
        clean = common.generate_case(seed, noise_free=True).volume.array
        case = common.generate_case(seed)
        body = clean > -900
        params = phantoms.ChestPhantomParams.from_seed(seed)
        quarter = phantoms.simulate_low_dose(case.volume.array, 0.25, seed, full_dose_noise_hu=params.noise_hu,
                                             spacing=case.volume.geometry.spacing)
        for name, noisy in (("normal dose", case.volume.array), ("quarter dose", quarter)):
            volume = dataclasses.replace(case.volume, array=noisy)
            result = runner.run(volume)
            seconds.append(result.seconds)
            rows[name]["before"].append(rmse(noisy, clean, body))
            rows[name]["after"].append(rmse(result.volume.array, clean, body))
        common.log(f"held-out seed {seed} (noise {params.noise_hu:.1f} HU): " + ", ".join(
            f"{n} RMSE {r['before'][-1]:.1f} -> {r['after'][-1]:.1f} HU" for n, r in rows.items()))
    return {
        "rmse_hu_in_body": {name: {"noisy": round(float(np.mean(r["before"])), 2),
                                   "denoised": round(float(np.mean(r["after"])), 2)} for name, r in rows.items()},
        "held_out_seeds": [int(s) for s in seeds],
        "seconds_per_case_cpu": round(float(np.median(seconds)), 2),
    }


def model_card(metrics: dict, train_seeds, iterations: int, minutes: float) -> str:
    table = [(name, f"{values['noisy']:.1f}", f"{values['denoised']:.1f}",
              f"{100 * (1 - values['denoised'] / values['noisy']):.0f} %")
             for name, values in metrics["rmse_hu_in_body"].items()]
    return f"""# CT denoising (demo) - {NAME} {VERSION}

Reduces the quantum noise of CT images, for example of low-dose scans, on the image's
own grid, and adds the result as a derived series. A tiny residual CNN
(`medviewer.DenoiseCNN`, DnCNN-like: it predicts the noise and subtracts it): one 3x3x3
convolution over neighbouring slices, then {ARGUMENTS['depth'] - 1} in-plane 3x3 convolutions with
{ARGUMENTS['features']} channels (CT noise is correlated within a slice, not between slices).
It runs on slabs of 8 slices, so a run can be cancelled within about a second.

**Demonstration model trained on synthetic data only. Not for clinical use.**

## Training data
{len(train_seeds)} noise-free synthetic chest CT phantoms (`medviewer.demo.phantoms`,
variant "standard", seeds {min(train_seeds)}-{max(train_seeds)}) rendered on the demo CT grid
(0.7 x 0.7 x 1.5 mm); {CROPS_PER_CASE} crops of {CROP[2]} x {CROP[1]} x {CROP[0]} voxels per phantom. Inputs get
in-plane correlated Gaussian noise of {NOISE_RANGE_HU[0]:g}-{NOISE_RANGE_HU[1]:g} HU (the phantoms' noise
model, also used by `simulate_low_dose`); the target is the noise-free image. L1 loss,
Adam with cosine decay, {iterations} iterations of 4 patches of {TRAIN_PATCH[2]} x {TRAIN_PATCH[1]} x {TRAIN_PATCH[0]}
(~{minutes:.0f} min on 2 CPU cores).

## Metrics (held-out phantoms, seeds {metrics['held_out_seeds'][0]}-{metrics['held_out_seeds'][-1]})
Root-mean-square error against the noise-free phantom, inside the body, in HU:

{common.metrics_table(table, ["input", "noisy", "denoised", "error reduced by"])}

"Quarter dose" is the phantom with `simulate_low_dose(..., dose_fraction=0.25)`.
CPU time on one 512 x 512 x 200 image: about {metrics['seconds_per_case_cpu']} s (median).

## Limitations
Real CT noise is not Gaussian and depends on the reconstruction kernel; real anatomy has
finer texture that a denoiser may smooth away. Use only to demonstrate the pipeline.

## Reproduce
```
python -m medviewer.ai.demo_models.denoise      # or: make demo-models
```
{common.reproducibility_note(metrics, SEED)}

Licence: Apache-2.0 (weights and code).
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--minutes", type=float, default=12.0, help="stop training after this long")
    parser.add_argument("--train-cases", type=int, default=12)
    parser.add_argument("--held-out", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--out", default=str(common.RESOURCES_MODELS / NAME))
    parser.add_argument("--evaluate-only", action="store_true",
                        help="keep the weights in --out; re-evaluate and rewrite the manifest and card")
    args = parser.parse_args(argv)

    common.set_seeds(SEED, common.threads_from_env())
    draft = manifest()
    train_seeds = list(common.TRAIN_SEEDS)[: args.train_cases]
    crops = []
    for seed in train_seeds if not args.evaluate_only else []:
        crops.extend(common.cached_arrays(NAME, seed, make_training_crops)["clean"])
        common.log(f"training case {seed} ready ({len(crops)} crops)")
    clean = torch.from_numpy(np.stack(crops).astype(np.float32))[:, None] if crops else None
    low, high = WINDOW
    network = build_architecture("medviewer.DenoiseCNN", ARGUMENTS)
    generator = torch.Generator().manual_seed(SEED)

    def step(_iteration: int) -> torch.Tensor:
        index = torch.randint(len(clean), (args.batch,), generator=generator)
        starts = [int(torch.randint(c - p + 1, (1,), generator=generator)) for c, p in zip(CROP, TRAIN_PATCH)]
        block = clean[index][:, :, starts[0]:starts[0] + TRAIN_PATCH[0], starts[1]:starts[1] + TRAIN_PATCH[1],
                             starts[2]:starts[2] + TRAIN_PATCH[2]]
        if torch.rand(1, generator=generator) < 0.5:
            block = block.flip(-1)
        sigma = torch.empty(args.batch).uniform_(*NOISE_RANGE_HU, generator=generator)
        noisy = block + correlated_noise(tuple(block.shape), sigma, generator)
        scale = OUTPUT_RANGE[1] / (high - low)
        return F.l1_loss(network((noisy - low) * scale), (block - low) * scale)

    out = Path(args.out)
    if args.evaluate_only:
        network.load_state_dict(torch.load(out / "weights.pt", weights_only=True))
        previous = common.load_previous_metrics(out)
        iterations, minutes, final_loss = previous["training_iterations"], previous["training_minutes"], previous["final_training_loss"]
        requested = previous.get("training_iterations_requested", args.iterations)
    else:
        started = time.perf_counter()
        losses = common.train_loop(network, step, args.iterations, learning_rate=2e-3, minutes=args.minutes, report_every=50)
        iterations, minutes, requested = len(losses), (time.perf_counter() - started) / 60, args.iterations
        final_loss = round(float(np.mean(losses[-50:])), 5)
    common.write_model_package(out, draft, network, "# draft\n")
    metrics = evaluate(ModelPackage(out, draft, "builtin"), list(common.HELD_OUT_SEEDS)[: args.held_out])
    metrics.update(training_iterations=iterations, training_iterations_requested=requested,
                   training_minutes=round(minutes, 1), final_training_loss=final_loss)
    training_data = (f"{len(train_seeds)} noise-free synthetic chest CT phantoms, variant standard, seeds "
                     f"{min(train_seeds)}-{max(train_seeds)}, 0.7x0.7x1.5 mm, simulated CT noise 5-60 HU")
    final = manifest(metrics, training_data)
    common.write_model_package(out, final, network, model_card(metrics, train_seeds, iterations, minutes))
    common.log(f"wrote {out}: {metrics['rmse_hu_in_body']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
