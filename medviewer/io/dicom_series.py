"""Assemble DICOM frame records into loadable series with their true geometry.

The rules follow what 3D Slicer and dcm2niix do with real scanner data:

* frames are grouped by SeriesInstanceUID, then split where the image grid differs
  (orientation, rows/columns, pixel spacing, colour): a localizer with three
  orientations under one UID becomes three series;
* frames that repeat a slice position are split into separate volumes by the first tag
  that tells them apart (echo, temporal position, trigger time, b-value, acquisition...);
* slices are sorted by their distance along the slice normal
  ``n = row direction x column direction`` (never by file name or InstanceNumber), and
  the slice spacing comes from those distances (never from SliceThickness);
* stacks that do not form a regular grid (gantry tilt, variable spacing, missing
  slices) get a resampling plan onto a regular grid and a warning; the geometry in the
  ``SeriesInfo`` is the geometry the loaded volume will have;
* a stack whose gaps would need more interpolated slices than were acquired (separate
  slabs, scattered slices) is split into its contiguous runs instead;
* files without a SeriesInstanceUID (anonymised exports) are grouped by study, frame of
  reference, series number/description, orientation and image size, as dcm2niix does;
* geometry the headers do not give is never invented silently: an unusable
  ImageOrientationPatient is replaced by the standard plane the positions suggest, slices
  without ImagePositionPatient are stacked by SliceLocation or InstanceNumber, and each
  assumption is a warning of the series naming the file and the attribute.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from medviewer.core.geometry import Geometry
from medviewer.core.study import SeriesInfo
from medviewer.core.volume import VolumeMetadata
from medviewer.io.dicom_headers import FrameRecord, SkippedFile

#: Two orientation cosines closer than this belong to the same stack.
ORIENTATION_TOLERANCE = 1e-3
#: Two pixel spacings closer than this (mm) belong to the same stack.
PIXEL_SPACING_TOLERANCE = 1e-3
#: Slices closer than this along the normal (mm) share a position.
SAME_POSITION_TOLERANCE = 1e-2
#: A stack is regular when every slice lies within this fraction of the spacing of the
#: ideal regular grid (and within ``_MIN_POSITION_TOLERANCE`` mm).
GRID_TOLERANCE_FRACTION = 0.02
_MIN_POSITION_TOLERANCE = 1e-2
#: Variable spacing is resampled at the finest gap, but never to more than this many
#: times as many slices as were acquired.
MAX_SLICE_MULTIPLIER = 4

#: Modalities whose images are slices of a volume (stacked when they lack positions);
#: projection images (CR, DX, XA...) and screenshots stay separate images.
CROSS_SECTIONAL_MODALITIES = frozenset({"CT", "MR", "PT", "NM"})

#: Secondary captures (...1.1.7 and its multi-frame ...1.1.7.x) and, by the same prefix, the
#: visible-light family (...1.1.77.x): pictures, never slices of a volume.
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"

#: ImageOrientationPatient of the standard planes, indexed by the world axis of their normal.
_STANDARD_PLANES: tuple[tuple[str, tuple[float, ...]], ...] = (
    ("sagittal", (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)),
    ("coronal", (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)),
    ("axial", (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)),
)

NO_UID_WARNING = (
    "the files have no SeriesInstanceUID: grouped into one series by study, frame of reference, "
    "series number and description, orientation and image size"
)

# Tags tried, in order, to tell apart volumes that share slice positions: (attribute, label).
VOLUME_TAGS: tuple[tuple[str, str], ...] = (
    ("echo_number", "echo"),
    ("echo_time", "TE"),
    ("temporal_position", "time point"),
    ("stack_id", "stack"),
    ("trigger_time", "trigger"),
    ("diffusion", "diffusion"),
    ("inversion_time", "TI"),
    ("acquisition_number", "acquisition"),
    ("image_type", "type"),
    ("acquisition_time", "acquired"),
    ("content_time", "content time"),
)


@dataclass
class DicomSlice:
    """Where the pixels of one output (acquired) slice are, and how to rescale them."""

    path: str
    frame: int | None
    slope: float
    intercept: float
    compressed: bool


@dataclass
class ResamplePlan:
    """How to move acquired slices onto the regular output grid (see ``medviewer.imaging.resample``)."""

    slice_positions: np.ndarray  # (n,) mm along the normal, from the first slice
    slice_offsets_xy: np.ndarray  # (n, 2) pixel (0, 0) of each slice on the output grid
    output_positions: np.ndarray  # (m,) mm along the normal
    output_shape_yx: tuple[int, int]


@dataclass
class DicomPlan:
    """Reader-private part of a DICOM ``SeriesInfo``: everything ``load`` needs."""

    slices: list[DicomSlice]
    rows: int
    columns: int
    dtype: str
    color: bool
    photometric: str
    metadata: VolumeMetadata
    resample: ResamplePlan | None = None
    #: True when frames have no spatial position (stacked in frame order).
    frame_stack: bool = False


@dataclass
class _Part:
    records: list[FrameRecord]
    labels: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Slice spacing of files stacked without positions (decided in ``_stack_without_positions``).
    z_spacing: float | None = None


# ---------------------------------------------------------------------------- public
def build_series(records: Iterable[FrameRecord], skipped: list[SkippedFile]) -> list[SeriesInfo]:
    """Group, split, sort and analyse frame records into series (duplicates go to ``skipped``)."""
    by_uid: dict[str, list[FrameRecord]] = {}
    seen: set[tuple[str, int | None]] = set()
    orientations: list[tuple[float, ...]] = []
    for record in records:
        key = (record.sop_instance_uid, record.frame)
        if record.sop_instance_uid and key in seen:
            if record.frame in (None, 0):
                skipped.append(SkippedFile(record.path, "duplicate of another file (same SOPInstanceUID)", "duplicate"))
            continue
        seen.add(key)
        by_uid.setdefault(record.series_uid or _uidless_key(record, orientations), []).append(record)

    series: list[SeriesInfo] = []
    for uid, group in by_uid.items():
        parts = _split_series(group)
        for index, part in enumerate(parts):
            key = uid if len(parts) == 1 else f"{uid}#{index + 1}"
            if uid.startswith("no-uid:"):
                part.warnings.insert(0, NO_UID_WARNING)
            series.append(_series_info(key, uid, part, len(parts)))
    series.sort(key=lambda s: (s.study_uid, s.number if s.number is not None else 1 << 30, s.uid))
    return series


def _uidless_key(record: FrameRecord, orientations: list[tuple[float, ...]]) -> str:
    """Grouping key of a file without SeriesInstanceUID (what 3D Slicer and dcm2niix use instead).

    The key is a digest of the identifying values, so the same files get the same key in
    every scan (recovery and saved sessions refer to series by it); orientations within
    the tolerance share their first representative.
    """
    index = _cluster(record.orientation, orientations, ORIENTATION_TOLERANCE)
    orientation = tuple(round(v, 2) + 0.0 for v in orientations[index]) if index >= 0 else None
    identity = (
        record.study_uid,
        record.frame_of_reference_uid,
        record.series_number,
        record.series_description,
        orientation,
        record.rows,
        record.columns,
    )
    return "no-uid:" + hashlib.sha1(repr(identity).encode()).hexdigest()[:16]


def _cluster(value: tuple[float, ...] | None, representatives: list[tuple[float, ...]], tolerance: float) -> int:
    """Index of the representative within ``tolerance`` of ``value`` (added when new); -1 for None."""
    if value is None:
        return -1
    for index, rep in enumerate(representatives):
        if max(abs(a - b) for a, b in zip(value, rep)) <= tolerance:
            return index
    representatives.append(value)
    return len(representatives) - 1


def slice_normal(orientation: Iterable[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal (row, column, normal) directions from an ImageOrientationPatient.

    Real headers carry rounding noise, so the column direction is made exactly
    perpendicular to the row direction (Gram-Schmidt) before the cross product.
    """
    values = np.asarray(list(orientation), dtype=float)
    row = values[:3] / np.linalg.norm(values[:3])
    column = values[3:] - row * float(values[3:] @ row)
    column /= np.linalg.norm(column)
    return row, column, np.cross(row, column)


