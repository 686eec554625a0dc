"""DICOM SEG export of a label map, and import of a SEG over its image (highdicom).

The SEG references the source slices it was drawn on, so a PACS or another viewer
puts it back over the same images. It therefore carries the source study's
patient and study attributes, as the DICOM standard requires; it is meant to go
back to the clinical archive, unlike the anonymous nnU-Net export.

Each label value becomes one segment (numbered 1..N in value order, named and
coloured from the label table). Label maps made by a model and corrected by hand
are ``SEMIAUTOMATIC`` with the model as algorithm; hand-made ones ``MANUAL``.

Import (:func:`read_dicom_seg`) places the SEG's frames on the open image's grid by
their positions (permuting, flipping and padding, never interpolating), so a SEG that
covers a few slices, or one written by another tool, opens as a label map whose values
are the segment numbers, named and coloured from the segment descriptions.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import Sequence

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from medviewer import __version__
from medviewer.core.errors import CorruptFileError, GeometryMismatchError, MedviewerError, UnsupportedFormatError
from medviewer.core.geometry import Geometry
from medviewer.core.labels import LabelMap, LabelTable
from medviewer.io.atomic import atomic_write_bytes
from medviewer.io.dicom_headers import frame_group, segmentation_kind
from medviewer.io.label_layers import cropped, pack_layers

#: Slice positions may differ from the label map's grid by this much (mm).
POSITION_TOLERANCE_MM = 0.01


def series_files(paths: Sequence[str | os.PathLike[str]], series_uid: str = "") -> list[Path]:
    """DICOM files of one series: ``paths`` may be files or folders (searched recursively)."""
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    if not series_uid:
        return files
    chosen = []
    for path in files:
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
        except (pydicom.errors.InvalidDicomError, OSError):
            continue
        if getattr(header, "SeriesInstanceUID", None) == series_uid:
            chosen.append(path)
    return chosen


def _read_sources(files: Sequence[str | os.PathLike[str]]) -> list[pydicom.Dataset]:
    datasets = []
    for path in files:
        try:
            datasets.append(pydicom.dcmread(path, stop_before_pixels=True))
        except (pydicom.errors.InvalidDicomError, OSError) as error:
            raise UnsupportedFormatError(f"not a readable DICOM file ({error})", path) from None
    if not datasets:
        raise MedviewerError("DICOM SEG export needs the series' DICOM files, and none were found")
    return datasets


def _slice_order(label_map: LabelMap, sources: list[pydicom.Dataset]) -> list[tuple[int, pydicom.Dataset]]:
    """Pair each source slice with the label map slice k it lies on; refuse if the grids differ."""
    geometry = label_map.geometry
    direction = geometry.direction_matrix
    pairs = []
    for ds in sources:
        if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
            raise UnsupportedFormatError("DICOM SEG export supports single-frame source slices only", ds.filename)
        if (int(ds.Rows), int(ds.Columns)) != (geometry.size[1], geometry.size[0]):
            raise MedviewerError(
                f"the DICOM slices are {ds.Columns} x {ds.Rows} but the label map is {geometry.size[0]} x {geometry.size[1]}",
                ds.filename,
            )
        orientation = np.asarray(ds.ImageOrientationPatient, float)
        if not (np.allclose(orientation[:3], direction[:, 0], atol=1e-4) and np.allclose(orientation[3:], direction[:, 1], atol=1e-4)):
            raise MedviewerError(
                "the label map's grid is not the DICOM slices' grid (the series was resampled on loading); "
                "save it as NIfTI instead",
                ds.filename,
            )
        index = geometry.world_to_index(np.asarray(ds.ImagePositionPatient, float))
        k = int(round(index[2]))
        offset_mm = np.abs((index - [0, 0, k]) * np.asarray(geometry.spacing))
        if not 0 <= k < geometry.size[2] or offset_mm.max() > POSITION_TOLERANCE_MM:
            raise MedviewerError(
                "a DICOM slice does not lie on the label map's grid (the series was resampled on loading); "
                "save it as NIfTI instead",
                ds.filename,
            )
        pairs.append((k, ds))
    pairs.sort(key=lambda pair: pair[0])
    slices = [k for k, _ in pairs]
    if len(set(slices)) != len(slices):
        raise MedviewerError("two DICOM slices lie at the same position; pick one series")
    return pairs


def _segment_description(number: int, value: int, label_map: LabelMap, algorithm: tuple[str, str] | None):
    info = label_map.table[value] if value in label_map.table else None
    name = info.name if info else f"Label {value}"
    color = info.color if info else (255, 255, 0)
    kwargs = {}
    if algorithm is not None:
        kwargs["algorithm_identification"] = hd.AlgorithmIdentificationSequence(
            name=algorithm[0], version=algorithm[1] or "unknown", family=codes.cid7162.ArtificialIntelligence
        )
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=name[:64],
        segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC if algorithm else hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        display_color=hd.color.CIELabColor.from_rgb(*[int(c) for c in color]),
        **kwargs,
    )


def export_dicom_seg(
    label_map: LabelMap,
    source_files: Sequence[str | os.PathLike[str]],
    path: str | os.PathLike[str],
    algorithm: tuple[str, str] | None = None,
    series_description: str = "medviewer segmentation",
    series_number: int = 9000,
) -> Path:
    """Write ``label_map`` as a DICOM SEG referencing the slices in ``source_files``.

    Parameters
    ----------
    label_map:
        Labels on the series' own grid (as loaded from DICOM without resampling).
    source_files:
        The series' DICOM files (e.g. ``SeriesInfo.files``).
    path:
        Output file (written atomically).
    algorithm:
        ``(model name, version)`` when the labels started as a model's proposal.

    Returns
    -------
    Path
        The written file.
    """
    values = label_map.present_values()
    if not values:
        raise MedviewerError("the label map is empty: there is nothing to export")
    sources = _read_sources(source_files)
    pairs = _slice_order(label_map, sources)
    ordered = [ds for _, ds in pairs]
    lookup = np.zeros(max(values) + 1, np.uint16 if len(values) > 255 else np.uint8)
    for number, value in enumerate(values, start=1):
        lookup[value] = number
    frames = lookup[label_map.array[[k for k, _ in pairs]]]
    descriptions = [_segment_description(n, v, label_map, algorithm) for n, v in enumerate(values, start=1)]
    try:
        segmentation = hd.seg.Segmentation(
            source_images=ordered,
            pixel_array=frames,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=hd.UID(),
            series_number=int(series_number),
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="medviewer",
            manufacturer_model_name="medviewer",
            software_versions=__version__,
            device_serial_number="0",
            series_description=series_description[:64],
            content_label="MEDVIEWER",
            omit_empty_frames=True,
        )
    except (ValueError, TypeError, AttributeError) as error:
        raise MedviewerError(f"DICOM SEG export failed: {error}") from None
    target = Path(path)
    # serialise in memory, then write through a size-checked atomic write: a full disk raises
    # DiskFullError and keeps the previous file
    buffer = io.BytesIO()
    segmentation.save_as(buffer)
    atomic_write_bytes(target, buffer.getvalue())
    return target


def is_dicom_seg(path: str | os.PathLike[str]) -> bool:
    """True for a DICOM segmentation (reads the header only; never raises)."""
    return segmentation_kind(path) == "SEG"


def referenced_series_uids(path: str | os.PathLike[str]) -> set[str]:
    """SeriesInstanceUIDs a DICOM SEG says it was drawn on (header only; empty when it names none)."""
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["ReferencedSeriesSequence"])
    except (pydicom.errors.InvalidDicomError, OSError, ValueError, struct.error, EOFError):
        return set()
    return {str(item.SeriesInstanceUID) for item in header.get("ReferencedSeriesSequence", []) if "SeriesInstanceUID" in item}


def _segment_table(seg: hd.seg.Segmentation, numbers: list[int]) -> LabelTable:
    """Label value = segment number, named by SegmentLabel, coloured by RecommendedDisplayCIELabValue."""
    table = LabelTable()
    for number in numbers:
        description = seg.get_segment_description(number)
        color = None
        lab = getattr(description, "RecommendedDisplayCIELabValue", None)
        if lab is not None:
            try:
                color = tuple(int(c) for c in hd.color.CIELabColor.from_dicom_value(lab).to_rgb(clip=True))
            except (ValueError, TypeError):
                color = None  # an odd colour is not worth refusing the segment for
        table.add(number, str(description.segment_label or f"Segment {number}"), color)
    return table


def _frame_attribute(seg: pydicom.Dataset, index: int, group: str, keyword: str):
    """``keyword`` of frame ``index``'s functional group ``group`` (its own, else the shared one), or None."""
    per_frame = seg.get("PerFrameFunctionalGroupsSequence") or []
    shared = seg.get("SharedFunctionalGroupsSequence")
    item = frame_group(per_frame[index] if index < len(per_frame) else None, shared[0] if shared else None, group)
    return item.get(keyword) if item is not None else None


