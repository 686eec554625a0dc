"""Recognising nnU-Net v2 result folders and reading what they say (torch-free: listing models stays cheap).

A *trained-model folder* is ``<Trainer>__<Plans>__<configuration>/`` holding ``dataset.json``,
``plans.json`` and ``fold_*/checkpoint_final.pth`` (or ``checkpoint_best.pth``). A *dataset folder*
(``Dataset003_Liver/`` under ``nnUNet_results``) holds several of them, one per trainer, plans and
configuration. Each trained-model folder becomes one model: named after the dataset, its version is
the folder name, so ``name`` picks the 3d_fullres configuration and ``name:2d`` (or the full folder
name) another one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medviewer.ai.manifest import (
    InferenceSpec,
    InputSpec,
    LabelSpec,
    ModelManifest,
    NormalizationSpec,
    OutputSpec,
    Provenance,
    RuntimeSpec,
)
from medviewer.ai.tasks import Task
from medviewer.core.errors import ModelError
from medviewer.core.labels import default_color

DATASET_JSON = "dataset.json"
PLANS_JSON = "plans.json"
CHECKPOINT_NAMES = ("checkpoint_final.pth", "checkpoint_best.pth")
DEFAULT_CONFIGURATION = "3d_fullres"
#: ``runtime.type`` of the manifests made here (never accepted from a model.json)
RUNTIME_TYPE = "nnunet"

_MR_CHANNEL = re.compile(r"^(mr|mri|t1|t2|flair|adc|dwi|pd|t1c|t1ce|t1gd|t2w|t1w|hbv|swi)", re.I)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ModelError(f"the nnU-Net model folder has no {path.name}", path.parent) from error
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(f"cannot read {path.name}: {error}", path) from error
    except json.JSONDecodeError as error:
        raise ModelError(f"is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})", path) from error
    if not isinstance(data, dict):
        raise ModelError("must hold a JSON object", path)
    return data


def _split_folder_name(name: str) -> tuple[str, str, str] | None:
    parts = name.split("__")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 and all(parts) else None


def _fold_folders(folder: Path) -> list[Path]:
    return sorted((p for p in folder.glob("fold_*") if p.is_dir()), key=lambda p: _fold_sort_key(p.name))


def _fold_sort_key(name: str) -> tuple:
    tail = name.removeprefix("fold_")
    return (0, int(tail), "") if tail.isdigit() else (1, 0, tail)


def is_trained_model_folder(folder: str | Path) -> bool:
    """True for ``<Trainer>__<Plans>__<configuration>/`` with plans.json, dataset.json and fold folders."""
    folder = Path(folder)
    return (
        folder.is_dir()
        and _split_folder_name(folder.name) is not None
        and (folder / PLANS_JSON).is_file()
        and (folder / DATASET_JSON).is_file()
        and bool(_fold_folders(folder))
    )


def is_dataset_folder(folder: str | Path) -> bool:
    """True for a folder (``Dataset*/`` in nnUNet_results) holding trained-model folders."""
    folder = Path(folder)
    return folder.is_dir() and any(is_trained_model_folder(child) for child in _children(folder))


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(child for child in folder.iterdir() if child.is_dir() and not child.name.startswith("."))
    except OSError:
        return []


def find_nnunet_models(folder: str | Path) -> list[Path]:
    """Trained-model folders in ``folder``: itself, its children, or its dataset folders' children."""
    folder = Path(folder)
    if is_trained_model_folder(folder):
        return [folder]
    found: list[Path] = []
    for child in _children(folder):
        if is_trained_model_folder(child):
            found.append(child)
        elif child.name.lower().startswith("dataset") or is_dataset_folder(child):
            found.extend(grandchild for grandchild in _children(child) if is_trained_model_folder(grandchild))
    return found


