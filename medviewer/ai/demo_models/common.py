"""Shared pieces of the demo-model training scripts: seeds, cached phantom cases, patch sampling, training, packaging, metrics.

The demo models are trained on the synthetic chest CT phantoms
(``medviewer.demo.phantoms``) with fixed seeds. Training cases are generated at
the demo CT's resolution and brought to the model grid with the same
``prepare_input`` the inference pipeline uses, so the networks see at training time
exactly the kind of input they get in the app. Held-out evaluation cases use other
seeds and run through the full inference pipeline (model grid and back).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from scipy import ndimage

from medviewer.ai.manifest import ModelManifest
from medviewer.ai.packaging import save_package
from medviewer.ai.preprocess import prepare_input, resample_labels
from medviewer.ai.training.augment import augment_intensity  # noqa: F401 - shared with fine-tuning (medviewer train)
from medviewer.core.geometry import Geometry
from medviewer.core.paths import cache_dir
from medviewer.io.atomic import atomic_write_text, atomic_write_with

#: Where the built-in packages are written (the repository's resources/models).
RESOURCES_MODELS = Path(__file__).resolve().parents[3] / "resources" / "models"

#: The demo CT's grid (issue 2): about 512 x 512 x 200 at realistic spacing.
DEMO_SHAPE = (200, 512, 512)  # (z, y, x)
DEMO_SPACING = (0.7, 0.7, 1.5)  # (x, y, z) mm

TRAIN_SEEDS = range(1000, 1040)
HELD_OUT_SEEDS = range(9000, 9010)


def set_seeds(seed: int, threads: int = 2) -> None:
    """Fix every random generator (and the thread count, which changes float sums) for reproducible training."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------------- phantom cases
def generate_case(seed: int, variant: str = "standard", noise_free: bool = False,
                  shape_zyx: Sequence[int] = DEMO_SHAPE, spacing: Sequence[float] = DEMO_SPACING):
    """A phantom (``medviewer.demo.phantoms.PhantomCase``) on the demo CT grid."""
    import dataclasses

    from medviewer.demo import phantoms

    params = phantoms.ChestPhantomParams.from_seed(seed, variant=variant)
    if noise_free:
        params = dataclasses.replace(params, noise_hu=0.0)
    return phantoms.generate_chest_ct(params, shape=tuple(shape_zyx), spacing=tuple(spacing))


def cached_arrays(model: str, seed: int, make: Callable[[int], dict[str, np.ndarray]], tag: str = "") -> dict[str, np.ndarray]:
    """``make(seed)`` (arrays derived from one phantom), cached as .npz under the user cache folder.

    Rendering a full-size phantom takes seconds; training reuses the small derived
    arrays. Delete ``cache_dir()/demo_training`` to rebuild from scratch.
    """
    folder = cache_dir() / "demo_training" / model
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"seed{seed}{'-' + tag if tag else ''}.npz"
    if path.is_file():
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    result = make(seed)
    atomic_write_with(path, lambda tmp: np.savez_compressed(tmp, **result))
    return result


def to_model_grid(image: np.ndarray, labels: np.ndarray | None, geometry: Geometry, manifest: ModelManifest):
    """Image (normalised) and labels on ``manifest``'s model grid, exactly as inference prepares them."""
    prepared = prepare_input(image, geometry, manifest.input)
    grid_labels = resample_labels(labels, geometry, prepared.grid) if labels is not None else None
    return prepared, grid_labels


