"""What the demo-model scripts share: seeds, cached phantom cases, the command line and ``main``.

The demo models are trained on the synthetic chest CT phantoms
(``medviewer.demo.phantoms``) with fixed seeds, using the same toolkit as fine-tuning
in the app (``medviewer.ai.training``: patch sampler, augmentation, losses, the
learning-rate schedule and the metrics), so a model card and a fine-tuning report
score a model the same way. Training cases are generated at the demo CT's resolution
and brought to the model grid with the same ``prepare_input`` the inference pipeline
uses, so the networks see at training time exactly the kind of input they get in the
app. Held-out evaluation cases use other seeds and run through the full inference
pipeline (model grid and back).

Each script describes its model with a ``DemoModel`` and calls ``main``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from medviewer.ai.architectures import build_architecture
from medviewer.ai.manifest import MODEL_CARD_NAME, ModelManifest, write_manifest
from medviewer.ai.packaging import save_package
from medviewer.ai.pipeline import load_package
from medviewer.ai.preprocess import prepare_input, resample_labels
from medviewer.ai.registry import ModelPackage
from medviewer.ai.training.augment import augment_intensity, random_flips
from medviewer.ai.training.loop import train_iterations
from medviewer.ai.training.sampling import PatchSampler
from medviewer.core.geometry import Geometry
from medviewer.core.paths import cache_dir
from medviewer.demo import phantoms
from medviewer.io.atomic import atomic_write_text, atomic_write_with

#: Where the built-in packages are written (the repository's resources/models).
RESOURCES_MODELS = Path(__file__).resolve().parents[3] / "resources" / "models"

#: The demo CT's grid (issue 2): about 512 x 512 x 200 at realistic spacing.
DEMO_SHAPE = (200, 512, 512)  # (z, y, x)
DEMO_SPACING = (0.7, 0.7, 1.5)  # (x, y, z) mm
_DEFAULT_GRID = (DEMO_SHAPE, DEMO_SPACING)

TRAIN_SEEDS = range(1000, 1040)
HELD_OUT_SEEDS = range(9000, 9010)

#: What trains the demo models (recorded in their metrics as ``training_toolkit``).
TOOLKIT = "medviewer.ai.training"
#: Metrics that describe the training run, not the model's quality (kept when re-evaluating).
TRAINING_RECORD = ("training_iterations", "training_iterations_requested", "training_minutes", "final_training_loss",
                   "training_toolkit")


def set_seeds(seed: int, threads: int = 2) -> None:
    """Fix every random generator (and the thread count, which changes float sums) for reproducible training."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def threads_from_env(default: int = 2) -> int:
    return int(os.environ.get("MEDVIEWER_TRAIN_THREADS", default))


# ---------------------------------------------------------------------------- phantom cases
def generate_case(seed: int, variant: str = "standard", noise_free: bool = False,
                  shape_zyx: Sequence[int] | None = None, spacing: Sequence[float] | None = None):
    """A phantom (``medviewer.demo.phantoms.PhantomCase``) on the demo CT grid (``DEMO_SHAPE``, ``DEMO_SPACING``)."""
    params = phantoms.ChestPhantomParams.from_seed(seed, variant=variant)
    if noise_free:
        params = dataclasses.replace(params, noise_hu=0.0)
    return phantoms.generate_chest_ct(params, shape=tuple(shape_zyx or DEMO_SHAPE), spacing=tuple(spacing or DEMO_SPACING))


def cached_arrays(model: str, seed: int, make: Callable[[int], dict[str, np.ndarray]], tag: str = "") -> dict[str, np.ndarray]:
    """``make(seed)`` (arrays derived from one phantom), cached as .npz under the user cache folder.

    Rendering a full-size phantom takes seconds; training reuses the small derived
    arrays. Delete ``cache_dir()/demo_training`` to rebuild from scratch.
    """
    folder = cache_dir() / "demo_training" / model
    folder.mkdir(parents=True, exist_ok=True)
    if (tuple(DEMO_SHAPE), tuple(DEMO_SPACING)) != _DEFAULT_GRID:  # a test's small grid never mixes with real cases
        tag = "-".join(filter(None, [tag, "x".join(map(str, DEMO_SHAPE)), "x".join(f"{v:g}" for v in DEMO_SPACING)]))
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


