"""DICOM SEG export of a label map (highdicom), for series that came from DICOM.

The SEG references the source slices it was drawn on, so a PACS or another viewer
puts it back over the same images. It therefore carries the source study's
patient and study attributes, as the DICOM standard requires; it is meant to go
back to the clinical archive, unlike the anonymous nnU-Net export.

Each label value becomes one segment (numbered 1..N in value order, named and
coloured from the label table). Label maps made by a model and corrected by hand
are ``SEMIAUTOMATIC`` with the model as algorithm; hand-made ones ``MANUAL``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from medviewer import __version__
from medviewer.core.errors import MedviewerError, UnsupportedFormatError
from medviewer.core.labels import LabelMap
from medviewer.io.atomic import atomic_path

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
    with atomic_path(target) as tmp:
        segmentation.save_as(tmp)
    return target
