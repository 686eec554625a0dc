"""Use case "Save annotations": write the open case into an nnU-Net dataset for retraining.

The model's proposal (ORIGINAL) is remembered by a :class:`ProposalTracker` the
moment a model's label map enters the document, so the saved case keeps it beside
the corrected label (FINAL) and the provenance record can count the voxels the
annotator added and removed. Saving marks the document saved and removes its
recovery files. A save is all or nothing (see ``medviewer.io.nnunet_dataset``): on a
full disk or while another process saves into the dataset, nothing changes and the
error says why.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from medviewer import __version__
from medviewer.core.document import Document
from medviewer.core.errors import MedviewerError
from medviewer.core.labels import LabelMap, LabelTable
from medviewer.core.paths import datasets_dir
from medviewer.io.dataset_lock import DEFAULT_TIMEOUT_S
from medviewer.io.nnunet_dataset import CaseRecord, NnUNetDataset, dataset_folder_name

#: Label map sources that are not a model's proposal.
NON_MODEL_SOURCES = ("", "manual", "dataset", "dataset original", "recovered")


def is_model_source(source: str) -> bool:
    return source not in NON_MODEL_SOURCES and not source.startswith("file:")


def split_model_source(source: str) -> tuple[str, str]:
    """``"name version"`` (as inference labels its layers) -> ``(name, version)``."""
    name, _, version = source.strip().rpartition(" ")
    return (name, version) if name else (version, "")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class _Snapshot:
    data: bytes
    shape: tuple[int, ...]
    dtype: str
    table: dict
    name: str
    source: str
    taken_at: str


class ProposalTracker:
    """Keeps a compressed copy of every model-made label map as it was proposed.

    It listens to ``document.label_maps_changed``; a label map whose ``source`` names
    a model is copied the first time it appears (later edits do not change the copy).
    """

    def __init__(self, document: Document) -> None:
        self.document = document
        self._snapshots: dict[int, _Snapshot] = {}
        # id() keys stay unique only while the objects live: keep them alive here.
        self._tracked: dict[int, LabelMap] = {}
        self.started_at = _now()
        document.label_maps_changed.connect(self._on_layers_changed)
        self._on_layers_changed()

    def _on_layers_changed(self) -> None:
        for label_map in self.document.label_maps:
            if id(label_map) not in self._snapshots and is_model_source(label_map.source):
                self.remember(label_map)

    def remember(self, label_map: LabelMap) -> None:
        """Record ``label_map``'s current voxels as the proposal to compare against."""
        self.set_original(label_map, label_map)

    def set_original(self, label_map: LabelMap, original: LabelMap) -> None:
        """Declare ``original`` to be the proposal ``label_map`` started from (e.g. after a crash recovery)."""
        array = np.ascontiguousarray(original.array)
        self._snapshots[id(label_map)] = _Snapshot(
            zlib.compress(array.tobytes(), 1), array.shape, array.dtype.str, original.table.to_dict(),
            original.name, original.source, _now(),
        )
        self._tracked[id(label_map)] = label_map

    def proposal_token(self, label_map: LabelMap) -> object | None:
        """An object that stays the same while ``label_map``'s proposal does (None: no proposal).

        Cheap, unlike :meth:`original_of` (which decompresses): the autosaver writes a
        proposal only when its token changed.
        """
        return self._snapshots.get(id(label_map))

    def original_of(self, label_map: LabelMap) -> LabelMap | None:
        """The proposal ``label_map`` started from, or None for hand-made layers."""
        snapshot = self._snapshots.get(id(label_map))
        if snapshot is None:
            return None
        array = np.frombuffer(zlib.decompress(snapshot.data), np.dtype(snapshot.dtype)).reshape(snapshot.shape).copy()
        return LabelMap(array, label_map.geometry, LabelTable.from_dict(snapshot.table), snapshot.name, snapshot.source)

    def proposed_at(self, label_map: LabelMap) -> str | None:
        snapshot = self._snapshots.get(id(label_map))
        return snapshot.taken_at if snapshot else None


@dataclass
class SaveTarget:
    """Where "Save annotations" writes: ``parent/DatasetNNN_Name``."""

    dataset_id: int = 500
    dataset_name: str = "MedviewerAnnotations"
    parent: Path | None = None
    #: Seconds to wait for another process saving into the same dataset before naming it in the error.
    lock_timeout: float = DEFAULT_TIMEOUT_S

    def folder_parent(self) -> Path:
        return Path(self.parent) if self.parent is not None else datasets_dir()


def save_annotations(
    document: Document,
    target: SaveTarget | None = None,
    annotator: str = "",
    label_map: LabelMap | None = None,
    original: LabelMap | None = None,
    tracker: ProposalTracker | None = None,
    case_id: str | None = None,
    include_detections: bool = True,
    on_saved: Callable[[CaseRecord], None] | None = None,
) -> CaseRecord:
    """Write the document's corrected labels (and boxes) as a case of an nnU-Net dataset.

    Parameters
    ----------
    document:
        The open study.
    target:
        Dataset id, name and parent folder (default: ``Dataset500_MedviewerAnnotations``
        under ``medviewer.core.paths.datasets_dir()``).
    annotator:
        Who corrected the labels (settings' annotator name).
    label_map:
        The FINAL label map (default: the document's active one).
    original:
        The model's proposal (default: what ``tracker`` remembered for ``label_map``).
    case_id:
        Explicit anonymous id; by default derived from a salted hash of the series UID.
    on_saved:
        Called with the record after a successful save (e.g. to drop recovery files).

    Returns
    -------
    CaseRecord
        Paths written and the provenance record.

    Raises
    ------
    MedviewerError
        Nothing was saved and the dataset is unchanged: ``DiskFullError`` (the disk is
        full, ENOSPC), ``DatasetLockedError`` (another process kept saving into the
        dataset for longer than ``target.lock_timeout``; it names that process), or
        ``DatasetError``. The document stays modified.
    """
    target = target or SaveTarget()
    label_map = label_map or document.active_label_map
    if label_map is None:
        raise MedviewerError("there are no labels to save: paint or run a model first")
    if original is None and tracker is not None:
        original = tracker.original_of(label_map)
    source = original.source if original is not None else (label_map.source if is_model_source(label_map.source) else "")
    model_name, model_version = split_model_source(source) if source else ("", "")
    provenance = {
        "annotator": annotator,
        "model": {"name": model_name, "version": model_version} if model_name else None,
        "proposed_at": tracker.proposed_at(label_map) if tracker is not None else None,
        "session_started_at": tracker.started_at if tracker is not None else None,
        "saved_at": _now(),
        "software": f"medviewer {__version__}",
    }
    dataset = NnUNetDataset.create_or_open(
        target.folder_parent(), target.dataset_id, target.dataset_name, document.volume.modality or None,
        lock_timeout=target.lock_timeout,
    )
    record = dataset.save_case(
        document.volume,
        label_map,
        original=original,
        detections=list(document.detections) if include_detections else None,
        provenance=provenance,
        case_id=case_id,
    )
    document.mark_saved()
    if on_saved is not None:
        on_saved(record)
    return record


def default_dataset_root(target: SaveTarget | None = None) -> Path:
    """The dataset folder a save with ``target`` writes to (it may not exist yet)."""
    target = target or SaveTarget()
    return target.folder_parent() / dataset_folder_name(target.dataset_id, target.dataset_name)
