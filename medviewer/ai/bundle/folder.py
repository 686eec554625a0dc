"""Recognising MONAI bundles and describing them from their own configuration (torch-free).

A bundle folder holds ``configs/metadata.json`` (whose ``network_data_format`` says what goes in and
comes out), ``configs/inference.json`` (or ``.yaml``) and ``models/model.pt`` or ``models/model.ts``.
The task, labels (``outputs.<key>.channel_def``), input channels, spacing (``Spacingd``), intensity
transforms and window size (the inferer's ``roi_size``) shown to the user come from these files;
at run time the bundle's own transforms do the work (``runner``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
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

METADATA = "configs/metadata.json"
INFERENCE_CONFIGS = ("configs/inference.json", "configs/inference.yaml", "configs/inference.yml")
WEIGHTS = ("models/model.pt", "models/model.ts")
#: ``runtime.type`` of the manifests made here (never accepted from a model.json)
RUNTIME_TYPE = "monai-bundle"
_INTENSITY = re.compile(r"(ScaleIntensity|NormalizeIntensity|ThresholdIntensity|ClipIntensity)", re.I)


def _name(target: Any) -> str:
    return str(target).rsplit(".", 1)[-1] if isinstance(target, str) else ""


def is_bundle_folder(folder: str | Path) -> bool:
    folder = Path(folder)
    return (
        (folder / METADATA).is_file()
        and any((folder / c).is_file() for c in INFERENCE_CONFIGS)
        and any((folder / w).is_file() for w in WEIGHTS)
    )


def find_bundles(folder: str | Path) -> list[Path]:
    """Bundle folders in ``folder``: itself or its direct children."""
    folder = Path(folder)
    if is_bundle_folder(folder):
        return [folder]
    try:
        children = sorted(c for c in folder.iterdir() if c.is_dir() and not c.name.startswith("."))
    except OSError:
        return []
    return [c for c in children if is_bundle_folder(c)]


def read_config(path: Path) -> dict:
    """A bundle config file (JSON or YAML) as a dict; ``ModelError`` names the file and the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise ModelError(f"the MONAI bundle has no {path.name}", path.parent) from error
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(f"cannot read {path.name}: {error}", path) from error
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ModelError(f"is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})", path) from error
    else:
        import yaml

        try:
            data = yaml.safe_load(text)  # safe_load: YAML tags cannot build Python objects
        except yaml.YAMLError as error:
            raise ModelError(f"is not valid YAML: {error}", path) from error
    if not isinstance(data, dict):
        raise ModelError("must hold a mapping at the top level", path)
    return data


