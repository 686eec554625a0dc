"""The local study database: import DICOM files, search, open, remove, make thumbnails.

The use cases behind File > Import into database..., the database panel and
``medviewer db``; Qt-free so the GUI, the CLI, tests and PACS retrieves (which import
what arrives) call the same code. The index itself is :mod:`medviewer.io.study_store`.

Importing copies files into the database's own storage (``copy=True``) or indexes them
where they are; an instance whose SOP Instance UID is already indexed is skipped. Work
is done in batches, each one transaction: a cancelled import keeps the batches already
committed (each complete: rows and files agree) and removes the files copied for the
batch in progress; ``atomic=True`` makes the whole import one transaction instead, so a
cancel or an error leaves the database exactly as it was.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Iterable, Sequence

from medviewer.core import paths
from medviewer.core.errors import NoImageSeriesError, OperationCancelled, PathNotFoundError
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback
from medviewer.io import SeriesList
from medviewer.io.atomic import as_write_error, atomic_path
from medviewer.io.dicom_headers import SkippedFile, read_frame_records
from medviewer.io.dicom_series import build_series
from medviewer.io.study_headers import IndexedInstance, read_index_header
from medviewer.io.study_store import (
    THUMBNAIL_FOLDER,
    Removal,
    StudyDatabaseError,
    StudyQuery,
    StudyRecord,
    StudyStore,
)

__all__ = [
    "ImportCancelled",
    "ImportReport",
    "RemovalReport",
    "StudyDatabaseError",
    "StudyQuery",
    "StudyRecord",
    "database_folder",
    "import_files",
    "list_studies",
    "make_thumbnails",
    "open_store",
    "remove",
    "study_series",
    "thumbnail_path",
]

#: Files read and committed per transaction (a cancel loses at most this much work).
BATCH_SIZE = 256
THUMBNAIL_SIZE = 128


def database_folder(folder: str | os.PathLike[str] | None = None) -> Path:
    """``folder``, or the user's study database folder (``medviewer.core.paths.database_dir``)."""
    return Path(folder) if folder is not None else paths.database_dir()


def open_store(folder: str | os.PathLike[str] | None = None) -> StudyStore:
    """A connection to the study database (created and migrated when needed); close it after use."""
    return StudyStore(database_folder(folder))