def model_name_for(dataset_name: str) -> str:
    """A registry name (``[a-z0-9][a-z0-9._-]*``) for an nnU-Net dataset name (``Dataset003_Liver``)."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", dataset_name.lower()).strip("-._")
    return slug or "nnunet-model"


@dataclass(frozen=True)
class NnUNetLabels:
    """What the network's output heads mean.

    Label-based models: head ``i`` is the softmax channel of label ``values[i]`` (background
    included). Region-based models: head ``i`` is a sigmoid region painted with
    ``regions_class_order[i]`` where above 0.5, later regions over earlier ones.
    """

    names: dict[int, str]
    heads: int
    values: tuple[int, ...] = ()
    regions: tuple[tuple[int, ...], ...] = ()
    regions_class_order: tuple[int, ...] = ()

    @property
    def region_based(self) -> bool:
        return bool(self.regions)


def parse_labels(dataset_json: dict, path: Path) -> NnUNetLabels:
    """The labels (or regions) of ``dataset.json`` as nnU-Net's label manager reads them."""
    labels = dataset_json.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise ModelError("field 'labels' must be a mapping of label names to values", path)
    if labels.get("background") != 0:
        raise ModelError("field 'labels' must declare 'background': 0", path)
    values: set[int] = set()
    regions: list[tuple[str, tuple[int, ...]]] = []
    singles: dict[int, str] = {}
    region_based = any(isinstance(v, list) and len(v) > 1 for v in labels.values())
    for name, value in labels.items():
        if name == "ignore":
            continue
        members = value if isinstance(value, list) else [value]
        if not members or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in members):
            raise ModelError(f"field 'labels.{name}' must be a label value or a list of values, got {value!r}", path)
        values.update(members)
        if members != [0]:
            regions.append((name, tuple(members)))
            if len(members) == 1:
                singles.setdefault(members[0], name)
    if not region_based:
        ordered = tuple(sorted(values))
        return NnUNetLabels(names=dict(sorted(singles.items())), heads=len(ordered), values=ordered)
    order = dataset_json.get("regions_class_order")
    if not isinstance(order, list) or len(order) != len(regions) or not all(isinstance(v, int) for v in order):
        raise ModelError(
            f"field 'regions_class_order' must list one label value per region ({len(regions)} regions), got {order!r}",
            path,
        )
    names: dict[int, str] = {}
    for (name, _members), value in zip(regions, order):
        if value > 0:
            names.setdefault(value, name)
    return NnUNetLabels(names=dict(sorted(names.items())), heads=len(regions),
                        regions=tuple(m for _, m in regions), regions_class_order=tuple(order))


def resolve_configuration(plans: dict, name: str, path: Path) -> dict:
    """The configuration ``name`` of ``plans.json`` with its ``inherits_from`` chain applied."""
    configurations = plans.get("configurations")
    if not isinstance(configurations, dict):
        raise ModelError("field 'configurations' is missing", path)
    chain: list[str] = []
    current = name
    merged: dict = {}
    while True:
        if current not in configurations:
            known = ", ".join(configurations) or "none"
            raise ModelError(f"has no configuration '{current}' (it has: {known})", path)
        if current in chain:
            raise ModelError(f"configuration '{name}' inherits from itself ({' -> '.join([*chain, current])})", path)
        chain.append(current)
        entry = configurations[current]
        if not isinstance(entry, dict):
            raise ModelError(f"field 'configurations.{current}' must be a JSON object", path)
        merged = {**entry, **merged}  # the child's own fields win
        parent = entry.get("inherits_from")
        if not parent:
            break
        current = parent
    merged.pop("inherits_from", None)
    return merged


