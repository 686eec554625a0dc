"""One entry point per PACS use case, whatever protocol the node speaks (DIMSE or DICOMweb).

Each long operation is a medviewer job body: ``fn(..., progress, cancel)``. The GUI runs
them on a worker thread, the CLI directly, tests with ``NO_PROGRESS``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback, scaled_progress
from medviewer.core.labels import LabelMap
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


def retrieve(
    node: PacsNode,
    config: PacsConfig,
    destination: str | os.PathLike[str],
    study_uid: str = "",
    series_uid: str = "",
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
) -> RetrieveResult:
    """Bring a study or series into ``destination``: C-GET (default), C-MOVE (``node.use_move``) or WADO-RS."""
    cancel = cancel or CancelToken()
    if node.is_dicomweb:
        result = _wado_retrieve(node, destination, study_uid, series_uid, progress, cancel)
    elif node.use_move:
        result = dimse.move(node, config.ae_title, destination, config.listener_port, study_uid, series_uid,
                            progress, cancel, config.listener_address)
    else:
        result = dimse.get(node, config.ae_title, destination, study_uid, series_uid, progress, cancel)
    # >>> STUDYDB IMPORT HOOK: the coordinator wires the local study database here after merging, e.g.
    # >>> study_db.import_files(result.files, copy=True, progress=progress, cancel=cancel)
    return result


def _wado_retrieve(node: PacsNode, destination, study_uid: str, series_uid: str, progress, cancel) -> RetrieveResult:
    if series_uid:
        if not study_uid:
            found = dicomweb.search(node, Query(level="series", series_uid=series_uid))
            if not found:
                raise PacsError(f"{node.describe()}: no series with UID {series_uid}")
            study_uid = str(found[0]["StudyInstanceUID"])
        return dicomweb.retrieve_series(node, destination, study_uid, series_uid, progress, cancel)
    series = dicomweb.search(node, Query(level="series", study_uid=study_uid))
    if not series:
        raise PacsError(f"{node.describe()}: no series in study {study_uid}")
    combined = RetrieveResult(Path(destination))
    try:
        for index, row in enumerate(series):
            part = dicomweb.retrieve_series(node, destination, study_uid, str(row["SeriesInstanceUID"]),
                                            scaled_progress(progress, index / len(series), (index + 1) / len(series)), cancel)
            combined.files.extend(part.files)
    except BaseException:
        for path in combined.files:  # a failed or cancelled study leaves nothing behind
            path.unlink(missing_ok=True)
        raise
    combined.files.sort()
    return combined


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
