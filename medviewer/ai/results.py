"""What a model run is asked to do and what it returns; torch-free so services and the UI can import it cheaply."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from medviewer.ai.tasks import Task
from medviewer.core.detection import Detection
from medviewer.core.labels import LabelMap
from medviewer.core.volume import Volume


@dataclass
class InferenceOptions:
    """How to run a model (all optional).

    Attributes
    ----------
    device:
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"`` (or ``"cuda:1"``).
    batch_size:
        Windows per batch; ``None`` uses the manifest's.
    cpu_threads:
        torch intra-op threads on the CPU; ``None`` leaves torch's setting.
        Interactive callers pass ``devices.interactive_thread_count()``.
    mixed_precision:
        Use autocast on CUDA.
    mirroring:
        Test-time augmentation by mirroring, for models that support it (nnU-Net: on by default
        as in nnU-Net; off is faster).
    """

    device: str = "auto"
    batch_size: int | None = None
    cpu_threads: int | None = None
    mixed_precision: bool = True
    mirroring: bool = True

    @classmethod
    def interactive(cls, device: str = "auto") -> "InferenceOptions":
        """Options for runs beside a live UI: leave one CPU core to the UI thread."""
        return cls(device=device, cpu_threads=interactive_thread_count())


def interactive_thread_count() -> int:
    """CPU threads for inference when a UI must stay responsive: all cores but one."""
    return max(1, (os.cpu_count() or 1) - 1)


@dataclass
class InferenceResult:
    """What a model produced, on the input image's geometry, tagged with the model name and version."""

    model_name: str
    model_version: str
    task: Task
    label_map: LabelMap | None = None
    detections: list[Detection] = field(default_factory=list)
    probabilities: dict[str, float] = field(default_factory=dict)
    volume: Volume | None = None
    warnings: list[str] = field(default_factory=list)
    device: str = "cpu"
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.task = Task(self.task)

    @property
    def source(self) -> str:
        """``"name version"``, as stored in the ``source`` of label maps and detections."""
        return f"{self.model_name} {self.model_version}"