# ---------------------------------------------------------------------------- splitting
def _split_series(records: list[FrameRecord]) -> list[_Part]:
    assumed = _assume_orientation(records)
    groups = _split_by_grid(records)
    parts: list[_Part] = []
    for group in groups:
        positioned = all(r.position is not None and r.orientation is not None for r in group.records)
        if positioned:
            for volume in _split_repeated_positions(group):
                parts.extend(_split_sparse_stack(volume))
        else:
            parts.extend(_unpositioned_parts(group))
    if len(groups) > 1:
        summary = ", ".join(f"{' '.join(g.labels)}: {len(g.records)}" for g in groups)
        for part in parts:
            part.warnings.append(f"this DICOM series mixes image grids ({summary} frames); split into {len(parts)} series")
    if assumed:
        for part in parts:
            if any(r.orientation_problem for r in part.records):
                part.warnings.insert(0, assumed)
    return parts


def _files_text(records: list[FrameRecord]) -> str:
    """'PATH' for one file, 'N files (e.g. PATH)' for several."""
    files = list(dict.fromkeys(r.path for r in records))
    return files[0] if len(files) == 1 else f"{len(files)} files (e.g. {files[0]})"


def _assume_orientation(records: list[FrameRecord]) -> str:
    """Give frames with an unusable ImageOrientationPatient a standard plane; the warning that says so.

    3D Slicer (through GDCM) opens such images with a default orientation; so does this,
    but it picks the plane whose normal is the axis along which the slice positions
    change (so a sagittal stack stays a stack), and says what was assumed.
    """
    bad = [r for r in records if r.orientation_problem]
    if not bad:
        return ""
    name, orientation = _STANDARD_PLANES[2]
    reason = "no slice positions to tell the plane"
    positions = [r.position for r in bad if r.position is not None]
    if len(positions) == len(bad) and len(bad) > 1:
        spread = np.ptp(np.array(positions, dtype=float), axis=0)
        if float(spread.max()) > 0:
            name, orientation = _STANDARD_PLANES[int(np.argmax(spread))]
            reason = "the axis along which the slice positions change"
    for record in bad:
        # The record is this scan's own; the assumed plane is what the series will use.
        record.orientation = orientation
    return (
        f"{bad[0].orientation_problem} in {_files_text(bad)}: the orientation is unknown, "
        f"{name} was assumed ({reason}); left/right and front/back may be wrong"
    )


