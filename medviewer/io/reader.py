"""Open anything medviewer reads: scan a file or folder into series, then load one.

``scan`` reads headers only (fast, with progress and cancel) and returns one
``SeriesInfo`` per loadable series, carrying the geometry the loaded volume will have.
``load`` reads the pixels of one of them. Problems with single files in a folder never
stop the scan: they are collected as notes on the returned list, and the other series
still load.

Both entry points run with native library output silenced (:mod:`medviewer.io.native_noise`):
ITK, GDCM, libjpeg and libtiff messages would otherwise reach the terminal next to
medviewer's own line; the readers turn what matters into their messages and warnings.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from medviewer.core.errors import (
    CorruptFileError,
    EmptyFolderError,
    MedviewerError,
    NoImageSeriesError,
    NotAnImageError,
    PathNotFoundError,
    UnsupportedFormatError,
)
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback
from medviewer.core.study import SeriesInfo
from medviewer.core.volume import Volume
from medviewer.io.dicom_headers import FrameRecord, SkippedFile, read_frame_records
from medviewer.io.dicom_pixels import load_dicom_series
from medviewer.io.dicom_series import DicomPlan, build_series
from medviewer.io.formats import (
    DATA_FILE_EXTENSIONS,
    IGNORED_EXTENSIONS,
    extension_of,
    sitk_format_of,
    supported_extensions_text,
)
from medviewer.io.file_checks import require_readable
from medviewer.io.image_files import ImageFilePlan, load_image_file, scan_image_file
from medviewer.io.native_noise import quiet_native_stderr


class SeriesSelectionError(MedviewerError):
    """The requested series (index or UID) is not among those found, or none was chosen."""


class SeriesList(list):
    """The series a scan found (a plain ``list[SeriesInfo]``) plus notes about skipped files."""

    def __init__(self, series: list[SeriesInfo] = (), notes: list[SkippedFile] | None = None, root: str = "") -> None:
        super().__init__(series)
        #: Files the scan passed over and why (non-DICOM files, SRs, truncated files...).
        self.notes: list[SkippedFile] = list(notes or [])
        #: The file or folder that was scanned.
        self.root = root

    def notes_summary(self) -> str:
        """One line such as ``"2 non-image DICOM objects, 1 corrupt file skipped"`` ('' if none)."""
        names = {
            "non-image": "non-image DICOM object",
            "not-dicom": "non-image file",
            "corrupt": "unreadable file",
            "duplicate": "duplicate file",
            "unsupported": "unsupported file",
        }
        counts = Counter(note.kind for note in self.notes)
        order = {kind: index for index, kind in enumerate(names)}
        parts = [
            f"{count} {names.get(kind, kind)}{'s' if count != 1 else ''}"
            for kind, count in sorted(counts.items(), key=lambda item: order.get(item[0], len(order)))
        ]
        return (", ".join(parts) + " skipped") if parts else ""


# ---------------------------------------------------------------------------- scanning
def scan(
    path: str | os.PathLike[str], progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None
) -> SeriesList:
    """Series in a file or (recursively) a folder, sorted by study and series number.

    Raises a ``MedviewerError`` naming the path when nothing can be opened: a missing
    path, an empty folder, a folder without image series, an unsupported, corrupt or
    non-image file.
    """
    path = os.fspath(path)
    with quiet_native_stderr():
        if os.path.isdir(path):
            return scan_folder(path, progress, cancel)
        if not os.path.exists(path):
            raise PathNotFoundError("no such file or folder", path)
        return scan_file(path, progress)


def scan_file(path: str | os.PathLike[str], progress: ProgressCallback = NO_PROGRESS) -> SeriesList:
    """Series in one file (a DICOM file or a NIfTI/NRRD/MHA/PNG... image)."""
    path = os.fspath(path)
    progress(0.0, f"Reading {Path(path).name}")
    extension = extension_of(path)
    if os.path.isfile(path):
        require_readable(path)
    if sitk_format_of(path) is not None:
        result = SeriesList([scan_image_file(path)], root=path)
    elif extension in IGNORED_EXTENSIONS or extension in DATA_FILE_EXTENSIONS:
        hint = " (open its .mhd/.nhdr header instead)" if extension in DATA_FILE_EXTENSIONS else ""
        raise UnsupportedFormatError(
            f"unsupported file type '{extension}'{hint}; medviewer reads {supported_extensions_text()}", path
        )
    else:
        outcome = read_frame_records(path)
        if isinstance(outcome, SkippedFile):
            raise _error_for(outcome)
        notes: list[SkippedFile] = []
        result = SeriesList(build_series(outcome, notes), notes, root=path)
    progress(1.0, "")
    return result


def _error_for(skipped: SkippedFile) -> MedviewerError:
    if skipped.kind == "not-dicom":
        return UnsupportedFormatError(
            f"not a supported image file; medviewer reads {supported_extensions_text()}", skipped.path
        )
    if skipped.kind == "non-image":
        return NotAnImageError(skipped.reason, skipped.path)
    return CorruptFileError(skipped.reason, skipped.path)


def list_files(folder: str | os.PathLike[str], cancel: CancelToken | None = None) -> list[str]:
    """Every non-hidden file below ``folder``, in a stable (sorted) order."""
    files = []

    def unreadable(error: OSError) -> None:
        # os.walk would skip a folder it may not list, and the scan would call it empty.
        if isinstance(error, PermissionError):
            raise MedviewerError("permission denied: this user may not list the folder (check its permissions)",
                                 error.filename or folder) from None

    for root, dirs, names in os.walk(folder, onerror=unreadable):
        if cancel is not None:
            cancel.raise_if_cancelled()
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(os.path.join(root, name) for name in sorted(names) if not name.startswith("."))
    return files


def scan_folder(
    folder: str | os.PathLike[str], progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None
) -> SeriesList:
    """Series in every file below ``folder``; unreadable or non-image files become notes."""
    folder = os.fspath(folder)
    progress(0.0, "Listing files")
    files = list_files(folder, cancel)
    if not files:
        raise EmptyFolderError("the folder is empty", folder)
    records: list[FrameRecord] = []
    image_series: list[SeriesInfo] = []
    notes: list[SkippedFile] = []
    report_every = max(1, len(files) // 200)
    for index, path in enumerate(files):
        if cancel is not None:
            cancel.raise_if_cancelled()
        if index % report_every == 0:
            progress(index / len(files), f"Reading headers ({index} of {len(files)} files)")
        extension = extension_of(path)
        if sitk_format_of(path) is not None:
            try:
                image_series.append(scan_image_file(path))
            except MedviewerError as error:
                notes.append(SkippedFile(path, error.message, "corrupt"))
            continue
        if extension in DATA_FILE_EXTENSIONS:
            continue  # the data half of an .mhd/.nhdr pair, read through its header
        if extension in IGNORED_EXTENSIONS:
            notes.append(SkippedFile(path, "not an image file", "not-dicom"))
            continue
        outcome = read_frame_records(path)
        if isinstance(outcome, SkippedFile):
            notes.append(outcome)
        else:
            records.extend(outcome)
    series = build_series(records, notes) + image_series
    progress(1.0, f"Found {len(series)} series in {len(files)} files")
    if not series:
        summary = SeriesList(notes=notes).notes_summary()
        raise NoImageSeriesError(
            f"no image series found in {len(files)} file{'s' if len(files) != 1 else ''}"
            + (f" ({summary})" if summary else ""),
            folder,
        )
    _attach_file_problems(series, notes)
    return SeriesList(series, notes, root=folder)


def _attach_file_problems(series: list[SeriesInfo], notes: list[SkippedFile]) -> None:
    """Tell a series about its own files that were left out (e.g. a truncated slice)."""
    for info in series:
        if not isinstance(info.plan, DicomPlan):
            continue
        mine = [n for n in notes if n.kind == "corrupt" and n.series_uid and n.series_uid == info.plan.metadata.series_uid]
        if mine:
            message = f"{len(mine)} file{'s' if len(mine) != 1 else ''} of this series left out: {mine[0]}"
            info.warnings.append(message)
            info.plan.metadata.warnings.append(message)


# ---------------------------------------------------------------------------- loading
def load(series: SeriesInfo, progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None) -> Volume:
    """Read the pixels of a scanned series into a Volume with its metadata."""
    with quiet_native_stderr():
        if isinstance(series.plan, DicomPlan):
            return load_dicom_series(series, progress, cancel)
        if isinstance(series.plan, ImageFilePlan):
            return load_image_file(series, progress, cancel)
    raise MedviewerError(f"series '{series.description or series.uid}' was not produced by medviewer.io.scan")


def select_series(series: list[SeriesInfo], selector: int | str | None = None, path: str | None = None) -> SeriesInfo:
    """Pick one series by position (0-based, as ``medviewer info`` numbers them) or by UID.

    With no selector, a single series is returned; several are an error listing them.
    A DICOM UID that was split into parts (``UID#1``, ``UID#2``...) selects its only part
    or asks for one.
    """
    if not series:
        raise SeriesSelectionError("no series to choose from", path)
    if selector is None or selector == "":
        if len(series) == 1:
            return series[0]
        raise SeriesSelectionError(
            f"holds {len(series)} series; choose one by index (0..{len(series) - 1}) or UID: " + _listing(series), path
        )
    text = str(selector).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if 0 <= index < len(series):
            return series[index]
        raise SeriesSelectionError(f"series index {index} is out of range (0..{len(series) - 1})", path)
    exact = [s for s in series if s.uid == text]
    if exact:
        return exact[0]
    parts = [s for s in series if s.uid.startswith(text + "#")]
    if len(parts) == 1:
        return parts[0]
    if parts:
        raise SeriesSelectionError(f"series {text} was split into {len(parts)} parts; choose one: " + _listing(parts), path)
    raise SeriesSelectionError(f"no series with UID {text}; found: " + _listing(series), path)


def _listing(series: list[SeriesInfo]) -> str:
    shown = [f"[{i}] {s.uid} '{s.description}'" for i, s in enumerate(series[:8])]
    return "; ".join(shown) + ("; ..." if len(series) > 8 else "")


def read_volume(path: str | os.PathLike[str], series: int | str | None = None) -> Volume:
    """Convenience: scan ``path`` and load one series (see :func:`select_series`)."""
    found = scan(path)
    return load(select_series(found, series, os.fspath(path)))
