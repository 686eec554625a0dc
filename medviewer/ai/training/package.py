"""The output of a training run: a new versioned model package with provenance and a model card.

The package is written into a hidden temporary folder beside its final place
(``models/NAME/.VERSION.partial-PID``), checked by loading and running it with the
inference engine, completed with the measured metrics, and only then renamed to
``models/NAME/VERSION``. A cancelled or crashed run therefore never leaves a
half-written package where the registry would list it.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from medviewer.ai.manifest import MANIFEST_NAME, ModelManifest, version_key
from medviewer.ai.registry import ModelRegistry
from medviewer.ai.tasks import Task
from medviewer.ai.training.config import TrainingResult, comparison_rows
from medviewer.ai.training.data import LabelPlan, label_key
from medviewer.core.errors import ModelError
from medviewer.core.labels import default_color

WEIGHTS_NAME = "weights.pt"


def bump_minor(version: str) -> str:
    """``1.0.0`` -> ``1.1.0`` (a fine-tuned model is a new minor version of its parent)."""
    match = re.match(r"^(\d+)\.(\d+)", version)
    if not match:
        return "1.1.0"
    return f"{int(match.group(1))}.{int(match.group(2)) + 1}.0"


def choose_version(name: str, base: ModelManifest, registry: ModelRegistry, models_dir: Path) -> str:
    """The next free version of ``name``: a minor step above every known version (and the base's, for its own name)."""
    known = [p.version for p in registry.versions(name)]
    folder = models_dir / name
    if folder.is_dir():
        known += [p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if name == base.name:
        known.append(base.version)
    if not known:
        return "1.0.0"
    version = bump_minor(max(known, key=version_key))
    while (folder / version).exists():
        version = bump_minor(version)
    return version


def output_manifest_dict(base: ModelManifest, plan: LabelPlan, from_scratch: bool) -> dict[str, Any]:
    """``outputs`` and ``runtime.arguments`` of the new model (the base's, or the dataset's labels from scratch)."""
    outputs = base.to_dict()["outputs"]
    arguments = dict(base.runtime.arguments)
    if base.task == Task.SEGMENTATION and from_scratch:
        base_colors = {label_key(l.name): l.color for l in base.outputs.labels}
        base_values = {label_key(l.name): l.value for l in base.outputs.labels}
        keep = {base_values_key for base_values_key, value in base_values.items() if value in base.outputs.keep_largest_component}
        outputs["labels"] = [
            {"value": value, "name": name, "color": list(base_colors.get(label_key(name), default_color(value)))}
            for name, value in zip(plan.class_names, plan.model_values)
        ]
        outputs["keep_largest_component"] = [v for n, v in zip(plan.class_names, plan.model_values) if label_key(n) in keep]
        channels = plan.classes + (1 if base.outputs.activation == "softmax" else 0)
        if "out_channels" in arguments:
            arguments["out_channels"] = channels
    return {"outputs": outputs, "arguments": arguments}


def new_manifest(base: ModelManifest, name: str, version: str, plan: LabelPlan, from_scratch: bool,
                 dataset_name: str, metrics: dict[str, Any], training_data: str, command: str) -> ModelManifest:
    """The new package's validated manifest: the base's input and inference settings, new name, outputs, provenance."""
    data = base.to_dict()
    parts = output_manifest_dict(base, plan, from_scratch)
    how = "trained from scratch" if from_scratch else "fine-tuned"
    data.update(
        name=name,
        version=version,
        title=f"{base.title or base.name} ({how} on {dataset_name})" if name != base.name else (base.title or base.name),
        description=(f"{base.description} " if base.description else "")
        + f"{how.capitalize()} from {base.ref} on the annotation dataset {dataset_name}.",
        outputs=parts["outputs"],
    )
    data["runtime"] = {"type": "builtin", "file": WEIGHTS_NAME, "architecture": base.runtime.architecture,
                       "arguments": parts["arguments"]}
    data["provenance"] = {
        "training_data": training_data,
        "license": base.provenance.license,
        "metrics": metrics,
        "authors": base.provenance.authors,
        "created": time.strftime("%Y-%m-%d"),
        "parent": base.ref,
        "training_command": command,
        "notes": f"{how.capitalize()} in medviewer from {base.ref}.",
    }
    return ModelManifest.from_dict(data)


def markdown_table(rows: Iterable[Sequence], headers: Sequence[str]) -> str:
    """A Markdown table (model cards)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def model_card(manifest: ModelManifest, base: ModelManifest, result: TrainingResult, settings: dict[str, Any],
               from_scratch: bool) -> str:
    """MODEL_CARD.md: what the model is, the training data, the settings, and validation before vs after."""
    origin = (f"Trained from scratch (with the architecture and input settings of **{base.ref}**)" if from_scratch
              else f"Fine-tuned from **{base.ref}**")
    rows = comparison_rows(result.task, result.before, result.after)
    metric = "Dice per label" if result.task == Task.SEGMENTATION else "sensitivity and false positives per scan"
    history = [(r.epoch, f"{r.loss:.4f}", "n/a" if r.score is None else f"{r.score:.3f}", f"{r.seconds:.1f}")
               for r in result.history]
    settings_rows = [(key, value) for key, value in settings.items() if value is not None]
    return f"""# {manifest.display_name}

{manifest.description}

{origin} on the annotation dataset **{result.dataset_name}**
(nnU-Net v2 layout, corrected labels{' and reviewed boxes' if result.task == Task.DETECTION else ''}).
Task: {manifest.task}; modality: {', '.join(manifest.modality)}; input: {', '.join(f'{v:g}' for v in manifest.input.spacing or ()) or 'native'} mm, {manifest.input.orientation or 'native'} orientation.

**Check this model on your own data before relying on it.** {base.title or base.name}'s own limitations apply.

## Training data
{len(result.training_cases)} training case(s): {', '.join(result.training_cases)}

{len(result.validation_cases)} validation case(s) (fixed split, never trained on unless noted below): {', '.join(result.validation_cases)}

## Validation: {metric}, before ({result.base_ref}) vs after ({result.ref})
Measured through the full inference pipeline on the validation cases' own grids.

{markdown_table(rows, ('figure', 'before', 'after', 'change'))}

## Training
{len(result.history)} epoch(s), stopped because: {result.stopped_because}; best epoch {result.best_epoch}
(its weights are the ones shipped); {result.seconds_per_epoch:.1f} s per epoch, {result.seconds_total / 60:.1f} min in all
on {result.world_size} process(es).

{markdown_table(history, ('epoch', 'training loss', 'validation score (model grid)', 'seconds'))}

Settings:

{markdown_table(settings_rows, ('setting', 'value'))}
{chr(10).join('- ' + w for w in result.warnings) if result.warnings else ''}
"""


def partial_folder(models_dir: Path, name: str, version: str) -> Path:
    return models_dir / name / f".{version}.partial-{os.getpid()}"


def final_folder(models_dir: Path, name: str, version: str) -> Path:
    return models_dir / name / version


def publish(partial: Path, final: Path) -> Path:
    """Move a finished package into place (one rename; refuses to overwrite an existing version)."""
    if (final / MANIFEST_NAME).exists():
        raise ModelError(f"model {final.parent.name}:{final.name} already exists; choose a new version", final)
    if final.exists():
        shutil.rmtree(final)  # an empty or broken leftover without a manifest
    os.replace(partial, final)
    return final


def remove_partial(partial: Path) -> None:
    shutil.rmtree(partial, ignore_errors=True)