def model_name_for(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return slug or "monai-bundle"


def find_transforms(section: Any) -> list[dict]:
    """The transform dicts of a ``Compose`` section (``{"_target_": "Compose", "transforms": [...]}`` or a list)."""
    if isinstance(section, dict) and isinstance(section.get("transforms"), list):
        section = section["transforms"]
    return [t for t in section if isinstance(t, dict)] if isinstance(section, list) else []


@dataclass(frozen=True)
class MonaiBundle:
    """One bundle folder, read and checked (nothing instantiated)."""

    folder: Path
    metadata: dict
    config: dict
    config_path: Path
    weights_path: Path
    input_key: str
    output_key: str
    channels: int
    channel_def: dict[int, str]

    @property
    def name(self) -> str:
        return model_name_for(str(self.metadata.get("name") or self.folder.name))

    @property
    def version(self) -> str:
        version = str(self.metadata.get("version") or "0.0.0")
        return version if re.match(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$", version) else "0.0.0"

    @property
    def preprocessing(self) -> list[dict]:
        return find_transforms(self.config.get("preprocessing"))

    @property
    def spacing(self) -> tuple[float, float, float] | None:
        """``Spacingd``'s ``pixdim`` (x, y, z) when it is given as three numbers."""
        for transform in self.preprocessing:
            if _name(transform.get("_target_")) in ("Spacingd", "Spacing"):
                pixdim = transform.get("pixdim")
                if isinstance(pixdim, (int, float)):
                    pixdim = [pixdim] * 3
                if isinstance(pixdim, list) and len(pixdim) == 3 and all(isinstance(v, (int, float)) for v in pixdim):
                    return tuple(float(v) for v in pixdim)  # type: ignore[return-value]
        return None

    @property
    def intensity_transforms(self) -> list[str]:
        """The intensity transforms with their arguments, as the card shows them."""
        described = []
        for transform in self.preprocessing:
            target = _name(transform.get("_target_"))
            if _INTENSITY.search(target):
                arguments = ", ".join(f"{k}={v}" for k, v in transform.items() if not k.startswith("_") and k != "keys")
                described.append(f"{target}({arguments})")
        return described

    @property
    def roi_size(self) -> tuple[int, int, int] | None:
        inferer = self.config.get("inferer")
        roi = inferer.get("roi_size") if isinstance(inferer, dict) else None
        if isinstance(roi, list) and len(roi) == 3 and all(isinstance(v, int) and v > 0 for v in roi):
            return tuple(roi)  # type: ignore[return-value]
        return None

    def manifest(self) -> ModelManifest:
        """How the registry, the AI panel and ``medviewer infer`` see this bundle."""
        labels = tuple(LabelSpec(v, n, default_color(v)) for v, n in sorted(self.channel_def.items()) if v > 0)
        modality = _modality(self.metadata, self.input_key)
        inferer = self.config.get("inferer")
        overlap = inferer.get("overlap", 0.25) if isinstance(inferer, dict) else 0.25
        intensity = "; ".join(self.intensity_transforms) or "none"
        licence = str(self.metadata.get("license") or self.metadata.get("licence") or "see the bundle's LICENSE")
        return ModelManifest(
            name=self.name,
            version=self.version,
            task=Task.SEGMENTATION,
            modality=modality,
            input=InputSpec(channels=self.channels, spacing=self.spacing, normalization=NormalizationSpec("none")),
            inference=InferenceSpec(patch_size=self.roi_size or (96, 96, 96),
                                    overlap=float(overlap) if isinstance(overlap, (int, float)) else 0.25),
            outputs=OutputSpec(labels=labels, activation="softmax"),
            runtime=RuntimeSpec(RUNTIME_TYPE, self.weights_path.relative_to(self.folder).as_posix()),
            provenance=Provenance(
                training_data=str(self.metadata.get("data_source") or "not stated in metadata.json"),
                license=licence,
                authors=str(self.metadata.get("authors") or ""),
                notes=str(self.metadata.get("references") or ""),
            ),
            title=str(self.metadata.get("name") or self.folder.name),
            description=(f"{self.metadata.get('description') or 'MONAI bundle'} "
                         f"Intensity transforms: {intensity}. Weights: {self.weights_path.name}."),
        )


def _modality(metadata: dict, input_key: str) -> tuple[str, ...]:
    inputs = metadata.get("network_data_format", {}).get("inputs", {})
    modality = str(inputs.get(input_key, {}).get("modality", "")).strip().upper()
    return (modality,) if modality in ("CT", "MR", "PT", "US", "CR", "DX", "MG") else ("*",)


def _config_path(folder: Path) -> Path:
    for name in INFERENCE_CONFIGS:
        if (folder / name).is_file():
            return folder / name
    raise ModelError(f"the MONAI bundle has no {' or '.join(INFERENCE_CONFIGS)}", folder)


def load_bundle(folder: str | Path) -> MonaiBundle:
    """Read and check a bundle folder; ``ModelError`` names the file and field at fault."""
    folder = Path(folder)
    metadata_path = folder / METADATA
    metadata = read_config(metadata_path)
    config_path = _config_path(folder)
    config = read_config(config_path)
    data_format = metadata.get("network_data_format")
    if not isinstance(data_format, dict):
        raise ModelError("field 'network_data_format' is missing", metadata_path)
    inputs, outputs = data_format.get("inputs"), data_format.get("outputs")
    if not isinstance(inputs, dict) or len(inputs) != 1:
        raise ModelError(f"field 'network_data_format.inputs' must describe one input, got {inputs!r}", metadata_path)
    if not isinstance(outputs, dict) or len(outputs) != 1:
        raise ModelError(f"field 'network_data_format.outputs' must describe one output, got {outputs!r}", metadata_path)
    input_key, input_spec = next(iter(inputs.items()))
    output_key, output_spec = next(iter(outputs.items()))
    channels = input_spec.get("num_channels", 1) if isinstance(input_spec, dict) else None
    if not isinstance(channels, int) or channels < 1:
        raise ModelError(f"field 'network_data_format.inputs.{input_key}.num_channels' must be a positive "
                         f"integer, got {channels!r}", metadata_path)
    if channels != 1:
        raise ModelError(f"the bundle needs {channels} input channels; medviewer runs single-image bundles", metadata_path)
    kind = output_spec.get("type") if isinstance(output_spec, dict) else None
    channel_def = output_spec.get("channel_def") if isinstance(output_spec, dict) else None
    if kind != "image" or not isinstance(channel_def, dict) or not channel_def:
        raise ModelError(f"field 'network_data_format.outputs.{output_key}' must be an 'image' with a 'channel_def' "
                         "(medviewer runs segmentation bundles)", metadata_path)
    try:
        labels = {int(k): str(v) for k, v in channel_def.items()}
    except (TypeError, ValueError) as error:
        raise ModelError(f"field 'network_data_format.outputs.{output_key}.channel_def' must map channel numbers "
                         f"to names, got {channel_def!r}", metadata_path) from error
    for section in ("preprocessing", "network_def", "inferer"):
        if section not in config:
            raise ModelError(f"field '{section}' is missing", config_path)
    weights = next((folder / w for w in WEIGHTS if (folder / w).is_file()), None)  # model.pt first
    if weights is None:
        raise ModelError(f"the MONAI bundle has no {' or '.join(WEIGHTS)}", folder)
    return MonaiBundle(folder, metadata, config, config_path, weights, str(input_key), str(output_key), channels, labels)