def _is_slice(record: FrameRecord) -> bool:
    """Whether an image without position is a slice of a volume (not a radiograph or screenshot)."""
    if record.orientation is not None or record.orientation_problem or record.position_problem:
        return True  # the header meant to place it in patient space
    # A secondary capture (dose report, screenshot) is a picture even when its modality says CT.
    return record.modality in CROSS_SECTIONAL_MODALITIES and not record.sop_class_uid.startswith(SECONDARY_CAPTURE_PREFIX)


def _unpositioned_parts(group: _Part) -> list[_Part]:
    """Frames without a position: one file's frames form a stack; slices of several files are
    stacked by SliceLocation or InstanceNumber; other images (radiographs) stay separate."""
    by_file: dict[str, list[FrameRecord]] = {}
    for record in group.records:
        by_file.setdefault(record.path, []).append(record)
    if len(by_file) > 1 and all(len(f) == 1 for f in by_file.values()) and all(_is_slice(r) for r in group.records):
        stacked = _stack_without_positions(group.records)
        if stacked is not None:
            records, spacing, note = stacked
            return [_Part(records, list(group.labels), list(group.warnings) + [note], z_spacing=spacing)]
    parts = []
    for index, file_records in enumerate(by_file.values()):
        labels = list(group.labels) + ([f"image {index + 1}"] if len(by_file) > 1 else [])
        parts.append(_Part(sorted(file_records, key=lambda r: r.frame or 0), labels, list(group.warnings)))
    return parts


def _missing_position_text(records: list[FrameRecord]) -> str:
    bad = [r for r in records if r.position_problem]
    if bad:
        return f"{bad[0].position_problem} in {_files_text(bad)}"
    return f"ImagePositionPatient is missing in {_files_text(records)}"


