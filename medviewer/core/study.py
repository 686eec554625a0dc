"""Descriptors of what a scan found on disk, before any pixels are loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medviewer.core.geometry import Geometry


@dataclass
class SeriesInfo:
    """One loadable image series (a DICOM series, or one NIfTI/NRRD/MHA/PNG file).

    ``geometry`` is the geometry the loaded volume will have (after any
    regularisation); ``plan`` is reader-private data telling ``medviewer.io`` how to
    load the pixels (sorted file list, frame numbers...).
    """

    uid: str
    description: str = ""
    modality: str = ""
    number: int | None = None
    files: list[str] = field(default_factory=list)
    geometry: Geometry | None = None
    pixel_type: str = ""
    value_range: tuple[float, float] | None = None
    warnings: list[str] = field(default_factory=list)
    study_uid: str = ""
    study_description: str = ""
    patient_id: str = ""
    patient_name: str = ""
    source_format: str = ""
    source_path: str = ""
    plan: Any = None

    @property
    def orientation(self) -> str:
        return self.geometry.orientation_label() if self.geometry else ""

    def summary_dict(self) -> dict:
        """The ``medviewer info --json`` record (no patient identifiers)."""
        geometry = self.geometry
        return {
            "series_uid": self.uid,
            "series_number": self.number,
            "description": self.description,
            "modality": self.modality,
            "files": len(self.files),
            "size": list(geometry.size) if geometry else None,
            "spacing": list(geometry.spacing) if geometry else None,
            "origin": list(geometry.origin) if geometry else None,
            "direction": list(geometry.direction) if geometry else None,
            "orientation": self.orientation,
            "closest_orientation": geometry.orientation_code() if geometry else "",
            "pixel_type": self.pixel_type,
            "value_range": list(self.value_range) if self.value_range else None,
            "format": self.source_format,
            "warnings": list(self.warnings),
        }


@dataclass
class Study:
    """Series grouped by StudyInstanceUID (files that are not DICOM form their own study)."""

    uid: str
    description: str = ""
    series: list[SeriesInfo] = field(default_factory=list)
