"""DICOM RT structure sets (RTSTRUCT) as label maps over their image.

Radiotherapy planning systems, and many public CT collections, store reference
segmentations as closed planar contours in world millimetres, one set per ROI. Each
contour is filled on the image slice it lies on (voxel centres inside the polygon;
several contours of one ROI on one slice combine by even-odd, so holes stay holes),
as 3D Slicer's RT import does when it makes a labelmap.

ROIs often overlap (BODY contains the lungs, a PTV contains its GTV): they are packed
into as few label maps as needed (``medviewer.io.label_layers``), so no voxel is lost.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pydicom

from medviewer.core.errors import CorruptFileError, GeometryMismatchError, MedviewerError
from medviewer.core.geometry import Geometry
from medviewer.core.labels import LabelMap
from medviewer.io.dicom_headers import RT_STRUCTURE_SET_STORAGE, segmentation_kind  # noqa: F401 - re-exported
from medviewer.io.label_layers import Structure, bounding_box, pack_layers

#: A contour may sit this far (in voxels) from an image slice and still count as on it.
SLICE_TOLERANCE_VOXELS = 0.25

_READ_ERRORS = (pydicom.errors.InvalidDicomError, OSError, ValueError, AttributeError, KeyError, TypeError, IndexError,
                struct.error, EOFError)


def is_rtstruct(path: str | os.PathLike[str]) -> bool:
    """True for a DICOM RT structure set (reads the header only; never raises)."""
    return segmentation_kind(path) == "RTSTRUCT"


def referenced_series_uids(path: str | os.PathLike[str]) -> set[str]:
    """SeriesInstanceUIDs the structure set's contours were drawn on."""
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["ReferencedFrameOfReferenceSequence"])
    except _READ_ERRORS:
        return set()
    uids = set()
    for frame in header.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                if "SeriesInstanceUID" in series:
                    uids.add(str(series.SeriesInstanceUID))
    return uids


def _contour_points(contour: pydicom.Dataset) -> np.ndarray:
    """ContourData as an (n, 3) array; parsed from the raw text when possible (pydicom's DS parsing is slow)."""
    element = contour.get_item("ContourData")
    raw = getattr(element, "value", None)
    if isinstance(raw, (bytes, bytearray)):
        text = raw.decode("ascii", "replace").replace("\x00", "").strip()
        values = np.array(text.split("\\"), dtype=float) if text else np.zeros(0)
    else:
        values = np.asarray(contour.ContourData, float)
    return values.reshape(-1, 3)


def _fill_slice(polygons: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Voxel centres inside the polygons (index x, y), combined even-odd, by scanline crossing counts.

    A centre exactly on a left edge is inside, on a right edge outside; an edge counts for
    rows in ``[y_low, y_high)`` so a vertex is crossed once.
    """
    height, width = shape
    toggles = np.zeros((height, width + 1), np.int32)
    for points in polygons:
        x0, y0 = points[:, 0], points[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        low, high = np.minimum(y0, y1), np.maximum(y0, y1)
        rows_from = np.clip(np.ceil(low), 0, height).astype(int)
        rows_to = np.clip(np.ceil(high), 0, height).astype(int)  # exclusive: [ceil(low), ceil(high))
        counts = np.maximum(rows_to - rows_from, 0)
        if not counts.any():
            continue
        edge = np.repeat(np.arange(len(counts)), counts)  # one entry per (edge, row it crosses)
        starts = np.cumsum(counts) - counts
        rows = rows_from[edge] + np.arange(len(edge)) - starts[edge]
        x = x0[edge] + (rows - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
        np.add.at(toggles, (rows, np.clip(np.ceil(x), 0, width).astype(int)), 1)
    return (np.cumsum(toggles, axis=1)[:, :width] % 2).astype(bool)


def _rasterise(contours, geometry: Geometry, path: str, name: str) -> tuple[tuple[slice, slice, slice], np.ndarray] | None:
    """The filled contours of one ROI as a boolean mask in its bounding box (None when empty)."""
    polygons: dict[int, list[np.ndarray]] = {}
    for contour in contours:
        if str(getattr(contour, "ContourGeometricType", "CLOSED_PLANAR")).upper() != "CLOSED_PLANAR":
            continue  # points and open polylines enclose no voxels
        points = _contour_points(contour)
        if len(points) < 3:
            continue
        index = geometry.world_to_index(points)
        k = int(round(float(np.median(index[:, 2]))))
        if np.abs(index[:, 2] - k).max() > SLICE_TOLERANCE_VOXELS:
            raise GeometryMismatchError(
                f"a contour of '{name}' does not lie on a slice of the image (was it drawn on another series?)", path
            )
        if not 0 <= k < geometry.size[2]:
            raise GeometryMismatchError(f"a contour of '{name}' lies outside the image", path)
        polygons.setdefault(k, []).append(index[:, :2])
    planes = {k: _fill_slice(found, (geometry.size[1], geometry.size[0])) for k, found in polygons.items()}
    planes = {k: plane for k, plane in planes.items() if plane.any()}
    if not planes:
        return None
    ks = sorted(planes)
    stack = np.zeros((ks[-1] - ks[0] + 1, geometry.size[1], geometry.size[0]), bool)
    for k, plane in planes.items():
        stack[k - ks[0]] = plane
    box = bounding_box(stack)  # of the slab that starts at slice ks[0]
    return (slice(box[0].start + ks[0], box[0].stop + ks[0]), box[1], box[2]), stack[box].copy()


def _structures(dataset: pydicom.Dataset, geometry: Geometry, path: str) -> list[Structure]:
    names = {int(item.ROINumber): str(getattr(item, "ROIName", "") or f"ROI {item.ROINumber}")
             for item in dataset.get("StructureSetROISequence", [])}
    structures = []
    for roi in dataset.get("ROIContourSequence", []):
        number = int(roi.ReferencedROINumber)
        name = names.get(number, f"ROI {number}")
        color = tuple(int(c) for c in roi.ROIDisplayColor) if "ROIDisplayColor" in roi else None
        placed = _rasterise(roi.get("ContourSequence", []), geometry, path, name)
        if placed is not None:
            structures.append(Structure(name, color if color and len(color) == 3 else None, *placed))
    return structures


def read_rtstruct(path: str | os.PathLike[str], image_geometry: Geometry) -> list[LabelMap]:
    """The structure set's ROIs filled on ``image_geometry``, packed into non-overlapping label maps.

    The first layer takes every structure that overlaps no earlier one; a structure that
    would overlap starts or joins a later layer. Values are 1, 2, ... per layer, named
    and coloured from the ROIs. Raises ``GeometryMismatchError`` when contours do not lie
    on the image's slices and ``CorruptFileError`` for an unreadable file.
    """
    path = os.fspath(path)
    try:
        dataset = pydicom.dcmread(path)
        structures = _structures(dataset, image_geometry, path)
    except MedviewerError:
        raise
    except _READ_ERRORS as error:
        raise CorruptFileError(f"not a readable RT structure set ({error})", path) from None
    if not structures:
        raise MedviewerError("the RT structure set has no closed contours on this image", path)
    title = str(getattr(dataset, "StructureSetLabel", "") or getattr(dataset, "SeriesDescription", "") or Path(path).stem)
    return pack_layers(structures, image_geometry, title, "RTSTRUCT")
