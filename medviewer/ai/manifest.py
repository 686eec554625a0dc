"""Model package manifests (``model.json``): parsing, validation and writing.

A model package is a folder holding ``model.json`` (this manifest), the weights and
``MODEL_CARD.md``. The manifest says what the model does (task, modality, outputs),
how its input must be prepared (spacing, orientation, intensity normalisation),
how to run it (patch size, overlap, batch size, runtime) and where it came from
(provenance). Every validation error names the offending field, e.g.
``model.json: field 'input.spacing' must be 3 positive numbers, got [1, 2]``.

This module does not import torch: listing models must stay cheap.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from medviewer.ai.tasks import Task, task_hooks
from medviewer.core.errors import ModelError
from medviewer.io.atomic import atomic_write_text

MANIFEST_NAME = "model.json"
MODEL_CARD_NAME = "MODEL_CARD.md"
FORMAT_VERSION = 1

TASKS = tuple(task.value for task in Task)
RUNTIMES = ("builtin", "torchscript", "onnx")
NORMALIZATIONS = ("ct_window", "zscore", "percentile", "none")
INFERENCE_MODES = ("sliding_window", "whole")
BLEND_MODES = ("gaussian", "constant")
ACTIVATIONS = ("softmax", "sigmoid", "none")

_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_VERSION_PATTERN = re.compile(r"^\d+(\.\d+)*([.+-][A-Za-z0-9.]+)?$")
_ORIENTATION_AXES = ("LR", "PA", "SI")


class _Fields:
    """Typed access to a JSON object that reports errors by dotted field name."""

    def __init__(self, data: Any, prefix: str, path: str | None) -> None:
        self.path = path
        self.prefix = prefix
        if not isinstance(data, dict):
            self.fail("", f"must be a JSON object, got {_short(data)}")
        self.data: dict = data

    def field_name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix and key else (key or self.prefix or "(top level)")

    def fail(self, key: str, problem: str) -> None:
        raise ModelError(f"field '{self.field_name(key)}' {problem}", self.path)

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def sub(self, key: str, required: bool = True) -> "_Fields":
        if not self.has(key):
            if required:
                self.fail(key, "is missing")
            return _Fields({}, self.field_name(key), self.path)
        return _Fields(self.data[key], self.field_name(key), self.path)

    def string(self, key: str, default: str | None = None, choices: tuple[str, ...] | None = None,
               pattern: re.Pattern | None = None) -> str:
        if not self.has(key):
            if default is None:
                self.fail(key, "is missing")
            return default  # type: ignore[return-value]
        value = self.data[key]
        if isinstance(value, str) and not value.strip() and default is not None and choices is None:
            return default  # an optional text left empty
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"must be a non-empty string, got {_short(value)}")
        if choices is not None and value not in choices:
            self.fail(key, f"must be one of {', '.join(choices)}; got '{value}'")
        if pattern is not None and not pattern.match(value):
            self.fail(key, f"has an invalid value '{value}'")
        return value

    def number(self, key: str, default: float | None = None, low: float | None = None,
               high: float | None = None, low_open: bool = False, high_open: bool = False) -> float:
        if not self.has(key):
            if default is None:
                self.fail(key, "is missing")
            return float(default)  # type: ignore[arg-type]
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(key, f"must be a number, got {_short(value)}")
        if low is not None and (value < low or (low_open and value == low)):
            self.fail(key, f"must be {'>' if low_open else '>='} {low}, got {value}")
        if high is not None and (value > high or (high_open and value == high)):
            self.fail(key, f"must be {'<' if high_open else '<='} {high}, got {value}")
        return float(value)

    def integer(self, key: str, default: int | None = None, low: int | None = None) -> int:
        if not self.has(key):
            if default is None:
                self.fail(key, "is missing")
            return int(default)  # type: ignore[arg-type]
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"must be an integer, got {_short(value)}")
        if low is not None and value < low:
            self.fail(key, f"must be >= {low}, got {value}")
        return int(value)

    def boolean(self, key: str, default: bool) -> bool:
        if not self.has(key):
            return default
        value = self.data[key]
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {_short(value)}")
        return value

    def numbers(self, key: str, count: int, positive: bool = False, integer: bool = False,
                required: bool = True) -> tuple | None:
        if not self.has(key):
            if required:
                self.fail(key, "is missing")
            return None
        value = self.data[key]
        kind = "integers" if integer else "numbers"
        sign = "positive " if positive else ""
        ok = isinstance(value, list) and len(value) == count and all(
            not isinstance(v, bool) and isinstance(v, int if integer else (int, float))
            and math.isfinite(v) and (v > 0 or not positive)
            for v in value
        )
        if not ok:
            self.fail(key, f"must be {count} {sign}{kind}, got {_short(value)}")
        return tuple(int(v) if integer else float(v) for v in value)

    def strings(self, key: str, required: bool = True) -> tuple[str, ...]:
        if not self.has(key):
            if required:
                self.fail(key, "is missing")
            return ()
        value = self.data[key]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            self.fail(key, f"must be a non-empty list of strings, got {_short(value)}")
        return tuple(value)

    def mapping(self, key: str) -> dict:
        if not self.has(key):
            return {}
        value = self.data[key]
        if not isinstance(value, dict):
            self.fail(key, f"must be a JSON object, got {_short(value)}")
        return dict(value)

    def objects(self, key: str) -> list["_Fields"]:
        if not self.has(key):
            self.fail(key, "is missing")
        value = self.data[key]
        if not isinstance(value, list) or not value:
            self.fail(key, f"must be a non-empty list, got {_short(value)}")
        return [_Fields(item, f"{self.field_name(key)}[{n}]", self.path) for n, item in enumerate(value)]


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------- parts
@dataclass(frozen=True)
class NormalizationSpec:
    """Intensity normalisation; every method is an affine map, optionally clipped.

    * ``ct_window``: ``window`` (low, high) in input units maps to ``output_range``.
    * ``percentile``: the image's ``percentiles`` (low, high) map to ``output_range``.
    * ``zscore``: subtract the image mean, divide by its standard deviation.
    * ``none``: values are passed through.
    """

    method: str = "none"
    window: tuple[float, float] | None = None
    percentiles: tuple[float, float] = (0.5, 99.5)
    output_range: tuple[float, float] = (0.0, 1.0)
    clip: bool = True

    @classmethod
    def parse(cls, fields: _Fields) -> "NormalizationSpec":
        method = fields.string("method", choices=NORMALIZATIONS)
        window = None
        percentiles = (0.5, 99.5)
        if method == "ct_window":
            window = fields.numbers("window", 2)
            if window[1] <= window[0]:
                fields.fail("window", f"must be (low, high) with low < high, got {list(window)}")
        if method == "percentile":
            percentiles = fields.numbers("percentiles", 2, required=False) or percentiles
            if not 0 <= percentiles[0] < percentiles[1] <= 100:
                fields.fail("percentiles", f"must be (low, high) with 0 <= low < high <= 100, got {list(percentiles)}")
        output_range = fields.numbers("output_range", 2, required=False) or (0.0, 1.0)
        if output_range[1] <= output_range[0]:
            fields.fail("output_range", f"must be (low, high) with low < high, got {list(output_range)}")
        return cls(method, window, percentiles, output_range, fields.boolean("clip", method != "zscore"))

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"method": self.method}
        if self.method == "ct_window":
            data["window"] = list(self.window or ())
        if self.method == "percentile":
            data["percentiles"] = list(self.percentiles)
        if self.method in ("ct_window", "percentile"):
            data["output_range"] = list(self.output_range)
        data["clip"] = self.clip
        return data


@dataclass(frozen=True)
class InputSpec:
    """How the image is prepared: channels, model grid (spacing, orientation), normalisation.

    ``spacing`` is in mm along the model grid's (x, y, z) axes; ``None`` keeps the
    input's own spacing. ``orientation`` is a 3-letter code such as ``"LPS"`` or
    ``"RAS"``; ``None`` keeps the input's own axes (oblique stays oblique).
    """

    channels: int = 1
    spacing: tuple[float, float, float] | None = None
    orientation: str | None = None
    normalization: NormalizationSpec = field(default_factory=NormalizationSpec)

    @classmethod
    def parse(cls, fields: _Fields) -> "InputSpec":
        channels = fields.integer("channels", 1, low=1)
        if channels != 1:
            fields.fail("channels", f"must be 1 (multi-channel inputs are not supported yet), got {channels}")
        spacing = fields.numbers("spacing", 3, positive=True, required=False)
        orientation = None
        if fields.has("orientation"):
            orientation = fields.string("orientation").upper()
            if not _valid_orientation(orientation):
                fields.fail("orientation", f"must be a 3-letter code with one of L/R, P/A, S/I each, e.g. LPS; got '{orientation}'")
        normalization = NormalizationSpec.parse(fields.sub("normalization"))
        return cls(channels, spacing, orientation, normalization)

    def to_dict(self) -> dict:
        return {
            "channels": self.channels,
            "spacing": list(self.spacing) if self.spacing else None,
            "orientation": self.orientation,
            "normalization": self.normalization.to_dict(),
        }


def _valid_orientation(code: str) -> bool:
    if len(code) != 3:
        return False
    axes = sorted(next((n for n, pair in enumerate(_ORIENTATION_AXES) if c in pair), -1) for c in code)
    return axes == [0, 1, 2]


@dataclass(frozen=True)
class InferenceSpec:
    """How the network is applied: sliding windows (with blending) or the whole image at once."""

    mode: str = "sliding_window"
    patch_size: tuple[int, int, int] = (64, 64, 64)
    overlap: float = 0.25
    batch_size: int = 1
    blend: str = "gaussian"
    sigma_scale: float = 0.125

    @classmethod
    def parse(cls, fields: _Fields) -> "InferenceSpec":
        return cls(
            mode=fields.string("mode", "sliding_window", choices=INFERENCE_MODES),
            patch_size=fields.numbers("patch_size", 3, positive=True, integer=True),
            overlap=fields.number("overlap", 0.25, low=0.0, high=1.0, high_open=True),
            batch_size=fields.integer("batch_size", 1, low=1),
            blend=fields.string("blend", "gaussian", choices=BLEND_MODES),
            sigma_scale=fields.number("sigma_scale", 0.125, low=0.0, low_open=True),
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        data["patch_size"] = list(self.patch_size)
        return data


@dataclass(frozen=True)
class LabelSpec:
    value: int
    name: str
    color: tuple[int, int, int]


@dataclass(frozen=True)
class OutputSpec:
    """What the network's output channels mean and how they are post-processed.

    segmentation
        ``labels`` (value, name, colour), ``activation`` softmax (channel c = label
        value c, channel 0 = background) or sigmoid (channel c-1 = label c,
        ``threshold``), ``keep_largest_component``: label values reduced to their
        largest connected piece.
    detection
        ``classes``: one heat-map channel per class (sigmoid); connected regions above
        ``probability_threshold`` become boxes scored by their peak probability, then
        ``score_threshold``, ``nms_iou`` and ``max_detections`` apply.
    classification
        ``classes`` and ``activation`` (softmax or sigmoid) of the logits.
    enhancement
        ``image_name`` of the derived image; ``denormalize`` maps the output back to
        input units by inverting the input normalisation; ``value_range`` clips it.
    """

    labels: tuple[LabelSpec, ...] = ()
    classes: tuple[str, ...] = ()
    activation: str = "softmax"
    threshold: float = 0.5
    keep_largest_component: tuple[int, ...] = ()
    probability_threshold: float = 0.5
    score_threshold: float = 0.1
    nms_iou: float = 0.1
    max_detections: int = 50
    min_size_mm: float = 0.0
    image_name: str = "enhanced"
    denormalize: bool = True
    value_range: tuple[float, float] | None = None

    @classmethod
    def parse(cls, fields: _Fields, task: Task | str) -> "OutputSpec":
        """The ``outputs`` of a ``task`` model (each task reads its own fields: see ``medviewer.ai.tasks``)."""
        return task_hooks(task).parse_outputs(fields)

    def to_dict(self, task: Task | str) -> dict:
        return task_hooks(task).outputs_to_dict(self)

    @property
    def label_values(self) -> tuple[int, ...]:
        return tuple(label.value for label in self.labels)


@dataclass(frozen=True)
class RuntimeSpec:
    """How weights are loaded: a built-in architecture + state dict, TorchScript or ONNX."""

    type: str
    file: str
    architecture: str = ""
    arguments: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, fields: _Fields) -> "RuntimeSpec":
        kind = fields.string("type", choices=RUNTIMES)
        file = fields.string("file")
        if Path(file).is_absolute() or ".." in Path(file).parts:
            fields.fail("file", f"must be a file name inside the package folder, got '{file}'")
        architecture = ""
        arguments: dict = {}
        if kind == "builtin":
            architecture = fields.string("architecture")
            arguments = fields.mapping("arguments")
            from medviewer.ai.architectures import ARCHITECTURE_NAMES  # torch-free name list

            if architecture not in ARCHITECTURE_NAMES:
                fields.fail("architecture", f"must be one of {', '.join(ARCHITECTURE_NAMES)}; got '{architecture}'")
        return cls(kind, file, architecture, arguments)

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"type": self.type, "file": self.file}
        if self.type == "builtin":
            data["architecture"] = self.architecture
            data["arguments"] = dict(self.arguments)
        return data


@dataclass(frozen=True)
class Provenance:
    """Where a model came from: training data, metrics, licence and, for fine-tuned models, the parent."""

    training_data: str
    license: str
    metrics: dict = field(default_factory=dict)
    authors: str = ""
    created: str = ""
    parent: str | None = None
    training_command: str = ""
    notes: str = ""

    @classmethod
    def parse(cls, fields: _Fields) -> "Provenance":
        return cls(
            training_data=fields.string("training_data"),
            license=fields.string("license"),
            metrics=fields.mapping("metrics"),
            authors=fields.string("authors", ""),
            created=fields.string("created", ""),
            parent=fields.string("parent", "") or None,
            training_command=fields.string("training_command", ""),
            notes=fields.string("notes", ""),
        )

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in ("", None)}


# ---------------------------------------------------------------------------- manifest
@dataclass(frozen=True)
class ModelManifest:
    """Everything ``model.json`` says about a model package (validated)."""

    name: str
    version: str
    task: Task
    modality: tuple[str, ...]
    input: InputSpec
    inference: InferenceSpec
    outputs: OutputSpec
    runtime: RuntimeSpec
    provenance: Provenance
    title: str = ""
    description: str = ""
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", Task(self.task))  # a manifest built in code may pass the task's value

    @property
    def ref(self) -> str:
        """``name:version``, the form ``medviewer infer --model`` accepts."""
        return f"{self.name}:{self.version}"

    @property
    def source_tag(self) -> str:
        """``"name version"``: the ``source`` given to results of this model."""
        return f"{self.name} {self.version}"

    @property
    def display_name(self) -> str:
        return f"{self.title or self.name} ({self.version})"

    def accepts_modality(self, modality: str) -> bool:
        """True when the model is meant for ``modality`` (``"*"`` or an empty modality fits everything)."""
        return "*" in self.modality or not modality or modality.upper() in (m.upper() for m in self.modality)

    @classmethod
    def from_dict(cls, data: Any, path: str | None = None) -> "ModelManifest":
        """Validate a parsed ``model.json``; ``ModelError`` names the first bad field."""
        fields = _Fields(data, "", path)
        format_version = fields.integer("format_version", FORMAT_VERSION, low=1)
        if format_version > FORMAT_VERSION:
            fields.fail("format_version", f"is {format_version}; this medviewer reads up to {FORMAT_VERSION}")
        task = Task(fields.string("task", choices=TASKS))
        inference = InferenceSpec.parse(fields.sub("inference"))
        if task_hooks(task).whole_image_only and inference.mode != "whole":
            fields.fail("inference.mode", f"must be 'whole' for {task.value} models")
        return cls(
            name=fields.string("name", pattern=_NAME_PATTERN),
            version=fields.string("version", pattern=_VERSION_PATTERN),
            task=task,
            modality=tuple(m.upper() if m != "*" else m for m in fields.strings("modality")),
            input=InputSpec.parse(fields.sub("input")),
            inference=inference,
            outputs=OutputSpec.parse(fields.sub("outputs"), task),
            runtime=RuntimeSpec.parse(fields.sub("runtime")),
            provenance=Provenance.parse(fields.sub("provenance")),
            title=fields.string("title", ""),
            description=fields.string("description", ""),
            format_version=format_version,
        )

    def to_dict(self) -> dict:
        return {
            "format_version": self.format_version,
            "name": self.name,
            "version": self.version,
            "title": self.title,
            "description": self.description,
            "task": str(self.task),
            "modality": list(self.modality),
            "input": self.input.to_dict(),
            "inference": self.inference.to_dict(),
            "outputs": self.outputs.to_dict(self.task),
            "runtime": self.runtime.to_dict(),
            "provenance": self.provenance.to_dict(),
        }

    def derive(self, **changes: Any) -> "ModelManifest":
        """A copy with some fields changed (e.g. a fine-tuned version with new provenance)."""
        return replace(self, **changes)


def load_manifest(folder_or_file: str | Path) -> ModelManifest:
    """Read and validate ``model.json`` from a package folder (or the file itself)."""
    path = Path(folder_or_file)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise ModelError("no model.json in this folder", path.parent)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(f"cannot read the manifest: {error}", path) from error
    except json.JSONDecodeError as error:
        raise ModelError(f"is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})", path) from error
    return ModelManifest.from_dict(data, str(path))


def write_manifest(manifest: ModelManifest, folder: str | Path) -> Path:
    """Write ``model.json`` into ``folder`` atomically; returns its path."""
    path = Path(folder) / MANIFEST_NAME
    atomic_write_text(path, json.dumps(manifest.to_dict(), indent=2) + "\n")
    return path


def version_key(version: str) -> tuple:
    """Sort key ordering ``1.10.0`` after ``1.9.2`` (numeric parts first, then any suffix)."""
    match = re.match(r"^(\d+(?:\.\d+)*)(.*)$", version)
    if not match:
        return ((), version)
    numbers = tuple(int(p) for p in match.group(1).split("."))
    numbers = numbers + (0,) * (4 - len(numbers)) if len(numbers) < 4 else numbers
    # A release sorts after its pre-releases (1.0.0 > 1.0.0-rc1); a "+build" suffix sorts after.
    suffix = match.group(2)
    return (numbers, 1 if not suffix else (2 if suffix.startswith("+") else 0), suffix)