def _stack_without_positions(records: list[FrameRecord]) -> tuple[list[FrameRecord], float, str] | None:
    """Slices without positions in SliceLocation (else InstanceNumber) order, their spacing and the warning.

    None when neither tag orders them (every file must have a distinct value).
    """
    count = len(records)
    locations = [r.slice_location for r in records]
    numbers = [r.instance_number for r in records]
    first = records[0]
    if None not in locations and len({round(v, 3) for v in locations}) == count:
        records = sorted(records, key=lambda r: r.slice_location)
        ordered = np.array([r.slice_location for r in records])
        gaps = np.diff(ordered)
        spacing = float(ordered[-1] - ordered[0]) / (count - 1)
        how = f"in SliceLocation order, {spacing:.4g} mm apart"
        if float(np.max(np.abs(gaps - spacing))) > max(_MIN_POSITION_TOLERANCE, GRID_TOLERANCE_FRACTION * spacing):
            how += f" on average (SliceLocation steps vary from {gaps.min():.4g} to {gaps.max():.4g} mm; not resampled)"
    elif None not in numbers and len(set(numbers)) == count:
        records = sorted(records, key=lambda r: r.instance_number)
        for source, value in (("SpacingBetweenSlices", first.spacing_between_slices), ("SliceThickness", first.slice_thickness)):
            if value is not None and value > 0:
                spacing, how = value, f"in InstanceNumber order, {value:.4g} mm apart (from {source})"
                break
        else:
            spacing, how = 1.0, "in InstanceNumber order, 1 mm apart (no slice distance in the headers)"
    else:
        return None
    if first.orientation_problem:
        plane = "the assumed orientation"
    elif first.orientation is not None:
        plane = "directions from ImageOrientationPatient"
    else:
        plane = "axial directions assumed"
    note = (
        f"{_missing_position_text(records)}: the {count} slices were stacked {how}, "
        f"origin (0, 0, 0) assumed, {plane}"
    )
    return records, spacing, note


def _split_by_grid(records: list[FrameRecord]) -> list[_Part]:
    """Split where rows/columns, orientation, pixel spacing or colour differ."""
    orientations: list[tuple[float, ...]] = []
    spacings: list[tuple[float, float]] = []

    groups: dict[tuple, list[FrameRecord]] = {}
    for record in records:
        key = (
            record.rows,
            record.columns,
            record.is_color,
            record.position is not None and record.orientation is not None,
            _cluster(record.orientation, orientations, ORIENTATION_TOLERANCE),
            _cluster(record.pixel_spacing, spacings, PIXEL_SPACING_TOLERANCE),
        )
        groups.setdefault(key, []).append(record)
    if len(groups) == 1:
        return [_Part(records)]

    keys = list(groups)
    varying = [len({k[i] for k in keys}) > 1 for i in range(len(keys[0]))]
    parts = []
    for key, group in groups.items():
        first = group[0]
        labels = []
        if varying[0] or varying[1]:
            labels.append(f"{first.columns}x{first.rows}")
        if varying[2]:
            labels.append("colour" if first.is_color else "grey")
        if varying[4] or varying[3]:
            labels.append(_orientation_name(first.orientation))
        if varying[5]:
            labels.append(f"{first.pixel_spacing[1]:.3g} mm pixels" if first.pixel_spacing else "no pixel spacing")
        parts.append(_Part(group, labels))
    # Grids in acquisition order (a localizer's views as the scanner numbered them).
    parts.sort(key=lambda p: min(r.instance_number if r.instance_number is not None else 1 << 30 for r in p.records))
    return parts


def _orientation_name(orientation: tuple[float, ...] | None) -> str:
    if orientation is None:
        return "no orientation"
    normal = np.abs(slice_normal(orientation)[2])
    axis = int(np.argmax(normal))
    if normal[axis] < 0.95:
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def _distances(records: list[FrameRecord]) -> np.ndarray:
    normal = slice_normal(records[0].orientation)[2]
    return np.array([np.dot(normal, r.position) for r in records])


def _repeats(records: list[FrameRecord]) -> int:
    """How many frames share a slice position with another frame."""
    if len(records) < 2:
        return 0
    distances = np.sort(_distances(records))
    return int(np.count_nonzero(np.diff(distances) < SAME_POSITION_TOLERANCE))


def _sorted_values(values: Iterable[Any]) -> list[Any]:
    values = list(dict.fromkeys(values))
    try:
        return sorted(values, key=lambda v: (v is None, v))
    except TypeError:
        return sorted(values, key=lambda v: (v is None, str(v)))


