"""Open a study: the use case behind File > Open, ``medviewer PATH``, ``info`` and ``convert``.

Thin wrappers over ``medviewer.io`` with the job signature ``fn(..., progress, cancel)``
so the GUI's background loader, the CLI and tests call the same code.
"""

from __future__ import annotations

import os

from medviewer.core.errors import MedviewerError
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback, scaled_progress
from medviewer.core.labels import LabelMap
from medviewer.core.study import SeriesInfo, Study
from medviewer.core.volume import Volume
from medviewer.io import SeriesList, load, scan, select_series


def scan_path(
    path: str | os.PathLike[str], progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None
) -> SeriesList:
    """Series found in a file or folder (headers only); ``.notes`` lists skipped files."""
    return scan(path, progress, cancel)


def load_series(
    series: SeriesInfo, progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None
) -> Volume:
    """Pixels of one scanned series as a Volume (with warnings in ``volume.metadata.warnings``)."""
    return load(series, progress, cancel)


def default_series(series: list[SeriesInfo]) -> SeriesInfo:
    """The series to show first: the largest 3D volume, else the largest image."""

    def weight(info: SeriesInfo) -> tuple[int, int]:
        size = info.geometry.size if info.geometry else (0, 0, 0)
        return (1 if size[2] > 1 else 0, size[0] * size[1] * size[2])

    return max(series, key=weight)


def open_path(
    path: str | os.PathLike[str],
    series: int | str | None = None,
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
) -> tuple[Volume, SeriesInfo, SeriesList]:
    """Scan ``path`` and load one series: the one selected (index or UID) or :func:`default_series`."""
    found = scan_path(path, scaled_progress(progress, 0.0, 0.3), cancel)
    chosen = select_series(found, series, os.fspath(path)) if series is not None else default_series(found)
    volume = load_series(chosen, scaled_progress(progress, 0.3, 1.0), cancel)
    return volume, chosen, found


def group_studies(series: list[SeriesInfo]) -> list[Study]:
    """Series grouped into studies (by StudyInstanceUID), for the study browser."""
    studies: dict[str, Study] = {}
    for info in series:
        study = studies.setdefault(info.study_uid, Study(info.study_uid, info.study_description))
        study.series.append(info)
    return list(studies.values())


def attached_segmentations(series_list: SeriesList, volume: Volume) -> list[str]:
    """DICOM SEGs and RT structure sets the scan passed over that were drawn on ``volume``'s series.

    3D Slicer loads those with the series too.
    """
    from medviewer.io import dicom_rtstruct, dicom_seg  # highdicom only when needed
    from medviewer.io.dicom_headers import segmentation_kind

    uid = volume.metadata.series_uid
    if not uid:
        return []
    references = {"SEG": dicom_seg.referenced_series_uids, "RTSTRUCT": dicom_rtstruct.referenced_series_uids}
    found = []
    for note in getattr(series_list, "notes", []):
        kind = segmentation_kind(note.path) if note.kind == "non-image" else None
        if kind is not None and uid in references[kind](note.path):
            found.append(note.path)
    return found


def load_segmentations(
    paths: list[str], volume: Volume, progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None
) -> tuple[list[LabelMap], list[str]]:
    """Each label file in ``paths`` as label layers over ``volume``; problems as messages (naming the file).

    Label maps (NIfTI, NRRD, MetaImage), DICOM SEGs and RT structure sets: a folder's
    attached segmentations and File > Open label map both read through here, on a worker thread.
    """
    from medviewer.io import read_label_layers

    label_maps, problems = [], []
    for number, path in enumerate(paths):
        if cancel is not None:
            cancel.raise_if_cancelled()
        progress(number / max(len(paths), 1), f"Reading segmentation {number + 1} of {len(paths)}")
        try:
            label_maps.extend(read_label_layers(path, volume.geometry))
        except MedviewerError as error:
            problems.append(str(error))
    progress(1.0, "Segmentations read")
    return label_maps, problems


def dicom_source_files(document) -> list[str]:
    """The DICOM files the open study's image was read from ([] when it did not come from DICOM).

    What a DICOM SEG export references (File > Export DICOM SEG..., Send to PACS).
    """
    from medviewer.io.dicom_seg import series_files  # highdicom: only when exporting

    series = document.series
    metadata = document.volume.metadata
    sources = list(series.files) if series is not None and series.files else []
    if not sources and metadata.source_format.upper() == "DICOM" and metadata.source_path:
        sources = series_files([metadata.source_path], metadata.series_uid)
    return sources