@dataclass(frozen=True)
class NnUNetModel:
    """One trained-model folder, read and checked (weights are not loaded here)."""

    folder: Path
    trainer: str
    plans_name: str
    configuration_name: str
    plans: dict
    configuration: dict
    dataset_json: dict
    labels: NnUNetLabels
    checkpoints: tuple[Path, ...]
    channel_names: tuple[str, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def dataset_name(self) -> str:
        return str(self.plans.get("dataset_name") or self.folder.parent.name)

    @property
    def plans_path(self) -> Path:
        return self.folder / PLANS_JSON

    @property
    def patch_size(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.configuration["patch_size"])

    @property
    def spacing(self) -> tuple[float, ...]:
        """Target spacing in the transposed (network) axis order."""
        return tuple(float(v) for v in self.configuration["spacing"])

    @property
    def transpose_forward(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.plans.get("transpose_forward", (0, 1, 2)))  # type: ignore[return-value]

    @property
    def transpose_backward(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.plans.get("transpose_backward", (0, 1, 2)))  # type: ignore[return-value]

    @property
    def is_2d(self) -> bool:
        return len(self.patch_size) == 2

    def manifest(self) -> ModelManifest:
        """How the registry, the AI panel and ``medviewer infer`` see this model."""
        label_specs = tuple(LabelSpec(v, n, default_color(v)) for v, n in self.labels.names.items())
        modality = _modality(self.channel_names, self.configuration.get("normalization_schemes", ()))
        # Spacing and patch in medviewer's (x, y, z) order, for display: the plans' axes are (z, y, x) transposed.
        zyx_spacing = [0.0, 0.0, 0.0]
        spacing = self.spacing if len(self.spacing) == 3 else (0.0, *self.spacing)
        for network_axis, array_axis in enumerate(self.transpose_forward):
            zyx_spacing[array_axis] = spacing[network_axis]
        patch = self.patch_size if len(self.patch_size) == 3 else (1, *self.patch_size)
        zyx_patch = [1, 1, 1]
        for network_axis, array_axis in enumerate(self.transpose_forward):
            zyx_patch[array_axis] = int(patch[network_axis])
        folds = ", ".join(p.parent.name for p in self.checkpoints)
        description = (
            f"nnU-Net v2 model of {self.dataset_name}: trainer {self.trainer}, plans {self.plans_name}, "
            f"configuration {self.configuration_name}, {len(self.checkpoints)} fold(s) ({folds}) ensembled."
        )
        licence = str(self.dataset_json.get("licence") or self.dataset_json.get("license") or "unknown")
        return ModelManifest(
            name=model_name_for(self.dataset_name),
            version=self.folder.name,
            task=Task.SEGMENTATION,
            modality=modality,
            input=InputSpec(
                channels=len(self.channel_names),
                spacing=tuple(reversed(zyx_spacing)) if all(zyx_spacing) else None,  # type: ignore[arg-type]
                normalization=NormalizationSpec("none"),
            ),
            inference=InferenceSpec(patch_size=tuple(reversed(zyx_patch)), overlap=0.5),  # type: ignore[arg-type]
            outputs=OutputSpec(labels=label_specs, activation="sigmoid" if self.labels.region_based else "softmax"),
            runtime=RuntimeSpec(RUNTIME_TYPE, PLANS_JSON),
            provenance=Provenance(
                training_data=f"{self.dataset_name} ({self.dataset_json.get('numTraining', '?')} training cases)",
                license=licence,
                notes=str(self.dataset_json.get("reference") or self.dataset_json.get("description") or ""),
            ),
            title=f"{self.dataset_name} (nnU-Net {self.configuration_name})",
            description=description,
        )


def _modality(channel_names: tuple[str, ...], schemes: Any) -> tuple[str, ...]:
    first = channel_names[0] if channel_names else ""
    scheme = schemes[0] if isinstance(schemes, list) and schemes else ""
    if first.strip().upper() == "CT" or scheme == "CTNormalization":
        return ("CT",)
    if _MR_CHANNEL.match(first.strip()):
        return ("MR",)
    return ("*",)


def load_nnunet_model(folder: str | Path) -> NnUNetModel:
    """Read and check a trained-model folder; ``ModelError`` names the file and field at fault."""
    folder = Path(folder)
    parts = _split_folder_name(folder.name)
    if parts is None:
        raise ModelError("an nnU-Net trained-model folder is named <Trainer>__<Plans>__<configuration>", folder)
    trainer, plans_name, configuration_name = parts
    plans_path = folder / PLANS_JSON
    dataset_path = folder / DATASET_JSON
    plans = _read_json(plans_path)
    dataset_json = _read_json(dataset_path)
    configuration = resolve_configuration(plans, configuration_name, plans_path)
    prefix = f"configurations.{configuration_name}"
    for key in ("patch_size", "spacing", "architecture", "normalization_schemes"):
        if key not in configuration:
            raise ModelError(f"field '{prefix}.{key}' is missing", plans_path)
    if configuration.get("previous_stage"):
        raise ModelError(
            f"configuration '{configuration_name}' is the second stage of a cascade (it needs the "
            f"'{configuration['previous_stage']}' result as input), which medviewer does not run; use 3d_fullres",
            plans_path,
        )
    patch = configuration["patch_size"]
    if not isinstance(patch, list) or len(patch) not in (2, 3) or not all(isinstance(v, int) and v > 0 for v in patch):
        raise ModelError(f"field '{prefix}.patch_size' must be 2 or 3 positive integers, got {patch!r}", plans_path)
    spacing = configuration["spacing"]
    if not isinstance(spacing, list) or len(spacing) != len(patch) or not all(
            isinstance(v, (int, float)) and v > 0 for v in spacing):
        raise ModelError(f"field '{prefix}.spacing' must be {len(patch)} positive numbers, got {spacing!r}", plans_path)
    for key in ("transpose_forward", "transpose_backward"):
        value = plans.get(key, [0, 1, 2])
        if sorted(value) != [0, 1, 2] if isinstance(value, list) else True:
            raise ModelError(f"field '{key}' must be a permutation of [0, 1, 2], got {value!r}", plans_path)
    channels = dataset_json.get("channel_names", dataset_json.get("modality"))
    if not isinstance(channels, dict) or not channels:
        raise ModelError("field 'channel_names' must map channel numbers to names, e.g. {\"0\": \"CT\"}", dataset_path)
    channel_names = tuple(str(channels[k]) for k in sorted(channels, key=lambda k: int(k)))
    schemes = configuration["normalization_schemes"]
    if not isinstance(schemes, list) or len(schemes) != len(channel_names):
        raise ModelError(f"field '{prefix}.normalization_schemes' must name one scheme per input channel "
                         f"({len(channel_names)}), got {schemes!r}", plans_path)
    labels = parse_labels(dataset_json, dataset_path)
    checkpoints = []
    for fold in _fold_folders(folder):
        found = next((fold / name for name in CHECKPOINT_NAMES if (fold / name).is_file()), None)
        if found is not None:
            checkpoints.append(found)
    if not checkpoints:
        raise ModelError(f"no fold folder holds {' or '.join(CHECKPOINT_NAMES)}", folder)
    return NnUNetModel(folder, trainer, plans_name, configuration_name, plans, configuration, dataset_json, labels,
                       tuple(checkpoints), channel_names)


def default_first_key(version: str) -> tuple:
    """Sort key among one dataset's configurations: 3d_fullres last, so it is the default ("newest")."""
    parts = _split_folder_name(version)
    configuration = parts[2] if parts else version
    return (configuration == DEFAULT_CONFIGURATION, parts[0] == "nnUNetTrainer" if parts else False, version)