def _frame_placement(seg: pydicom.Dataset, index: int, geometry: Geometry, path: str) -> tuple[tuple[slice, ...], bool]:
    """Where frame ``index`` lies in the image array: (z, y, x) slices of a 2D view, and whether to transpose the frame.

    The frame's rows and columns must run along two of the image's index axes (either
    direction) with its pixels on voxel centres of one slice, all inside the image.
    """
    position = _frame_attribute(seg, index, "PlanePositionSequence", "ImagePositionPatient")
    orientation = _frame_attribute(seg, index, "PlaneOrientationSequence", "ImageOrientationPatient")
    spacing = _frame_attribute(seg, index, "PixelMeasuresSequence", "PixelSpacing")
    if position is None or orientation is None or spacing is None:
        raise CorruptFileError(f"frame {index + 1} of the DICOM SEG has no plane position, orientation or pixel spacing", path)
    position, orientation = np.asarray(position, float), np.asarray(orientation, float)
    row_spacing, column_spacing = (float(v) for v in spacing)
    first = geometry.world_to_index(position)
    along_row = geometry.world_to_index(position + orientation[:3] * column_spacing) - first  # next column
    along_column = geometry.world_to_index(position + orientation[3:] * row_spacing) - first  # next row
    column_axis, row_axis = int(np.argmax(np.abs(along_row))), int(np.argmax(np.abs(along_column)))
    start = np.rint(first).astype(int)
    off_grid = (
        column_axis == row_axis
        or not np.allclose(np.abs(along_row), np.eye(3)[column_axis], atol=1e-3)
        or not np.allclose(np.abs(along_column), np.eye(3)[row_axis], atol=1e-3)
        or np.abs((first - start) * np.asarray(geometry.spacing)).max() > POSITION_TOLERANCE_MM
    )
    if off_grid:
        raise GeometryMismatchError(
            f"frame {index + 1} of the DICOM SEG does not lie on the image's voxel grid (was it drawn on another series?)", path
        )
    ranges: list[slice | int] = [int(v) for v in start]
    for axis, step, count in ((column_axis, along_row[column_axis], int(seg.Columns)),
                              (row_axis, along_column[row_axis], int(seg.Rows))):
        last = start[axis] + (count - 1) * (1 if step > 0 else -1)
        if min(start[axis], last) < 0 or max(start[axis], last) >= geometry.size[axis]:
            raise GeometryMismatchError(f"frame {index + 1} of the DICOM SEG reaches outside the image", path)
        ranges[axis] = slice(start[axis], last + 1, 1) if step > 0 else slice(start[axis], last - 1 if last > 0 else None, -1)
    fixed = 3 - column_axis - row_axis
    if not 0 <= start[fixed] < geometry.size[fixed]:
        raise GeometryMismatchError(f"frame {index + 1} of the DICOM SEG lies outside the image", path)
    # array axes are (z, y, x) = index axes reversed; the view's first axis is the higher index axis
    return tuple(ranges[::-1]), column_axis > row_axis