def _split_repeated_positions(part: _Part) -> list[_Part]:
    """Separate volumes whose slices share positions (echoes, time points, ...)."""
    repeats = _repeats(part.records)
    if repeats == 0:
        return [part]
    best: tuple[int, str, str, dict] | None = None
    for attribute, label in VOLUME_TAGS:
        values = _sorted_values(getattr(r, attribute) for r in part.records)
        if len(values) < 2:
            continue
        groups = {value: [r for r in part.records if getattr(r, attribute) == value] for value in values}
        remaining = sum(_repeats(g) for g in groups.values())
        if best is None or remaining < best[0]:
            best = (remaining, attribute, label, groups)
        if remaining == 0:
            break
    if best is not None and best[0] < repeats:
        _, attribute, label, groups = best
        result = []
        for value, group in groups.items():
            sub = _Part(group, part.labels + [_value_label(label, value)], list(part.warnings))
            result.extend(_split_repeated_positions(sub))
        return result
    return _split_untagged_repeats(part)


def _value_label(label: str, value: Any) -> str:
    if isinstance(value, tuple):
        value = "/".join(str(v) for v in value if v is not None)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{label} {value}"


def _split_untagged_repeats(part: _Part) -> list[_Part]:
    """Repeated positions that no tag explains: split evenly, or keep one frame per position."""
    records = part.records
    distances = _distances(records)
    order = np.argsort(distances, kind="stable")
    clusters: list[list[FrameRecord]] = []
    last = None
    for index in order:
        if last is None or distances[index] - last >= SAME_POSITION_TOLERANCE:
            clusters.append([])
        clusters[-1].append(records[index])
        last = distances[index]
    for cluster in clusters:
        cluster.sort(key=lambda r: (r.instance_number if r.instance_number is not None else 1 << 30, r.frame or 0, r.path))
    counts = {len(c) for c in clusters}
    if len(counts) == 1 and len(clusters) > 1:
        volumes = counts.pop()
        note = (
            f"{volumes} volumes share slice positions and no tag tells them apart; "
            "they were split by InstanceNumber order"
        )
        return [
            _Part([c[v] for c in clusters], part.labels + [f"volume {v + 1}"], part.warnings + [note])
            for v in range(volumes)
        ]
    kept = [c[0] for c in clusters]
    dropped = [r for c in clusters for r in c[1:]]
    note = (
        f"{len(dropped)} frame{'s' if len(dropped) != 1 else ''} repeat{'s' if len(dropped) == 1 else ''} "
        "the position of another frame and were left out "
        f"(e.g. {_frame_name(dropped[0])})"
    )
    return [_Part(kept, part.labels, part.warnings + [note])]


def _split_sparse_stack(part: _Part) -> list[_Part]:
    """Split a stack whose gaps would need more invented slices than were acquired.

    A few missing slices are filled by interpolation (see ``_stack_geometry``); a
    series made of separate slabs far apart (or a handful of scattered slices) is not
    one volume, so each contiguous run becomes its own series instead.
    """
    records = part.records
    if len(records) < 3:
        return [part]
    distances = _distances(records)
    order = np.argsort(distances, kind="stable")
    gaps = np.diff(distances[order])
    typical = float(np.median(gaps))
    extent = float(distances[order[-1]] - distances[order[0]])
    if typical <= 0 or extent / typical + 1 <= 2 * len(records):
        return [part]
    breaks = np.nonzero(gaps > 1.5 * typical)[0]
    runs = np.split(order, breaks + 1)
    note = (
        f"the slices are not contiguous ({len(breaks)} gap{'s' if len(breaks) != 1 else ''} of up to "
        f"{gaps.max():.4g} mm between {typical:.4g} mm slices): split into {len(runs)} stacks"
    )
    return [
        _Part([records[i] for i in run], part.labels + [f"stack {index + 1}"], part.warnings + [note])
        for index, run in enumerate(runs)
    ]


def _frame_name(record: FrameRecord) -> str:
    return record.path if record.frame is None else f"{record.path} frame {record.frame + 1}"


