"""What Help > About reports: component versions, the compute device, and the models' licences.

Qt-free so the CLI and tests can use it too. Versions come from the installed
distributions' metadata (``importlib.metadata``), which costs nothing; only
``detect_compute_device`` imports torch, and it is a job ``fn(progress, cancel)``
meant for a worker thread: importing torch takes seconds and would stall a UI.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata

from medviewer import __version__
from medviewer.ai.registry import ModelRegistry
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback

#: (shown name, distribution names to try): the libraries worth naming in a bug report.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("PySide6 (Qt for Python)", ("PySide6-Essentials", "PySide6")),
    ("pyqtgraph", ("pyqtgraph",)),
    ("VTK", ("vtk",)),
    ("torch", ("torch",)),
    ("MONAI", ("monai",)),
    ("SimpleITK", ("SimpleITK",)),
    ("pydicom", ("pydicom",)),
    ("highdicom", ("highdicom",)),
    ("NumPy", ("numpy",)),
)
NOT_INSTALLED = "not installed"


def distribution_version(*names: str) -> str:
    """The installed version of the first distribution in ``names`` that is present."""
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return NOT_INSTALLED


def component_versions() -> list[tuple[str, str]]:
    """(name, version) of medviewer, Python and the main libraries, without importing them."""
    python = f"{platform.python_version()} ({platform.python_implementation()}, {sys.platform})"
    rows = [("medviewer", __version__), ("Python", python)]
    rows += [(shown, distribution_version(*names)) for shown, names in COMPONENTS]
    return rows


@dataclass(frozen=True)
class ComputeDevice:
    """Where models run for a device preference, as torch sees this machine."""

    preference: str
    device: str
    description: str
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_gpu(self) -> bool:
        return not self.device.startswith("cpu")

    def summary(self) -> str:
        """One line such as ``CPU (8 threads)`` or ``CUDA GPU 0: NVIDIA RTX A4000 (16 GiB)``."""
        note = f" - {'; '.join(self.warnings)}" if self.warnings else ""
        return f"{self.description}{note}"


def detect_compute_device(
    progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None, preference: str = "auto"
) -> ComputeDevice:
    """The device models run on for ``preference`` ("auto": CUDA, then Apple MPS, then CPU).

    Imports torch (seconds on a cold start; instant once the AI panel has loaded it):
    run it on a worker thread.
    """
    progress(0.0, "loading torch")
    from medviewer.ai.devices import describe_device, resolve_device

    if cancel is not None:
        cancel.raise_if_cancelled()
    device, warnings = resolve_device(preference)
    progress(1.0, "device found")
    return ComputeDevice(preference, str(device), describe_device(device), tuple(warnings))


@dataclass(frozen=True)
class ModelLicence:
    """Who may use a model package and what it was trained on (from its manifest's provenance)."""

    title: str
    ref: str
    origin: str
    licence: str
    training_data: str
    authors: str = ""


def model_licences(registry: ModelRegistry | None = None) -> list[ModelLicence]:
    """Licence and training data of every model package the registry knows (built-in first)."""
    registry = registry or ModelRegistry.default()
    order = {"builtin": 0, "extra": 1, "user": 2}
    packages = sorted(registry.packages, key=lambda p: (order.get(p.origin, 3), p.name))
    return [
        ModelLicence(
            title=package.manifest.title or package.name,
            ref=package.ref,
            origin=package.origin,
            licence=package.manifest.provenance.license,
            training_data=package.manifest.provenance.training_data,
            authors=package.manifest.provenance.authors,
        )
        for package in packages
    ]


__all__ = [
    "COMPONENTS",
    "ComputeDevice",
    "ModelLicence",
    "component_versions",
    "detect_compute_device",
    "distribution_version",
    "model_licences",
]