# ---------------------------------------------------------------------------- import
@dataclass
class ImportReport:
    """What an import did (also what ``medviewer db import`` prints)."""

    database: str
    copy: bool
    #: files looked at
    files: int = 0
    #: instances added to the index
    imported: int = 0
    #: instances skipped because their SOP Instance UID was already indexed (or seen earlier in this import)
    duplicates: int = 0
    #: files that are not DICOM or cannot be indexed, with the reason
    skipped: list[SkippedFile] = field(default_factory=list)
    #: studies and series that received new instances
    study_uids: list[str] = field(default_factory=list)
    series_uids: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cancelled: bool = False

    @property
    def files_per_second(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        mode = "copied into the database" if self.copy else "indexed in place"
        studies, series = len(self.study_uids), len(self.series_uids)
        text = (f"{self.imported} new instance{'s' if self.imported != 1 else ''} {mode} "
                f"({studies} stud{'ies' if studies != 1 else 'y'}, {series} series); "
                f"{self.duplicates} duplicate{'s' if self.duplicates != 1 else ''} skipped, "
                f"{len(self.skipped)} file{'s' if len(self.skipped) != 1 else ''} not indexed; "
                f"{self.files} files in {self.seconds:.1f} s ({self.files_per_second:.0f} files/s)")
        return ("cancelled: " + text) if self.cancelled else text

    def to_dict(self) -> dict:
        return {
            "database": self.database, "copy": self.copy, "files": self.files, "imported": self.imported,
            "duplicates": self.duplicates, "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "studies": list(self.study_uids), "series": list(self.series_uids), "seconds": self.seconds,
            "cancelled": self.cancelled,
        }


class ImportCancelled(OperationCancelled):
    """The user cancelled an import; ``report`` says what was kept (nothing with ``atomic=True``)."""

    def __init__(self, report: ImportReport) -> None:
        kept = "nothing was kept" if report.imported == 0 else f"{report.imported} instances imported before are kept"
        super().__init__(f"import cancelled after {report.files} files; {kept}")
        self.report = report


def _input_files(paths_or_folder: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                 cancel: CancelToken | None) -> list[str]:
    from medviewer.io.reader import list_files

    items = [paths_or_folder] if isinstance(paths_or_folder, (str, os.PathLike)) else list(paths_or_folder)
    files: list[str] = []
    for item in items:
        item = os.fspath(item)
        if os.path.isdir(item):
            files.extend(list_files(item, cancel))
        elif os.path.isfile(item):
            files.append(item)
        else:
            raise PathNotFoundError("no such file or folder", item)
    return files


def _storage_name(uid: str) -> str:
    """A file or folder name for a UID (UIDs are digits and dots; anything else is replaced)."""
    cleaned = "".join(c if c.isalnum() or c in ".-_" else "_" for c in uid)[:120]
    return cleaned or "unknown"


def _copy_into_storage(store: StudyStore, instance: IndexedInstance) -> Path:
    """Copy an instance's file to ``storage/<study>/<series>/<sop>.dcm`` (temp name, then rename)."""
    target = store.storage / _storage_name(instance.study_uid) / _storage_name(instance.series_uid) / (
        _storage_name(instance.sop_uid) + ".dcm")
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(instance.path, temporary)
        os.replace(temporary, target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise as_write_error(error, target, False, "the files of this batch were not imported") from error
    return target


def _delete_files(files: Iterable[Path], storage: Path) -> list[str]:
    """Delete files of the database's own storage (never anything outside it); problems as messages."""
    problems = []
    storage = storage.resolve()
    folders = set()
    for path in files:
        try:
            resolved = path.resolve()
            if storage not in resolved.parents:
                problems.append(f"{path}: not in the database's storage; left alone")
                continue
            resolved.unlink(missing_ok=True)
            folders.add(resolved.parent)
        except OSError as error:
            problems.append(f"{path}: cannot be deleted ({error.strerror or error})")
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        # the series folder, then the study folder, when they became empty
        for candidate in (folder, folder.parent):
            if candidate != storage and storage in candidate.parents:
                try:
                    candidate.rmdir()
                except OSError:
                    pass
    return problems


def import_files(
    paths_or_folder: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    copy: bool = True,
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
    *,
    database: str | os.PathLike[str] | None = None,
    atomic: bool = False,
) -> ImportReport:
    """Index the DICOM files of a folder (recursively) or of a list of files and folders.

    ``copy=True`` copies each new instance into the database's own storage (removed with
    it); ``copy=False`` indexes the files where they are (left alone on removal).
    Instances whose SOP Instance UID is already indexed are skipped (``duplicates``);
    files that are not DICOM are listed in ``skipped``. Reads headers only.

    Cancelling raises :class:`ImportCancelled` whose ``report`` tells what was kept
    (see the module docstring for ``atomic``). Raises ``PathNotFoundError`` for a missing
    input, ``NoImageSeriesError`` when none of the files is DICOM, and a ``MedviewerError``
    naming the file when the disk is full or the storage cannot be written.
    """
    started = time.perf_counter()
    folder = database_folder(database)
    report = ImportReport(database=os.fspath(folder), copy=copy)
    progress(0.0, "Listing files")
    files = _input_files(paths_or_folder, cancel)
    if not files:
        raise NoImageSeriesError("no files to import", os.fspath(paths_or_folder) if isinstance(paths_or_folder, (str, os.PathLike)) else None)
    studies: dict[str, None] = {}
    series: dict[str, None] = {}
    seen: set[str] = set()
    copied: list[Path] = []  # files copied for work not committed yet
    store = StudyStore(folder)
    try:
        if atomic:
            store.connection.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(files), BATCH_SIZE):
                batch_instances: list[IndexedInstance] = []
                for path in files[start:start + BATCH_SIZE]:
                    if cancel is not None and cancel.cancelled:
                        raise OperationCancelled()
                    outcome = read_index_header(path)
                    report.files += 1
                    if isinstance(outcome, SkippedFile):
                        report.skipped.append(outcome)
                    elif outcome.sop_uid in seen:
                        report.duplicates += 1
                    else:
                        seen.add(outcome.sop_uid)
                        batch_instances.append(outcome)
                    if report.files % 16 == 0:
                        progress(report.files / len(files), f"Indexing {report.files} of {len(files)} files")
                known = store.known_sop_uids([i.sop_uid for i in batch_instances])
                report.duplicates += sum(1 for i in batch_instances if i.sop_uid in known)
                new = [i for i in batch_instances if i.sop_uid not in known]
                if copy:
                    for instance in new:
                        if cancel is not None and cancel.cancelled:
                            raise OperationCancelled()
                        target = _copy_into_storage(store, instance)
                        copied.append(target)
                        instance.path = os.fspath(target)
                if atomic:
                    added = store.add_instances(new, [copy] * len(new))
                else:
                    with store.transaction():
                        added = store.add_instances(new, [copy] * len(new))
                    copied.clear()  # committed: these files belong to the index now
                report.imported += added
                for instance in new:
                    studies.setdefault(instance.study_uid)
                    series.setdefault(instance.series_uid)
            if atomic:
                store.connection.execute("COMMIT")
                copied.clear()
        except BaseException as error:
            if store.connection.in_transaction:
                store.connection.execute("ROLLBACK")
            _delete_files(copied, store.storage)
            if atomic:
                report.imported, studies, series = 0, {}, {}
            report.study_uids, report.series_uids = list(studies), list(series)
            report.seconds = time.perf_counter() - started
            if isinstance(error, OperationCancelled):
                report.cancelled = True
                raise ImportCancelled(report) from None
            raise
    finally:
        store.close()
    report.study_uids, report.series_uids = list(studies), list(series)
    report.seconds = time.perf_counter() - started
    if report.imported == 0 and report.duplicates == 0:
        first = report.skipped[0] if report.skipped else None
        raise NoImageSeriesError(
            f"none of the {report.files} files is a DICOM instance that can be indexed"
            + (f" (the first: {first})" if first else ""),
            os.fspath(paths_or_folder) if isinstance(paths_or_folder, (str, os.PathLike)) else None)
    progress(1.0, report.summary())
    return report


# ---------------------------------------------------------------------------- browsing and opening
def list_studies(query: StudyQuery | None = None, with_series: bool = True,
                 database: str | os.PathLike[str] | None = None) -> list[StudyRecord]:
    """The studies matching ``query`` (all when None), with their series."""
    with open_store(database) as store:
        return store.search(query, with_series=with_series)


def study_series(
    study_uid: str,
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
    database: str | os.PathLike[str] | None = None,
) -> SeriesList:
    """The loadable series of an indexed study (headers of its files read again), like a folder scan.

    Files indexed in place that were moved or deleted since are left out with a note;
    DICOM SEGs and RT structure sets of the study become notes, as in a folder scan, so
    the viewer opens them over the series they belong to.
    """
    with open_store(database) as store:
        if store.study(study_uid) is None:
            raise StudyDatabaseError(f"no study with UID {study_uid} in the study database", store.path)
        files = [os.fspath(f.path) for f in store.instance_files(study_uid)]
    records, notes = [], []
    for number, path in enumerate(files):
        if cancel is not None:
            cancel.raise_if_cancelled()
        if number % 16 == 0:
            progress(number / max(len(files), 1), f"Reading headers ({number} of {len(files)} files)")
        outcome = read_frame_records(path)
        if isinstance(outcome, SkippedFile):
            notes.append(outcome)
        else:
            records.extend(outcome)
    found = build_series(records, notes)
    if not found:
        summary = SeriesList(notes=notes).notes_summary()
        raise NoImageSeriesError(
            f"study {study_uid} has no image series that can be read" + (f" ({summary})" if summary else ""))
    progress(1.0, f"Found {len(found)} series")
    return SeriesList(found, notes, root=f"study {study_uid}")


# ---------------------------------------------------------------------------- removal
@dataclass
class RemovalReport:
    """What ``remove`` did: instances taken out, files deleted from the own storage, files left in place."""

    uid: str
    level: str
    instances: int
    deleted_files: int
    kept_files: int
    problems: list[str]

    def summary(self) -> str:
        text = (f"removed {self.level} {self.uid}: {self.instances} instance{'s' if self.instances != 1 else ''}; "
                f"{self.deleted_files} file{'s' if self.deleted_files != 1 else ''} deleted from the database's storage, "
                f"{self.kept_files} indexed in place left where they are")
        return text + (f"; {len(self.problems)} problem(s): {self.problems[0]}" if self.problems else "")


def remove(uid: str, database: str | os.PathLike[str] | None = None) -> RemovalReport:
    """Take a study or series out of the database; its files in the own storage are deleted, files indexed in place kept."""
    with open_store(database) as store:
        removal: Removal = store.remove(uid)
        problems = _delete_files(removal.owned_files, store.storage)
        for thumbnail in removal.thumbnails:
            thumbnail.unlink(missing_ok=True)
    return RemovalReport(removal.uid, removal.level, removal.instances, len(removal.owned_files) - len(problems),
                         len(removal.kept_files), problems)


# ---------------------------------------------------------------------------- thumbnails
def make_thumbnails(
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
    database: str | os.PathLike[str] | None = None,
    size: int = THUMBNAIL_SIZE,
) -> int:
    """Make the missing series thumbnails (a PNG of the middle instance); returns how many were made.

    A series without a picture (a structured report, an unreadable file) is marked so it
    is not tried again. Runs in the background after an import.
    """
    import SimpleITK as sitk

    from medviewer.services.workspace import series_thumbnail

    made = 0
    with open_store(database) as store:
        pending = store.series_missing_thumbnails()
        for number, record in enumerate(pending):
            if cancel is not None:
                cancel.raise_if_cancelled()
            progress(number / max(len(pending), 1), f"Thumbnail {number + 1} of {len(pending)}")
            files = [os.fspath(f.path) for f in store.instance_files(record.series_uid)]
            grey = series_thumbnail(SimpleNamespace(files=files, source_path=None), size) if files else None
            name = ""
            if grey is not None:
                name = _storage_name(record.series_uid) + ".png"
                store.thumbnails.mkdir(parents=True, exist_ok=True)
                with atomic_path(store.thumbnails / name) as temporary:
                    sitk.WriteImage(sitk.GetImageFromArray(grey), os.fspath(temporary))
                made += 1
            store.set_thumbnail(record.series_uid, name)
    progress(1.0, f"{made} thumbnails made")
    return made


def thumbnail_path(record, database: str | os.PathLike[str] | None = None) -> Path | None:
    """The PNG file of a series record's thumbnail, or None when there is none (yet)."""
    if not record.thumbnail:
        return None
    path = database_folder(database) / THUMBNAIL_FOLDER / record.thumbnail
    return path if path.is_file() else None