def read_dicom_seg(path: str | os.PathLike[str], image_geometry: Geometry, name: str | None = None) -> list[LabelMap]:
    """A DICOM SEG's segments on ``image_geometry``, as few label maps as overlaps allow (usually one).

    Every frame is placed by its own plane position and orientation, so sparse frames,
    any frame order and flipped or transposed planes work; nothing is interpolated. A
    FRACTIONAL segment covers the voxels of at least 50 %. Segments that overlap go to
    separate layers (``medviewer.io.label_layers``), so no voxel is lost. Raises
    ``GeometryMismatchError`` when the frames do not lie on the image's voxel grid and
    ``CorruptFileError`` for an unreadable SEG.
    """
    path = os.fspath(path)
    try:
        seg = hd.seg.segread(path)
        numbers = [int(n) for n in seg.segment_numbers]
        kind = seg.segmentation_type
    except (pydicom.errors.InvalidDicomError, OSError, ValueError, AttributeError, KeyError, TypeError, IndexError,
            struct.error, EOFError) as error:  # truncated or damaged files fail in many places
        raise CorruptFileError(f"not a readable DICOM SEG ({error})", path) from None
    if not numbers:
        raise CorruptFileError("the DICOM SEG describes no segments", path)
    table = _segment_table(seg, numbers)
    threshold = max(float(getattr(seg, "MaximumFractionalValue", 1) or 1) / 2.0, 1e-6)
    frames_of: dict[int, list[int]] = {}
    for index in range(int(getattr(seg, "NumberOfFrames", 1) or 1)):
        number = _frame_attribute(seg, index, "SegmentIdentificationSequence", "ReferencedSegmentNumber")
        frames_of.setdefault(int(number) if number is not None else 0, []).append(index)  # 0: a LABELMAP SEG
    structures = []
    for number in sorted(frames_of):
        # BINARY/FRACTIONAL: frames of one segment -> one boolean volume at a time;
        # LABELMAP (number 0): stored values are segment numbers and cannot overlap
        volume = np.zeros(image_geometry.shape, bool if number else np.uint16)
        for index in frames_of[number]:
            try:
                stored = seg.get_stored_frame(index, as_index=True)
            except (ValueError, KeyError, AttributeError, IndexError, TypeError, struct.error, EOFError) as error:
                raise CorruptFileError(f"cannot decode frame {index + 1} of the DICOM SEG ({error})", path) from None
            if kind == hd.seg.SegmentationTypeValues.FRACTIONAL:
                pixels = stored >= threshold
            elif kind == hd.seg.SegmentationTypeValues.BINARY:
                pixels = stored > 0
            else:
                pixels = stored
            if not pixels.any():
                continue
            where, transpose = _frame_placement(seg, index, image_geometry, path)
            pixels = pixels.T if transpose else pixels
            if number:
                volume[where] |= pixels
            else:
                view = volume[where]
                view[pixels > 0] = pixels[pixels > 0]
        for value in ([number] if number else [int(v) for v in np.unique(volume) if v]):
            info = table[value] if value in table else None
            voxels = volume if number else volume == value
            structure = cropped(info.name if info else f"Segment {value}", info.color if info else None, voxels, value)
            if structure is not None:
                structures.append(structure)
    if not structures:
        raise MedviewerError("the DICOM SEG labels no voxel of this image", path)
    title = name or str(getattr(seg, "SeriesDescription", "") or Path(path).stem)
    return pack_layers(structures, image_geometry, title, "DICOM SEG")
