"""One entry point per PACS use case, whatever protocol the node speaks (DIMSE or DICOMweb).

Each long operation is a medviewer job body: ``fn(..., progress, cancel)``. The GUI runs
them on a worker thread, the CLI directly, tests with ``NO_PROGRESS``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from medviewer.core.errors import MedviewerError
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback, scaled_progress
from medviewer.core.labels import LabelMap
from medviewer.io import SeriesList
from medviewer.io.dicom_headers import SkippedFile, read_frame_records
from medviewer.io.dicom_series import build_series
from medviewer.services import study_db
from medviewer.services.pacs import dicomweb, dimse
from medviewer.services.pacs.dimse import RetrieveResult, StoreResult
from medviewer.services.pacs.errors import PacsError
from medviewer.services.pacs.nodes import PacsConfig, PacsNode
from medviewer.services.pacs.query import Query


def verify(node: PacsNode, config: PacsConfig) -> None:
    """C-ECHO a DIMSE node, or run a one-result QIDO search on a DICOMweb node."""
    if node.is_dicomweb:
        client = dicomweb.client_for(node)
        with dicomweb._http_errors(node, "QIDO-RS check"):
            client.search_for_studies(limit=1)
        return
    dimse.echo(node, config.ae_title)


def query(node: PacsNode, config: PacsConfig, search: Query, progress: ProgressCallback = NO_PROGRESS,
          cancel: CancelToken | None = None) -> list[dict]:
    """C-FIND or QIDO-RS; dicts keyed by DICOM keyword."""
    if node.is_dicomweb:
        return dicomweb.search(node, search)
    return dimse.find(node, config.ae_title, search, progress, cancel)


SeriesCallback = Callable[[str, list[Path]], None]


def retrieve(
    node: PacsNode,
    config: PacsConfig,
    destination: str | os.PathLike[str],
    study_uid: str = "",
    series_uid: str = "",
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
    on_series: SeriesCallback | None = None,
    *,
    index_in_database: bool = True,
    database: str | os.PathLike[str] | None = None,
) -> RetrieveResult:
    """Bring a study or series into ``destination``: C-GET (default), C-MOVE (``node.use_move``) or WADO-RS.

    A study comes series by series (progress per series); ``on_series(series_uid, files)``
    is called (on the worker thread) as each one completes, so a viewer can open the first
    while the rest arrive. A failure or cancel removes every file this retrieve wrote.
    With ``index_in_database`` the files are then indexed in place in the local study
    database (``database`` or the user's), reported in ``result.database_report``; an
    indexing problem leaves the files and is said in ``result.database_error``.
    """
    cancel = cancel or CancelToken()
    if series_uid:
        result = _retrieve_series(node, config, destination, study_uid, series_uid, progress, cancel)
        if on_series is not None:
            on_series(series_uid, list(result.files))
    else:
        result = _retrieve_study(node, config, destination, study_uid, progress, cancel, on_series)
    if index_in_database and result.files:
        # Retrieved studies join the local study database (indexed where they were written, as
        # the user chose that folder), so the study browser lists them next to imported ones.
        try:
            # Not cancellable: indexing is quick (thousands of files/s) and a cancel must not leave
            # retrieved files without their index. Atomic: an indexing failure (full disk, locked
            # database) leaves no half-indexed study behind.
            result.database_report = study_db.import_files(result.files, copy=False, database=database, atomic=True)
        except MedviewerError as error:  # the files are here and open; only the index failed: say so
            result.database_error = str(error)
    return result


def _retrieve_series(node, config, destination, study_uid, series_uid, progress, cancel) -> RetrieveResult:
    if node.is_dicomweb:
        if not study_uid:
            found = dicomweb.search(node, Query(level="series", series_uid=series_uid))
            if not found:
                raise PacsError(f"{node.describe()}: no series with UID {series_uid}")
            study_uid = str(found[0]["StudyInstanceUID"])
        return dicomweb.retrieve_series(node, destination, study_uid, series_uid, progress, cancel)
    if node.use_move:
        return dimse.move(node, config.ae_title, destination, config.listener_port, study_uid, series_uid,
                          progress, cancel, config.listener_address)
    return dimse.get(node, config.ae_title, destination, study_uid, series_uid, progress, cancel)


def _retrieve_study(node, config, destination, study_uid, progress, cancel, on_series) -> RetrieveResult:
    if not study_uid:
        raise PacsError(f"{node.describe()}: a retrieve needs a study or series instance UID")
    series = query(node, config, Query(level="series", study_uid=study_uid))
    if not series:
        raise PacsError(f"{node.describe()}: no series in study {study_uid}")
    series.sort(key=lambda row: (row.get("SeriesNumber") is None, row.get("SeriesNumber") or 0))
    combined = RetrieveResult(Path(destination))
    try:
        for index, row in enumerate(series):
            uid = str(row["SeriesInstanceUID"])
            label = f"series {index + 1} of {len(series)} ({row.get('Modality') or '?'} {row.get('SeriesDescription') or uid})"
            span = scaled_progress(progress, index / len(series), (index + 1) / len(series))
            part = _retrieve_series(node, config, destination, study_uid, uid,
                                    lambda fraction, message="", span=span, label=label: span(fraction, f"{label}: {message}"),
                                    cancel)
            combined.files.extend(part.files)
            combined.created.extend(part.created)
            combined.failed += part.failed
            combined.warnings += part.warnings
            if on_series is not None:
                on_series(uid, list(part.files))
    except BaseException:
        for path in combined.created:  # a failed or cancelled study leaves nothing new behind
            path.unlink(missing_ok=True)
        raise
    combined.files.sort()
    combined.created.sort()
    return combined


def series_of_files(files: Sequence[str | os.PathLike[str]], cancel: CancelToken | None = None) -> SeriesList:
    """The loadable series of retrieved files (headers read), like a folder scan: what ``on_series``
    hands a viewer so it can open a series while the rest of the study arrives."""
    records, notes = [], []
    for path in files:
        if cancel is not None:
            cancel.raise_if_cancelled()
        outcome = read_frame_records(os.fspath(path))
        if isinstance(outcome, SkippedFile):
            notes.append(outcome)
        else:
            records.extend(outcome)
    return SeriesList(build_series(records, notes), notes)


def send(node: PacsNode, config: PacsConfig, files: Sequence[str | os.PathLike[str]],
         progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None) -> StoreResult:
    """C-STORE or STOW-RS ``files``."""
    if node.is_dicomweb:
        return dicomweb.store(node, files, progress, cancel)
    return dimse.store(node, config.ae_title, files, progress, cancel)


def send_segmentation(
    node: PacsNode,
    config: PacsConfig,
    label_map: LabelMap,
    source_files: Sequence[str | os.PathLike[str]],
    algorithm: tuple[str, str] | None = None,
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
) -> StoreResult:
    """Export ``label_map`` as DICOM SEG over its series' files and send it: the clinical loop."""
    from medviewer.io.dicom_seg import export_dicom_seg

    cancel = cancel or CancelToken()
    with tempfile.TemporaryDirectory(prefix="medviewer-seg-") as folder:
        progress(0.0, "exporting DICOM SEG")
        path = export_dicom_seg(label_map, source_files, Path(folder) / "segmentation.dcm", algorithm=algorithm)
        cancel.raise_if_cancelled()
        return send(node, config, [path], scaled_progress(progress, 0.3, 1.0), cancel)