def phantom_training_data(seeds: Sequence[int]) -> str:
    """The manifest's ``training_data`` of a model trained on standard phantoms on the demo grid."""
    return (f"{len(seeds)} synthetic chest CT phantoms, variant standard, seeds "
            f"{min(seeds)}-{max(seeds)}, 512x512x200 at 0.7x0.7x1.5 mm")


# ---------------------------------------------------------------------------- training steps
def patch_step(network: torch.nn.Module, sampler: PatchSampler, loss: torch.nn.Module, batch: int,
               generator: torch.Generator, flip_axes: Sequence[int] = ()) -> Callable[[int], torch.Tensor]:
    """One training step as fine-tuning does it: balanced patches, flips, intensity augmentation, the task's loss."""

    def step(_iteration: int) -> torch.Tensor:
        images, targets = (torch.from_numpy(a) for a in sampler.sample(batch))
        images, targets = random_flips(images, targets, flip_axes, generator)
        images = augment_intensity(images, generator)
        return loss(network(images), targets)

    return step


# ---------------------------------------------------------------------------- model description
def provenance(name: str, metrics: dict | None, training_data: str, default_training_data: str,
               created: str | None = None) -> dict[str, Any]:
    """The manifest's provenance block of a demo model."""
    return {
        "training_data": training_data or default_training_data,
        "license": "Apache-2.0",
        "metrics": metrics or {},
        "authors": "medviewer contributors",
        "created": created or time.strftime("%Y-%m-%d"),
        "training_command": f"python -m medviewer.ai.demo_models.{MODULES[name]}",
    }


#: Script module of each demo model (the training command in its manifest).
MODULES = {"ct-lung-seg": "lung_seg", "ct-nodule-det": "nodule_det", "ct-denoise": "denoise"}


@dataclass(frozen=True)
class DemoModel:
    """What one demo model's script defines; ``main`` trains, evaluates and packages it.

    ``manifest(metrics, training_data, created)`` builds the manifest a training run writes;
    ``training_step(network, seeds, draft, batch, generator)`` prepares the training
    cases of ``seeds`` and returns ``step(iteration) -> loss``; ``evaluate(package,
    seeds)`` scores a package on held-out phantoms; ``model_card(metrics, seeds,
    iterations, minutes, manifest)`` writes the card of the package with ``manifest``; ``training_data(seeds)`` says what it was
    trained on; ``summary(metrics)`` is the last log line.
    """

    name: str
    description: str
    seed: int
    architecture: str
    arguments: dict
    manifest: Callable[..., ModelManifest]
    training_step: Callable[..., Callable[[int], torch.Tensor]]
    evaluate: Callable[[ModelPackage, list[int]], dict]
    model_card: Callable[[dict, list[int], int, float, ModelManifest], str]
    training_data: Callable[[list[int]], str]
    summary: Callable[[dict], str]
    iterations: int
    minutes: float
    train_cases: int
    held_out: int
    batch: int
    learning_rate: float
    report_every: int = 25
    loss_digits: int = 5


def reproducibility_note(metrics: dict, seed: int) -> str:
    """Model-card text saying how exactly a rerun reproduces these weights."""
    done, requested = metrics["training_iterations"], metrics.get("training_iterations_requested", metrics["training_iterations"])
    if metrics.get("training_toolkit") != TOOLKIT:
        # Weights from before the scripts moved to ai/training, re-scored with --evaluate-only.
        return (f"These weights were trained ({done} of {requested} iterations, network seed {seed}, phantoms as "
                f"above) by an earlier version of this script with its own patch sampler, flips and loss; the "
                f"metrics above are re-computed with `{TOOLKIT}.metrics`. The script now trains with `{TOOLKIT}` "
                f"(the fine-tuning toolkit), so a rerun trains new weights, not these.")
    base = (f"Trained with `{TOOLKIT}` (the fine-tuning toolkit's sampler, augmentation, loss and schedule). "
            f"Fixed seeds (network {seed}, phantoms as above). A run that completes all its iterations "
            f"(e.g. `--minutes 0`) gives bit-identical weights with the same torch version and thread count (2).")
    if done < requested:
        return base + (f" This model's run stopped at its time budget after {done} of {requested} iterations, "
                       f"so its learning-rate schedule followed the machine's speed: a rerun gives a model of "
                       f"similar quality, not identical weights.")
    return base


