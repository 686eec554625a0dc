"""An image volume: voxels in (z, y, x) order, their geometry and what the scanner said."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medviewer.core.geometry import Geometry


@dataclass
class VolumeMetadata:
    """Identifiers and display hints carried with a volume.

    Identifiers are kept for the study browser and never written to exported files
    (annotation export hashes ``series_uid`` instead).
    """

    patient_id: str = ""
    patient_name: str = ""
    study_uid: str = ""
    study_description: str = ""
    study_date: str = ""
    series_uid: str = ""
    series_description: str = ""
    series_number: int | None = None
    #: DICOM default windows (centre, width); the first one is the default.
    windows: list[tuple[float, float]] = field(default_factory=list)
    #: Intensity units after rescale, e.g. "HU" for CT.
    units: str = ""
    #: False when pixel spacing was unknown: measurements are then in pixels.
    calibrated: bool = True
    #: MONOCHROME1 images are displayed inverted (bright = low value).
    display_inverted: bool = False
    #: Things the loader corrected or could not (gantry tilt, missing slices...).
    warnings: list[str] = field(default_factory=list)
    #: Where the data came from (a file or folder).
    source_path: str = ""
    #: Format the data was read from, e.g. "DICOM", "NIfTI".
    source_format: str = ""
    #: Free-form extra tags (body part, manufacturer, ...).
    extra: dict = field(default_factory=dict)


@dataclass(eq=False)
class Volume:
    """A scalar image on a 3D grid (2D images have one slice)."""

    array: np.ndarray
    geometry: Geometry
    modality: str = ""
    metadata: VolumeMetadata = field(default_factory=VolumeMetadata)
    name: str = ""

    def __post_init__(self) -> None:
        if self.array.ndim == 2:
            self.array = self.array[None]
        if self.array.ndim != 3:
            raise ValueError(f"a volume array must be 2D or 3D, got shape {self.array.shape}")
        if tuple(self.array.shape) != self.geometry.shape:
            raise ValueError(f"array shape {self.array.shape} does not match geometry shape {self.geometry.shape}")
        if not self.name:
            self.name = self.metadata.series_description or self.modality or "Image"

    @property
    def is_2d(self) -> bool:
        return self.geometry.is_2d

    def value_range(self) -> tuple[float, float]:
        """Minimum and maximum voxel value."""
        if self.array.size == 0:
            return (0.0, 0.0)
        low, high = self.array.min(), self.array.max()
        if self.array.dtype.kind != "f" or (np.isfinite(low) and np.isfinite(high)):
            return float(low), float(high)
        # NaN/Inf voxels (the loader warns about them) are left out, plane by plane (no full copy)
        ranges = [r for r in (_finite_range(plane) for plane in self.array) if r is not None]
        if not ranges:
            return (0.0, 0.0)
        return float(min(r[0] for r in ranges)), float(max(r[1] for r in ranges))

    def default_window(self) -> tuple[float, float]:
        """(centre, width) from the file when present, else from percentiles of the data."""
        if self.metadata.windows:
            return self.metadata.windows[0]
        return percentile_window(self.array)


def _finite_range(plane: np.ndarray) -> tuple[float, float] | None:
    finite = plane[np.isfinite(plane)]
    return (finite.min(), finite.max()) if finite.size else None


def percentile_window(array: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """(centre, width) spanning the given percentiles, from a strided sample for speed."""
    sample = array[:: max(1, array.shape[0] // 32), ::4, ::4] if array.ndim == 3 else array[::4, ::4]
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
    lo, hi = np.percentile(sample, [low, high]) if sample.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return float((lo + hi) / 2.0), float(hi - lo)
