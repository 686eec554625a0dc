"""Save annotations: the use case from an edited document to an nnU-Net case with provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medviewer.core import Detection, Document, Geometry, LabelMap, LabelTable, Volume, VolumeMetadata
from medviewer.core.errors import MedviewerError
from medviewer.io.nnunet_dataset import NnUNetDataset
from medviewer.services.annotations import ProposalTracker, SaveTarget, save_annotations, split_model_source
from medviewer.tools.paint import PaintBrushTool
from medviewer.tools.base import PointerAction, PointerEvent
from medviewer.tools.session import EditSession


def _document() -> Document:
    geometry = Geometry((32, 32, 8), (1.0, 1.0, 3.0), (0.0, 0.0, 0.0))
    metadata = VolumeMetadata(patient_name="Roe^Jane", patient_id="ID998877", series_uid="1.2.840.99.1")
    return Document(Volume(np.zeros(geometry.shape, np.int16), geometry, "CT", metadata))


def _model_proposal(document: Document) -> LabelMap:
    array = np.zeros(document.geometry.shape, np.uint8)
    array[2:6, 8:16, 8:16] = 1  # 4 x 8 x 8 = 256 voxels
    return LabelMap(array, document.geometry, LabelTable.from_names({1: "kidney"}), "Kidney", source="kidney-net 1.2")


def _dab(session: EditSession, i: int, j: int, k: int, button: str = "left") -> None:
    tool = PaintBrushTool(session, radius_mm=2.0)
    index = np.array([i, j, k], float)
    world = session.document.geometry.index_to_world(index)
    for action in (PointerAction.PRESS, PointerAction.RELEASE):
        tool.handle(PointerEvent(action, world, index, 2, k, button))


def test_save_records_model_annotator_and_changes(tmp_path):
    document = _document()
    tracker = ProposalTracker(document)
    document.add_label_map(_model_proposal(document))
    document.add_detections([Detection((10.0, 10.0, 9.0), (4.0, 4.0, 3.0), source="kidney-net 1.2")])
    session = EditSession(document)
    _dab(session, 25, 25, 3)  # adds a 13-voxel disc outside the proposal
    _dab(session, 8, 8, 3, button="right")  # erases the proposal's corner: the quarter disc x, y >= 0 = 6 voxels
    assert document.modified
    record = save_annotations(document, SaveTarget(501, "Kidney", tmp_path), annotator="reader-7", tracker=tracker)
    assert not document.modified
    provenance = record.provenance
    assert provenance["annotator"] == "reader-7"
    assert provenance["model"] == {"name": "kidney-net", "version": "1.2"}
    assert provenance["voxels"] == {"labelled": 256 + 13 - 6, "added": 13, "removed": 6, "relabelled": 0,
                                    "proposed": 256}
    assert provenance["proposed_at"] and provenance["saved_at"] and provenance["session_started_at"]
    dataset = NnUNetDataset(tmp_path / "Dataset501_Kidney")
    assert dataset.problems() == []
    assert dataset.load_original(record.case_id).voxel_count(1) == 256
    assert len(dataset.load_detections(record.case_id)) == 1
    line = json.loads((dataset.root / "annotations.jsonl").read_text().splitlines()[0])
    assert line["case_id"] == record.case_id and "Roe" not in json.dumps(line) and "ID998877" not in json.dumps(line)


def test_second_save_is_a_new_version(tmp_path):
    document = _document()
    session = EditSession(document)
    _dab(session, 10, 10, 2)
    first = save_annotations(document, SaveTarget(502, "Manual", tmp_path))
    _dab(session, 20, 20, 2)
    second = save_annotations(document, SaveTarget(502, "Manual", tmp_path))
    assert (first.version, second.version) == (1, 2) and first.case_id == second.case_id
    assert first.provenance["model"] is None and "added" not in first.provenance["voxels"]
    dataset = NnUNetDataset(tmp_path / "Dataset502_Manual")
    assert dataset.versions(first.case_id) == [1]
    _, labels = dataset.load_case(first.case_id)
    assert labels.voxel_count(1) == 26


def test_nothing_to_save_is_a_clear_error(tmp_path):
    with pytest.raises(MedviewerError, match="no labels"):
        save_annotations(_document(), SaveTarget(503, "Empty", tmp_path))


def test_tracker_copy_is_not_changed_by_edits():
    document = _document()
    tracker = ProposalTracker(document)
    proposal = document.add_label_map(_model_proposal(document))
    manual = document.add_label_map(LabelMap.empty(document.geometry, name="Mine"))
    document.edit_labels(proposal, np.s_[:, :, :], 0)
    assert tracker.original_of(proposal).voxel_count(1) == 256
    assert tracker.original_of(manual) is None


def test_split_model_source():
    assert split_model_source("kidney-net 1.2") == ("kidney-net", "1.2")
    assert split_model_source("My model 0.3.1") == ("My model", "0.3.1")
    assert split_model_source("solo") == ("solo", "")


def test_a_full_disk_save_says_so_and_changes_nothing(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "io"))
    from small_disk import fill_to, small_disk, snapshot

    document = _document()
    session = EditSession(document)
    _dab(session, 10, 10, 2)
    with small_disk(tmp_path / "disk", 256) as disk:
        target = SaveTarget(504, "Full", disk)
        first = save_annotations(document, target)
        _dab(session, 20, 20, 2)
        before = snapshot(first.label.parents[1])
        fill_to(disk, 0)
        with pytest.raises(MedviewerError) as raised:
            save_annotations(document, target)
        assert "the disk is full (ENOSPC)" in str(raised.value) and "the dataset is unchanged" in str(raised.value)
        assert document.modified, "a failed save leaves the document unsaved"
        assert snapshot(first.label.parents[1]) == before
        (disk / "filler.bin").unlink()
        second = save_annotations(document, target)
        assert second.version == 2 and not document.modified
        _, labels = NnUNetDataset(first.label.parents[1]).load_case(first.case_id)
        assert labels.voxel_count(1) == 26


def test_a_save_while_another_process_saves_names_it(tmp_path):
    import os
    import socket

    from medviewer.io.dataset_lock import DatasetLock

    document = _document()
    _dab(EditSession(document), 10, 10, 2)
    target = SaveTarget(505, "Busy", tmp_path, lock_timeout=0.2)
    save_annotations(document, target)
    _dab(EditSession(document), 20, 20, 2)
    with DatasetLock(tmp_path / "Dataset505_Busy"):
        with pytest.raises(MedviewerError, match=rf"being saved by another process \(pid {os.getpid()}") as raised:
            save_annotations(document, target)
    assert socket.gethostname() in str(raised.value) and document.modified
    assert save_annotations(document, target).version == 2