# ---------------------------------------------------------------------------- geometry
def _series_info(key: str, uid: str, part: _Part, part_count: int) -> SeriesInfo:
    records = part.records
    first = records[0]
    warnings = list(part.warnings)
    calibrated = first.pixel_spacing is not None
    if calibrated:
        row_spacing, column_spacing = first.pixel_spacing
        if first.spacing_source == "ImagerPixelSpacing":
            warnings.append(
                "pixel spacing comes from ImagerPixelSpacing (at the detector, not corrected for magnification)"
            )
    else:
        row_spacing = column_spacing = 1.0
        warnings.append("pixel spacing is unknown: spacing set to 1 and measurements are in pixels")

    resample = None
    frame_stack = False
    if first.position is not None and first.orientation is not None:
        records, geometry, resample, geometry_warnings = _stack_geometry(records, row_spacing, column_spacing)
        warnings.extend(geometry_warnings)
    else:
        frame_stack = len(records) > 1
        if part.z_spacing is not None:
            z_spacing = part.z_spacing  # files stacked by SliceLocation/InstanceNumber (warned in the part)
        else:
            z_spacing = first.spacing_between_slices if (first.spacing_between_slices or 0) > 0 else 1.0
        # Directions from ImageOrientationPatient when it is there (or was assumed); origin unknown.
        direction = np.column_stack(slice_normal(first.orientation)) if first.orientation is not None else np.eye(3)
        geometry = Geometry.from_matrix(
            (first.columns, first.rows, len(records)), (column_spacing, row_spacing, z_spacing), (0.0, 0.0, 0.0), direction
        )
        if frame_stack and part.z_spacing is None:
            warnings.append(
                f"the {len(records)} frames have no position in space: stacked in frame order "
                f"({'assumed ' + format(z_spacing, '.4g') + ' mm' if z_spacing != 1.0 else 'z spacing 1, not a distance'})"
            )
        if not frame_stack and _is_slice(first):
            warnings.append(f"{_missing_position_text(records[:1])}: origin (0, 0, 0) assumed")
    for note in dict.fromkeys(r.pixel_note for r in records if r.pixel_note):
        warnings.append(f"{note} ({_files_text([r for r in records if r.pixel_note == note])})")

    dtype, value_range = _output_type(records)
    description = first.series_description or " ".join(
        s for s in (first.modality, f"series {first.series_number}" if first.series_number is not None else "") if s
    ) or "DICOM series"
    if part.labels:
        description = f"{description} [{', '.join(part.labels)}]"
    if first.photometric.startswith(("RGB", "YBR", "PALETTE")) or first.samples_per_pixel > 1:
        warnings.append(f"colour image ({first.photometric}) converted to grayscale (luminance)")
    if first.has_voi_lut and not first.windows:
        warnings.append("the file's VOI LUT table is not applied; the default window comes from the data")

    windows = next((r.windows for r in _middle_first(records) if r.windows), [])
    metadata = VolumeMetadata(
        patient_id=first.patient_id,
        patient_name=first.patient_name,
        study_uid=first.study_uid,
        study_description=first.study_description,
        study_date=first.study_date,
        series_uid=uid if not uid.startswith("no-uid:") else "",
        series_description=description,
        series_number=first.series_number,
        windows=list(windows),
        units=_units(first),
        calibrated=calibrated,
        display_inverted=first.photometric == "MONOCHROME1",
        warnings=list(warnings),
        source_path="",
        source_format="DICOM",
        extra={
            "series_key": key,
            "sop_class_uid": first.sop_class_uid,
            "manufacturer": first.manufacturer,
            "body_part": first.body_part,
            "frame_of_reference_uid": first.frame_of_reference_uid,
            "spacing_source": first.spacing_source,
        },
    )
    if first.orientation is None and first.patient_orientation is not None:
        # A radiograph or secondary capture: no place in patient space, only the directions
        # of its rows and columns, which the viewer shows as edge letters.
        metadata.extra["patient_orientation"] = list(first.patient_orientation)
    files = list(dict.fromkeys(r.path for r in records))
    source_path = os.path.commonpath(files) if len(files) > 1 else files[0]
    metadata.source_path = source_path
    plan = DicomPlan(
        slices=[DicomSlice(r.path, r.frame, r.slope, r.intercept, r.compressed) for r in records],
        rows=first.rows,
        columns=first.columns,
        dtype=dtype,
        color=first.is_color,
        photometric=first.photometric,
        metadata=metadata,
        resample=resample,
        frame_stack=frame_stack,
    )
    return SeriesInfo(
        uid=key,
        description=description,
        modality=first.modality,
        number=first.series_number,
        files=files,
        geometry=geometry,
        pixel_type=dtype,
        value_range=value_range,
        warnings=warnings,
        study_uid=first.study_uid,
        study_description=first.study_description,
        patient_id=first.patient_id,
        patient_name=first.patient_name,
        source_format="DICOM",
        source_path=source_path,
        plan=plan,
    )


