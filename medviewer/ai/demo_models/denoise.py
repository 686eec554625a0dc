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

from typing import Callable

import numpy as np
import torch

from medviewer.ai.demo_models import common
from medviewer.ai.manifest import ModelManifest
from medviewer.ai.registry import ModelPackage
from medviewer.ai.training.augment import correlated_noise, random_flips
from medviewer.ai.training.losses import EnhancementLoss
from medviewer.ai.training.metrics import masked_rmse
from medviewer.ai.training.package import markdown_table
from medviewer.ai.training.sampling import PatchSampler
from medviewer.demo.phantom_tissues import NOISE_CORRELATION_MM

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


def manifest(metrics: dict | None = None, training_data: str = "", created: str | None = None) -> ModelManifest:
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
        "provenance": common.provenance(NAME, metrics, training_data,
                                        "noise-free synthetic chest CT phantoms with simulated CT noise", created),
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
            rows[name]["before"].append(masked_rmse(noisy, clean, body))
            rows[name]["after"].append(masked_rmse(result.volume.array, clean, body))
        common.log(f"held-out seed {seed} (noise {params.noise_hu:.1f} HU): " + ", ".join(
            f"{n} RMSE {r['before'][-1]:.1f} -> {r['after'][-1]:.1f} HU" for n, r in rows.items()))
    return {
        "rmse_hu_in_body": {name: {"noisy": round(float(np.mean(r["before"])), 2),
                                   "denoised": round(float(np.mean(r["after"])), 2)} for name, r in rows.items()},
        "held_out_seeds": [int(s) for s in seeds],
        "seconds_per_case_cpu": round(float(np.median(seconds)), 2),
    }


def model_card(metrics: dict, train_seeds, iterations: int, minutes: float, package: ModelManifest) -> str:
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

{markdown_table(table, ["input", "noisy", "denoised", "error reduced by"])}

"Quarter dose" is the phantom with `simulate_low_dose(..., dose_fraction=0.25)`.
CPU time on one 512 x 512 x 200 image: about {metrics['seconds_per_case_cpu']} s (median).

## Limitations
Real CT noise is not Gaussian and depends on the reconstruction kernel; real anatomy has
finer texture that a denoiser may smooth away. Use only to demonstrate the pipeline.

{common.card_footer(NAME, metrics, SEED)}"""


def training_step(network: torch.nn.Module, seeds: list[int], draft: ModelManifest, batch: int,
                  generator: torch.Generator) -> Callable[[int], torch.Tensor]:
    """Random patches of the noise-free crops, flipped left/right, with CT noise added; the target is the clean patch."""
    crops = []
    for seed in seeds:
        crops.extend(common.cached_arrays(NAME, seed, make_training_crops)["clean"])
        common.log(f"training case {seed} ready ({len(crops)} crops)")
    no_labels = np.zeros((1, 1, 1), np.uint8)  # the sampler draws patches anywhere: nothing to centre on
    sampler = PatchSampler(crops, [np.broadcast_to(no_labels, crop.shape) for crop in crops], TRAIN_PATCH,
                           foreground_fraction=0.0, seed=SEED)
    low, high = WINDOW
    scale = OUTPUT_RANGE[1] / (high - low)  # HU -> the model's units, as the manifest's normalisation
    loss = EnhancementLoss()

    def step(_iteration: int) -> torch.Tensor:
        clean, blank = (torch.from_numpy(a) for a in sampler.sample(batch))
        clean, _ = random_flips(clean, blank, (4,), generator)
        sigma = torch.empty(batch).uniform_(*NOISE_RANGE_HU, generator=generator)
        noisy = clean + correlated_noise(tuple(clean.shape), sigma, NOISE_CORRELATION_MM / common.DEMO_SPACING[0],
                                         generator)
        return loss(network((noisy - low) * scale), (clean - low) * scale)

    return step


def training_data(seeds: list[int]) -> str:
    return (f"{len(seeds)} noise-free synthetic chest CT phantoms, variant standard, seeds "
            f"{min(seeds)}-{max(seeds)}, 0.7x0.7x1.5 mm, simulated CT noise 5-60 HU")


MODEL = common.DemoModel(
    name=NAME, description=__doc__.splitlines()[0], seed=SEED, architecture="medviewer.DenoiseCNN",
    arguments=ARGUMENTS, manifest=manifest, training_step=training_step, evaluate=evaluate, model_card=model_card,
    training_data=training_data, summary=lambda metrics: str(metrics["rmse_hu_in_body"]),
    iterations=1500, minutes=12.0, train_cases=12, held_out=3, batch=4, learning_rate=2e-3, report_every=50,
)


def main(argv=None) -> int:
    return common.main(MODEL, argv)


if __name__ == "__main__":
    raise SystemExit(main())