def card_footer(name: str, metrics: dict, seed: int) -> str:
    """The model card's last sections: how to reproduce the weights, and the licence."""
    return f"""## Reproduce
```
python -m medviewer.ai.demo_models.{MODULES[name]}      # or: make demo-models
```
{reproducibility_note(metrics, seed)}

Licence: Apache-2.0 (weights and code).
"""


def parse_arguments(model: DemoModel, argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m medviewer.ai.demo_models.{MODULES[model.name]}",
                                     description=model.description)
    parser.add_argument("--iterations", type=int, default=model.iterations)
    parser.add_argument("--minutes", type=float, default=model.minutes, help="time budget (0: none)")
    parser.add_argument("--train-cases", type=int, default=model.train_cases)
    parser.add_argument("--held-out", type=int, default=model.held_out)
    parser.add_argument("--batch", type=int, default=model.batch)
    parser.add_argument("--out", default=str(RESOURCES_MODELS / model.name))
    parser.add_argument("--evaluate-only", action="store_true",
                        help="keep the weights in --out (not rewritten) and their training record and CPU timing; "
                             "re-evaluate on the held-out phantoms and rewrite the manifest and model card")
    return parser.parse_args(argv)


def _differences(expected: dict, actual: dict, prefix: str = "") -> list[str]:
    """Dotted names of the manifest fields (provenance aside) whose values differ."""
    names = []
    for key in sorted(set(expected) | set(actual)):
        if not prefix and key == "provenance":
            continue
        a, b = expected.get(key), actual.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            names += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            names.append(prefix + key)
    return names


def main(model: DemoModel, argv: Sequence[str] | None = None) -> int:
    """Train (or, with ``--evaluate-only``, re-score) ``model`` and write its package to ``--out``."""
    args = parse_arguments(model, argv)
    set_seeds(model.seed, threads_from_env())
    out = Path(args.out)
    train_seeds = list(TRAIN_SEEDS)[: args.train_cases]
    held_out = list(HELD_OUT_SEEDS)[: args.held_out]
    draft = model.manifest()
    if args.evaluate_only:
        # Re-score the package exactly as shipped: its own manifest (spacing, thresholds) with its weights.
        package = load_package(out, origin="builtin")
        shipped = package.manifest
        differences = _differences(draft.to_dict(), shipped.to_dict())
        if differences:
            log(f"the package in {out} differs from this script's manifest in {', '.join(differences)}; "
                "it is evaluated as shipped")
        previous = shipped.provenance.metrics
        record = {key: previous[key] for key in TRAINING_RECORD if key in previous}
        record.setdefault("training_iterations_requested", previous["training_iterations"])
        metrics = model.evaluate(package, held_out)
        # Timing depends on the machine; the evaluation may run on a busy one.
        metrics["seconds_per_case_cpu"] = previous.get("seconds_per_case_cpu", metrics.get("seconds_per_case_cpu"))
        metrics.update(record)
        final = shipped.derive(provenance=dataclasses.replace(shipped.provenance, metrics=metrics))
        write_manifest(final, out)
        atomic_write_text(out / MODEL_CARD_NAME, model.model_card(metrics, train_seeds, record["training_iterations"],
                                                                  record["training_minutes"], final))
    else:
        network = build_architecture(model.architecture, model.arguments)
        generator = torch.Generator().manual_seed(model.seed)
        step = model.training_step(network, train_seeds, draft, args.batch, generator)
        started = time.perf_counter()
        losses = train_iterations(network, step, args.iterations, model.learning_rate, args.minutes,
                                  model.report_every, log)
        minutes = (time.perf_counter() - started) / 60
        save_package(out, draft, network, "# draft\n")
        metrics = model.evaluate(ModelPackage(out, draft, "builtin"), held_out)
        metrics.update(training_iterations=len(losses), training_iterations_requested=args.iterations,
                       training_minutes=round(minutes, 1), training_toolkit=TOOLKIT,
                       final_training_loss=round(float(np.mean(losses[-model.report_every:])), model.loss_digits))
        final = model.manifest(metrics, model.training_data(train_seeds))
        save_package(out, final, network, model.model_card(metrics, train_seeds, len(losses), minutes, final))
    log(f"wrote {out}: {model.summary(metrics)}")
    return 0