def _middle_first(records: list[FrameRecord]) -> list[FrameRecord]:
    middle = len(records) // 2
    return records[middle:] + records[:middle]


def _units(record: FrameRecord) -> str:
    if record.modality == "CT":
        return "HU"
    if record.units:
        return record.units
    if record.rescale_type and record.rescale_type.upper() not in ("US", "UNSPECIFIED"):
        return record.rescale_type
    return ""


def _stack_geometry(
    records: list[FrameRecord], row_spacing: float, column_spacing: float
) -> tuple[list[FrameRecord], Geometry, ResamplePlan | None, list[str]]:
    """Sort positioned slices along the normal and decide the output grid."""
    row, column, normal = slice_normal(records[0].orientation)
    positions = np.array([r.position for r in records], dtype=float)
    distances = positions @ normal
    order = np.argsort(distances, kind="stable")
    records = [records[i] for i in order]
    positions, distances = positions[order], distances[order]
    direction = np.column_stack([row, column, normal])
    rows, columns, count = records[0].rows, records[0].columns, len(records)

    if count == 1:
        first = records[0]
        thickness = first.spacing_between_slices or first.slice_thickness or 1.0
        geometry = Geometry.from_matrix(
            (columns, rows, 1), (column_spacing, row_spacing, thickness if thickness > 0 else 1.0), positions[0], direction
        )
        return records, geometry, None, []

    relative = distances - distances[0]
    extent = float(relative[-1])
    offsets_mm = np.column_stack([(positions - positions[0]) @ row, (positions - positions[0]) @ column])
    inplane_tolerance = max(_MIN_POSITION_TOLERANCE, GRID_TOLERANCE_FRACTION * min(row_spacing, column_spacing))
    shifted = float(np.max(np.abs(offsets_mm))) > inplane_tolerance
    uniform = extent / (count - 1)
    deviation = float(np.max(np.abs(relative - uniform * np.arange(count))))
    regular_spacing = deviation <= max(_MIN_POSITION_TOLERANCE, GRID_TOLERANCE_FRACTION * uniform)

    if regular_spacing and not shifted:
        geometry = Geometry.from_matrix((columns, rows, count), (column_spacing, row_spacing, uniform), positions[0], direction)
        return records, geometry, None, []

    warnings = []
    gaps = np.diff(relative)
    if regular_spacing:
        output_positions = relative.copy()
    else:
        typical = float(np.median(gaps))
        multiples = gaps / typical
        if np.all(np.abs(multiples - np.rint(multiples)) <= GRID_TOLERANCE_FRACTION * 2) and np.all(np.rint(multiples) >= 1):
            slices_out = int(round(extent / typical)) + 1
            missing = int(np.sum(np.rint(multiples) - 1))
            where = [f"{relative[i] + distances[0]:.1f}" for i in np.nonzero(np.rint(multiples) > 1)[0][:3]]
            warnings.append(
                f"{missing} missing slice{'s' if missing != 1 else ''} (after the slices at {', '.join(where)} mm "
                "along the normal): the gaps were filled by linear interpolation between the neighbouring slices"
            )
        else:
            step = max(float(gaps.min()), extent / (MAX_SLICE_MULTIPLIER * (count - 1)))
            slices_out = int(math.ceil(extent / step - 1e-6)) + 1
            warnings.append(
                f"slice spacing varies from {gaps.min():.4g} to {gaps.max():.4g} mm: resampled to a regular "
                f"{extent / (slices_out - 1):.4g} mm spacing by linear interpolation between slices"
            )
        output_positions = np.linspace(0.0, extent, slices_out)

    offsets_px = offsets_mm / np.array([column_spacing, row_spacing])
    low = np.floor(offsets_px.min(axis=0) + 1e-6)
    high = np.ceil(offsets_px.max(axis=0) - low - 1e-6)
    output_shape_yx = (int(rows + high[1]), int(columns + high[0]))
    origin = positions[0] + low[0] * column_spacing * row + low[1] * row_spacing * column
    if shifted:
        fit = np.polyfit(relative, offsets_mm, 1)
        residual = float(np.max(np.abs(np.outer(relative, fit[0]) + fit[1] - offsets_mm)))
        if residual <= inplane_tolerance:
            angle = math.degrees(math.atan(float(np.hypot(*fit[0]))))
            cause = f"gantry tilt of {angle:.2f} degrees (slices sheared along the normal)"
        else:
            cause = f"slices shifted in-plane irregularly (up to {np.max(np.abs(offsets_mm)):.3g} mm)"
        warnings.append(
            f"{cause}: resampled onto a regular {output_shape_yx[1]}x{output_shape_yx[0]}x{len(output_positions)} grid "
            f"(acquired {columns}x{rows}x{count}) so every voxel is at its true position"
        )
    spacing_z = extent / (len(output_positions) - 1)
    geometry = Geometry.from_matrix(
        (output_shape_yx[1], output_shape_yx[0], len(output_positions)),
        (column_spacing, row_spacing, spacing_z),
        origin,
        direction,
    )
    plan = ResamplePlan(relative, offsets_px - low, output_positions, output_shape_yx)
    return records, geometry, plan, warnings