# ---------------------------------------------------------------------------- sampling and training
class PatchSampler:
    """Random training patches; a share of them centred on a chosen foreground voxel.

    Parameters
    ----------
    hard_negatives, hard_fraction:
        Masks (one per case) of background voxels that are easily mistaken for
        foreground, and the share of patches centred on one of them.
    per_object:
        Centre foreground patches on a random voxel of a random connected object
        rather than of a random foreground voxel, so small objects are seen as often
        as large ones.
    images, targets:
        (z, y, x) arrays on the model grid.
    patch_zyx:
        Patch size; images are padded with ``pad_value`` (targets with 0) when smaller.
    foreground_fraction:
        Share of patches centred on a voxel where ``foreground(target)`` is true.
    """

    def __init__(self, images: list[np.ndarray], targets: list[np.ndarray], patch_zyx: Sequence[int],
                 foreground_fraction: float = 0.5, pad_value: float = 0.0,
                 foreground: Callable[[np.ndarray], np.ndarray] = lambda t: t > 0, seed: int = 0,
                 per_object: bool = False, hard_negatives: list[np.ndarray] | None = None,
                 hard_fraction: float = 0.0) -> None:
        self.patch = tuple(int(p) for p in patch_zyx)
        self.rng = np.random.default_rng(seed)
        self.images, self.targets, self.foreground = [], [], []
        self.objects: list[tuple[int, np.ndarray]] = []  # (case, voxels of one connected object)
        for case, (image, target) in enumerate(zip(images, targets)):
            pad = [(0, max(0, p - s)) for p, s in zip(self.patch, image.shape)]
            image = np.pad(image, pad, constant_values=pad_value)
            target = np.pad(target, pad)
            self.images.append(image)
            self.targets.append(target)
            self.foreground.append(np.argwhere(foreground(target)))
            if per_object:
                components, count = ndimage.label(foreground(target))
                for slices, number in zip(ndimage.find_objects(components), range(1, count + 1)):
                    voxels = np.argwhere(components[slices] == number) + [s.start for s in slices]
                    self.objects.append((case, voxels))
        self.foreground_fraction = foreground_fraction
        self.per_object = per_object
        # Voxels where mistakes are likely (e.g. vessels that look like nodules), as (case, z, y, x) rows.
        self.hard = np.concatenate(
            [np.concatenate([np.full((len(v), 1), case), v], axis=1)
             for case, v in enumerate(np.argwhere(mask) for mask in hard_negatives)]
        ) if hard_negatives else np.zeros((0, 4), int)
        self.hard_fraction = hard_fraction if len(self.hard) else 0.0

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, targets = [], []
        for _ in range(batch):
            case = int(self.rng.integers(len(self.images)))
            image, target, foreground = self.images[case], self.targets[case], self.foreground[case]
            shape = np.asarray(image.shape)
            draw = self.rng.random()
            if draw < self.hard_fraction:
                row = self.hard[int(self.rng.integers(len(self.hard)))]
                case, centre = int(row[0]), row[1:]
                image, target = self.images[case], self.targets[case]
                shape = np.asarray(image.shape)
                jitter = self.rng.integers(-np.asarray(self.patch) // 4, np.asarray(self.patch) // 4 + 1)
                start = centre + jitter - np.asarray(self.patch) // 2
            elif self.per_object and self.objects and draw - self.hard_fraction < self.foreground_fraction:
                # Every object (e.g. each nodule, small or large) is equally likely to be shown.
                case, voxels = self.objects[int(self.rng.integers(len(self.objects)))]
                image, target = self.images[case], self.targets[case]
                shape = np.asarray(image.shape)
                centre = voxels[int(self.rng.integers(len(voxels)))]
                jitter = self.rng.integers(-np.asarray(self.patch) // 4, np.asarray(self.patch) // 4 + 1)
                start = centre + jitter - np.asarray(self.patch) // 2
            elif not self.per_object and len(foreground) and draw - self.hard_fraction < self.foreground_fraction:
                centre = foreground[int(self.rng.integers(len(foreground)))]
                jitter = self.rng.integers(-np.asarray(self.patch) // 4, np.asarray(self.patch) // 4 + 1)
                start = centre + jitter - np.asarray(self.patch) // 2
            else:
                start = self.rng.integers(0, shape - self.patch + 1)
            start = np.clip(start, 0, shape - self.patch)
            block = tuple(slice(int(s), int(s) + p) for s, p in zip(start, self.patch))
            images.append(image[block])
            targets.append(target[block])
        return (torch.from_numpy(np.stack(images)[:, None].astype(np.float32)),
                torch.from_numpy(np.stack(targets)[:, None]))


def random_flips(images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator,
                 axes: Sequence[int] = (2, 3, 4)) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip the whole batch along each of ``axes`` with probability 1/2 (for tasks without a left/right meaning)."""
    for axis in axes:
        if torch.rand(1, generator=generator) < 0.5:
            images, targets = images.flip(axis), targets.flip(axis)
    return images, targets


def train_loop(network: torch.nn.Module, step: Callable[[int], torch.Tensor], iterations: int,
               learning_rate: float = 2e-3, minutes: float | None = None, report_every: int = 25) -> list[float]:
    """Adam with cosine decay; ``step(i)`` returns the loss of iteration ``i``.

    The schedule follows whichever is further along: iterations done or the time
    budget ``minutes`` used (then training stops early, with the learning rate fully
    decayed). Runs that finish their iterations within the budget are reproducible
    bit for bit; pass ``minutes=None`` (``--minutes 0``) to always run every iteration.
    """
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    network.train()
    losses: list[float] = []
    started = time.perf_counter()
    budget = minutes * 60 if minutes else None
    for iteration in range(iterations):
        done = iteration / iterations
        if budget is not None:
            done = max(done, (time.perf_counter() - started) / budget)
        if done >= 1.0:
            log(f"time budget of {minutes} min reached after {iteration} iterations")
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * done)))
        optimizer.zero_grad(set_to_none=True)
        loss = step(iteration)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if (iteration + 1) % report_every == 0:
            recent = np.mean(losses[-report_every:])
            log(f"iteration {iteration + 1}/{iterations}: loss {recent:.4f} ({time.perf_counter() - started:.0f} s)")
    network.eval()
    return losses


# ---------------------------------------------------------------------------- packaging
def write_model_package(folder: Path, manifest: ModelManifest, network: torch.nn.Module, card: str) -> Path:
    """Write the package (see ``medviewer.ai.packaging.save_package``)."""
    return save_package(folder, manifest, network, card)


def metrics_table(rows: Iterable[Sequence], headers: Sequence[str]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient of two boolean masks (1.0 when both are empty)."""
    total = int(prediction.sum()) + int(truth.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(prediction, truth).sum()) / total


def froc_points(per_scan: list[tuple[list[tuple[float, np.ndarray]], list[dict]]],
                fp_rates: Sequence[float] = (0.125, 0.25, 0.5, 1, 2, 4, 8)) -> dict[float, float]:
    """Sensitivity at given false positives per scan (LUNA16-style FROC).

    ``per_scan`` holds, for each scan, its detections as (score, centre world mm) and
    its true nodules (``center``, ``diameter_mm``). A detection is a hit when its
    centre lies within the nodule's radius (at least 3 mm); several hits on one
    nodule count once, and a detection hitting nothing is a false positive.
    """
    candidates = []  # (score, scan, nodule index or -1)
    total_nodules = 0
    for scan, (detections, nodules) in enumerate(per_scan):
        total_nodules += len(nodules)
        for score, centre in detections:
            hit = -1
            best = np.inf
            for n, nodule in enumerate(nodules):
                distance = float(np.linalg.norm(np.asarray(centre) - np.asarray(nodule["center"])))
                if distance <= max(nodule["diameter_mm"] / 2.0, 3.0) and distance < best:
                    hit, best = n, distance
            candidates.append((score, scan, hit))
    candidates.sort(key=lambda c: -c[0])
    scans = max(1, len(per_scan))
    found: set[tuple[int, int]] = set()
    false_positives = 0
    curve = [(0.0, 0.0)]  # (FP per scan, sensitivity)
    for score, scan, hit in candidates:
        if hit < 0:
            false_positives += 1
        else:
            found.add((scan, hit))
        curve.append((false_positives / scans, len(found) / max(1, total_nodules)))
    return {rate: max(s for fp, s in curve if fp <= rate) for rate in fp_rates}


def reproducibility_note(metrics: dict, seed: int) -> str:
    """Model-card text saying how exactly a rerun reproduces these weights."""
    done, requested = metrics["training_iterations"], metrics.get("training_iterations_requested", metrics["training_iterations"])
    base = (f"Fixed seeds (network {seed}, phantoms as above). A run that completes all its iterations "
            f"(e.g. `--minutes 0`) gives bit-identical weights with the same torch version and thread count (2).")
    if done < requested:
        return base + (f" This model's run stopped at its time budget after {done} of {requested} iterations, "
                       f"so its learning-rate schedule followed the machine's speed: a rerun gives a model of "
                       f"similar quality, not identical weights.")
    return base


def load_previous_metrics(folder: Path) -> dict:
    """The metrics of the package already in ``folder`` (to re-evaluate without retraining)."""
    return json.loads((folder / "model.json").read_text(encoding="utf-8"))["provenance"]["metrics"]


def save_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def threads_from_env(default: int = 2) -> int:
    return int(os.environ.get("MEDVIEWER_TRAIN_THREADS", default))
