"""Measurements on slices: rulers and ellipse/rectangle regions of interest.

A measurement lives on one slice of one view (``view_axis`` + ``slice_index``) and
is defined by two points in continuous voxel indices (i, j, k): the ruler's ends,
or the corners of the ROI's bounding box. Lengths and areas use the image
geometry (mm); on uncalibrated images (unknown pixel spacing, spacing 1) the unit
is pixels. ROI statistics use the voxels whose centres lie inside the shape; the
area is the shape's geometric area.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field

import numpy as np
from psygnal import Signal

from medviewer.core.geometry import Geometry

RULER, ELLIPSE, RECTANGLE = "ruler", "ellipse", "rectangle"
KINDS = (RULER, ELLIPSE, RECTANGLE)


@dataclass
class RoiStatistics:
    """Intensity statistics of the voxels inside an ROI and its area."""

    mean: float
    std: float
    minimum: float
    maximum: float
    area: float
    voxel_count: int


@dataclass(eq=False)
class Measurement:
    """A ruler or an ROI drawn on one slice."""

    kind: str
    view_axis: int
    slice_index: int
    start: np.ndarray
    end: np.ndarray
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown measurement kind '{self.kind}'")
        self.start = np.asarray(self.start, dtype=float).copy()
        self.end = np.asarray(self.end, dtype=float).copy()
        # Both points lie on the slice plane.
        self.start[self.view_axis] = self.slice_index
        self.end[self.view_axis] = self.slice_index

    @property
    def in_plane_axes(self) -> tuple[int, int]:
        """The two index axes spanning the slice, ascending."""
        return tuple(a for a in range(3) if a != self.view_axis)  # type: ignore[return-value]

    @property
    def center_index(self) -> np.ndarray:
        return (self.start + self.end) / 2.0


def length_unit(calibrated: bool) -> str:
    return "mm" if calibrated else "px"


def ruler_length(geometry: Geometry, start_index: np.ndarray, end_index: np.ndarray) -> float:
    """Distance between two continuous indices in world mm (pixels when spacing is 1)."""
    world = geometry.index_to_world(np.stack([np.asarray(start_index, float), np.asarray(end_index, float)]))
    return float(np.linalg.norm(world[1] - world[0]))


def roi_mask(measurement: Measurement, shape_2d: tuple[int, int]) -> tuple[np.ndarray, tuple[slice, slice]]:
    """Voxels of an ROI on its slice plane in array order (see ``ToolPreview.mask``).

    Returns ``(mask, (rows, cols))``: a boolean mask of the bounding block and the
    slices that place it in the array-order plane of shape ``shape_2d``.
    """
    # Array-order plane axes: index axes in descending order without the normal one.
    row_axis, col_axis = [a for a in (2, 1, 0) if a != measurement.view_axis]
    lo = np.minimum(measurement.start, measurement.end)
    hi = np.maximum(measurement.start, measurement.end)
    r0 = max(int(math.ceil(lo[row_axis] - 1e-9)), 0)
    r1 = min(int(math.floor(hi[row_axis] + 1e-9)), shape_2d[0] - 1)
    c0 = max(int(math.ceil(lo[col_axis] - 1e-9)), 0)
    c1 = min(int(math.floor(hi[col_axis] + 1e-9)), shape_2d[1] - 1)
    if r1 < r0 or c1 < c0:
        return np.zeros((0, 0), bool), (slice(0, 0), slice(0, 0))
    rows = np.arange(r0, r1 + 1, dtype=float)[:, None]
    cols = np.arange(c0, c1 + 1, dtype=float)[None, :]
    if measurement.kind == RECTANGLE:
        mask = np.ones((rows.size, cols.size), dtype=bool)
    elif measurement.kind == ELLIPSE:
        center = (lo + hi) / 2.0
        radius_r = max((hi[row_axis] - lo[row_axis]) / 2.0, 1e-9)
        radius_c = max((hi[col_axis] - lo[col_axis]) / 2.0, 1e-9)
        mask = ((rows - center[row_axis]) / radius_r) ** 2 + ((cols - center[col_axis]) / radius_c) ** 2 <= 1.0 + 1e-9
    else:
        raise ValueError("a ruler has no region")
    return mask, (slice(r0, r1 + 1), slice(c0, c1 + 1))


def plane_of(array: np.ndarray, view_axis: int, slice_index: int) -> np.ndarray:
    """The array-order plane of a (z, y, x) array at ``slice_index`` along index axis ``view_axis``."""
    selector = [slice(None)] * 3
    selector[2 - view_axis] = int(slice_index)
    return array[tuple(selector)]


def roi_area(geometry: Geometry, measurement: Measurement) -> float:
    """Geometric area of the ROI in mm^2 (px^2 when uncalibrated)."""
    a, b = measurement.in_plane_axes
    extent = np.abs(measurement.end - measurement.start)
    width_a = extent[a] * geometry.spacing[a]
    width_b = extent[b] * geometry.spacing[b]
    if measurement.kind == ELLIPSE:
        return float(math.pi * width_a * width_b / 4.0)
    return float(width_a * width_b)


def roi_statistics(volume_array: np.ndarray, geometry: Geometry, measurement: Measurement) -> RoiStatistics:
    """Mean, std, min, max of the voxels inside an ROI, and its geometric area."""
    plane = plane_of(volume_array, measurement.view_axis, measurement.slice_index)
    mask, (rows, cols) = roi_mask(measurement, plane.shape)
    values = plane[rows, cols][mask].astype(np.float64)
    area = roi_area(geometry, measurement)
    if values.size == 0:
        nan = float("nan")
        return RoiStatistics(nan, nan, nan, nan, area, 0)
    return RoiStatistics(
        float(values.mean()), float(values.std()), float(values.min()), float(values.max()), area, int(values.size)
    )


def describe(measurement: Measurement, volume_array: np.ndarray, geometry: Geometry, calibrated: bool = True, units: str = "") -> str:
    """One-line result shown next to the shape and in the measurements panel."""
    unit = length_unit(calibrated)
    if measurement.kind == RULER:
        return f"{ruler_length(geometry, measurement.start, measurement.end):.1f} {unit}"
    stats = roi_statistics(volume_array, geometry, measurement)
    value_unit = f" {units}" if units else ""
    return (
        f"mean {stats.mean:.1f}{value_unit}, sd {stats.std:.1f}, min {stats.minimum:.0f}, max {stats.maximum:.0f}, "
        f"area {stats.area:.1f} {unit}\u00b2"
    )


class MeasurementList:
    """The measurements of one open document, with a psygnal ``changed`` event for views and panels."""

    #: measurements were added or removed
    changed = Signal()

    def __init__(self) -> None:
        self._items: list[Measurement] = []

    def __iter__(self):
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> Measurement:
        return self._items[index]

    def add(self, measurement: Measurement) -> Measurement:
        self._items.append(measurement)
        self.changed.emit()
        return measurement

    def remove(self, measurement: Measurement) -> None:
        if measurement in self._items:
            self._items.remove(measurement)
            self.changed.emit()

    def clear(self) -> None:
        if self._items:
            self._items.clear()
            self.changed.emit()

    def on_slice(self, view_axis: int, slice_index: int) -> list[Measurement]:
        return [m for m in self._items if m.view_axis == view_axis and m.slice_index == slice_index]