# ---------------------------------------------------------------------------- pixel type
def _stored_range(record: FrameRecord) -> tuple[float, float]:
    bits = max(1, min(record.bits_stored, record.bits_allocated))
    if record.pixel_representation == 1:
        return -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    return 0.0, 2.0**bits - 1


def _rescaled(record: FrameRecord, low: float, high: float) -> tuple[float, float]:
    a, b = record.slope * low + record.intercept, record.slope * high + record.intercept
    return min(a, b), max(a, b)


def _output_type(records: list[FrameRecord]) -> tuple[str, tuple[float, float] | None]:
    """Output dtype name and, when the headers state it, the value range after rescale.

    Integral slopes/intercepts keep an integer type (the smallest of uint8, int16,
    uint16, int32 that holds the range); anything else is float32. When the stored bit
    depth allows values no real image uses (e.g. signed 16-bit CT with intercept -1024),
    the 16-bit type is chosen and the loader widens it if a slice really needs more.
    """
    first = records[0]
    if first.is_color:
        return ("uint8" if first.bits_allocated <= 8 else "float32"), None
    if any(r.float_pixels for r in records):
        return "float32", None  # Float Pixel Data: the values are floats whatever the slope
    actual = None
    if all(r.smallest_value is not None and r.largest_value is not None for r in records):
        ranges = [_rescaled(r, r.smallest_value, r.largest_value) for r in records]
        actual = (min(r[0] for r in ranges), max(r[1] for r in ranges))
    integral = all(float(r.slope).is_integer() and float(r.intercept).is_integer() for r in records)
    if not integral:
        return "float32", actual
    ranges = [_rescaled(r, *_stored_range(r)) for r in records]
    theoretical = (min(r[0] for r in ranges), max(r[1] for r in ranges))
    needed = actual if actual is not None else theoretical
    for name in ("uint8", "int16", "uint16"):
        if _fits(name, needed):
            return name, actual
    if actual is not None:
        return ("int32" if _fits("int32", actual) else "float32"), actual
    # Only the bit depth is known: start with 16 bits, the loader widens when needed.
    return ("int16" if theoretical[0] < 0 else "uint16"), actual


def _fits(dtype: str, value_range: tuple[float, float]) -> bool:
    info = np.iinfo(dtype)
    return info.min <= value_range[0] and value_range[1] <= info.max


def group_by_study(series: list[SeriesInfo]) -> dict[str, list[SeriesInfo]]:
    """Series grouped by StudyInstanceUID, keeping order."""
    studies: dict[str, list[SeriesInfo]] = defaultdict(list)
    for info in series:
        studies[info.study_uid].append(info)
    return dict(studies)
