"""What a training run is asked to do and what it reports: settings, request, events, result.

Torch-free on purpose: the GUI and the CLI build requests and draw events without
importing torch; the trainer (``medviewer.ai.training.trainer``) does the work.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from medviewer.ai.tasks import Task
from medviewer.core.errors import MedviewerError

#: Value of the training target where a voxel's class is unknown (excluded from the loss).
IGNORE_VALUE = 255


@dataclass
class TrainingSettings:
    """How a model is fine-tuned (or trained from scratch).

    Attributes
    ----------
    epochs:
        Maximum number of epochs (an epoch is ``iterations_per_epoch`` patch batches:
        patches are sampled at random, so an epoch is a fixed amount of work rather
        than one pass over the images).
    minutes:
        Time budget; training stops after the epoch during which it runs out (the
        learning-rate schedule follows whichever of epochs or time is further along).
    patch_size:
        Training patch (z, y, x) on the model grid; ``None`` derives it from the
        model's inference patch (at most 96 per axis, a multiple of the network's
        downsampling).
    learning_rate:
        Adam's starting rate (cosine decay to 5 %); ``None``: 1e-3 for fine-tuning,
        3e-3 from scratch.
    foreground_fraction:
        Share of patches centred on a labelled voxel (of a label chosen uniformly, so
        small structures are seen as often as large ones; for detection: of a box
        chosen uniformly).
    hard_negative_fraction:
        Detection: share of patches centred on a rejected box (a false positive the
        annotator removed).
    validation_fraction, validation_cases:
        The fixed validation split: the given case ids, or this share of the cases
        chosen by a hash of their ids (the same split on every run and every rank).
    patience:
        Early stopping: stop after this many epochs without a better validation score
        (0: never stop early). The package gets the best epoch's weights.
    flip_axes:
        ``"auto"`` (detection: all axes; segmentation: all axes unless a label name
        says left or right, then none), ``"none"``, or axis letters from ``"zyx"``.
    rotation_degrees, scale_range, augment_probability:
        Small random rotations and scaling, applied to this share of the patches.
    intensity_augmentation:
        Random contrast, brightness and noise.
    mixed_precision:
        Autocast to float16 with a gradient scaler on CUDA (ignored elsewhere).
    """

    epochs: int = 20
    minutes: float | None = None
    iterations_per_epoch: int = 50
    batch_size: int = 2
    patch_size: tuple[int, int, int] | None = None
    learning_rate: float | None = None
    foreground_fraction: float = 0.5
    hard_negative_fraction: float = 0.2
    validation_fraction: float = 0.2
    validation_cases: tuple[str, ...] | None = None
    patience: int = 5
    min_improvement: float = 1e-3
    flip_axes: str = "auto"
    rotation_degrees: float = 10.0
    scale_range: float = 0.1
    augment_probability: float = 0.3
    intensity_augmentation: bool = True
    mixed_precision: bool = True
    seed: int = 0
    device: str = "auto"
    report_every: int = 5

    def __post_init__(self) -> None:
        if self.patch_size is not None:
            self.patch_size = tuple(int(v) for v in self.patch_size)  # type: ignore[assignment]
        if self.validation_cases is not None:
            self.validation_cases = tuple(str(v) for v in self.validation_cases)
        if int(self.epochs) < 1:
            raise MedviewerError(f"epochs must be at least 1, got {self.epochs}")
        if self.minutes is not None and float(self.minutes) <= 0:
            self.minutes = None
        if int(self.iterations_per_epoch) < 1 or int(self.batch_size) < 1:
            raise MedviewerError("iterations per epoch and batch size must be at least 1")
        flips = (self.flip_axes or "auto").lower()
        if flips not in ("auto", "none") and (not flips or set(flips) - set("zyx")):
            raise MedviewerError(f"flip axes must be 'auto', 'none' or letters from 'zyx', got {self.flip_axes!r}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise MedviewerError(f"the validation fraction must be at least 0 and below 1, got {self.validation_fraction}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["patch_size"] = list(self.patch_size) if self.patch_size else None
        data["validation_cases"] = list(self.validation_cases) if self.validation_cases is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainingSettings":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class TrainingRequest:
    """One retraining job: which dataset, which base model, what the new model is called.

    ``base`` is a model reference (``name`` or ``name:version``) or a package folder.
    ``version`` defaults to the next free one (a new minor version of the base when the
    name is the base's own, else 1.0.0). ``models_dir`` defaults to the user's models
    folder; ``checkpoint_dir`` to ``models_dir/.checkpoints/NAME``.
    """

    dataset: str | Path
    base: str | Path
    name: str
    settings: TrainingSettings = field(default_factory=TrainingSettings)
    version: str | None = None
    from_scratch: bool = False
    resume: bool = False
    models_dir: str | Path | None = None
    checkpoint_dir: str | Path | None = None
    extra_model_folders: tuple[str, ...] = ()
    command_line: str = ""


@dataclass
class TrainingEvent:
    """Something the GUI or the console can show while training runs.

    ``kind`` is ``"stage"`` (a new phase: ``message``), ``"iteration"`` (running
    ``loss``), ``"epoch"`` (``loss`` = mean training loss, ``validation`` = score per
    label on the model grid, ``score`` = their mean, ``seconds`` = epoch time) or
    ``"evaluation"`` (``validation`` = before/after metrics of the full pipeline).
    """

    kind: str
    epoch: int = 0
    iteration: int = 0
    loss: float | None = None
    validation: dict[str, Any] = field(default_factory=dict)
    score: float | None = None
    seconds: float = 0.0
    learning_rate: float | None = None
    message: str = ""


EventCallback = Callable[[TrainingEvent], None]


def no_events(event: TrainingEvent) -> None:
    """Event sink that ignores everything."""


@dataclass
class EpochRecord:
    """One finished epoch (kept in checkpoints and in the result)."""

    epoch: int
    loss: float
    score: float | None
    validation: dict[str, float]
    seconds: float
    iterations: int
    learning_rate: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EpochRecord":
        return cls(**data)


@dataclass
class TrainingResult:
    """What a finished run produced."""

    package_folder: Path
    name: str
    version: str
    task: str
    base_ref: str
    dataset_name: str
    training_cases: list[str]
    validation_cases: list[str]
    before: dict[str, Any]
    after: dict[str, Any]
    history: list[EpochRecord]
    best_epoch: int
    stopped_because: str
    seconds_per_epoch: float
    seconds_total: float
    warnings: list[str] = field(default_factory=list)
    world_size: int = 1

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def comparison_rows(self) -> list[tuple[str, str, str, str]]:
        """(figure, before, after, change) rows for tables in the dialog, CLI and model card."""
        return comparison_rows(self.task, self.before, self.after)

    def summary_lines(self) -> list[str]:
        lines = [
            f"wrote {self.ref} to {self.package_folder}",
            f"trained {len(self.history)} epoch(s) ({self.stopped_because}), best epoch {self.best_epoch}, "
            f"{self.seconds_per_epoch:.1f} s per epoch, {self.seconds_total / 60:.1f} min in all",
            f"training cases: {len(self.training_cases)}, validation cases: {len(self.validation_cases)}",
        ]
        width = max([len(r[0]) for r in self.comparison_rows()] + [6])
        lines.append(f"{'figure'.ljust(width)}  {'before':>8}  {'after':>8}  {'change':>8}")
        for figure, before, after, change in self.comparison_rows():
            lines.append(f"{figure.ljust(width)}  {before:>8}  {after:>8}  {change:>8}")
        lines += [f"warning: {w}" for w in self.warnings]
        return lines


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def comparison_rows(task: str, before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Rows comparing validation metrics before (base model) and after (new model)."""
    rows = []
    if task == Task.SEGMENTATION:
        names = list(after.get("dice", {})) or list(before.get("dice", {}))
        for name in names:
            b, a = before.get("dice", {}).get(name), after.get("dice", {}).get(name)
            change = f"{a - b:+.3f}" if a is not None and b is not None else "n/a"
            rows.append((f"Dice {name}", _fmt(b), _fmt(a), change))
        b, a = before.get("mean_dice"), after.get("mean_dice")
        rows.append(("mean Dice", _fmt(b), _fmt(a), f"{a - b:+.3f}" if a is not None and b is not None else "n/a"))
    else:
        for key, label, digits in (("sensitivity", "sensitivity", 3), ("false_positives_per_scan", "false positives per scan", 2)):
            b, a = before.get(key), after.get(key)
            change = f"{a - b:+.{digits}f}" if a is not None and b is not None else "n/a"
            rows.append((label, _fmt(b, digits), _fmt(a, digits), change))
        if "boxes" in after or "boxes" in before:
            rows.append(("corrected boxes", _fmt(before.get("boxes")), _fmt(after.get("boxes")), ""))
    return rows
