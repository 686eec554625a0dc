"""The one edit path: read-only label arrays, Document.edit_labels / begin_label_stroke, modified = clean point."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core import Document, Geometry, LabelMap, Volume
from medviewer.core.edits import OverwriteMode, OverwriteRule
from medviewer.core.undo import UndoStack


@pytest.fixture
def document() -> Document:
    geometry = Geometry((20, 16, 8), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    doc = Document(Volume(np.zeros(geometry.shape, np.int16), geometry), history=UndoStack())
    doc.add_label_map(LabelMap.empty(geometry))
    return doc


def _events(document: Document) -> list:
    events: list = []
    document.labels_changed.connect(lambda label_map, region: events.append(region))
    return events


# ---------------------------------------------------------------------------- read-only arrays
def test_writing_the_label_array_outside_the_edit_path_raises(document):
    label_map = document.active_label_map
    with pytest.raises(ValueError, match="assignment destination is read-only"):
        label_map.array[0, 0, 0] = 1
    with pytest.raises(ValueError, match="read-only"):
        label_map.array[:] += 1
    view = label_map.array[2]
    with pytest.raises(ValueError, match="read-only"):
        view[0, 0] = 1
    assert not label_map.array.any()
    label_map.write(np.s_[0:1, 0:1, 0:1], 3)  # the guarded writer works, and locks again afterwards
    assert label_map.array[0, 0, 0] == 3 and not label_map.array.flags.writeable


def test_label_map_takes_ownership_and_never_shares_a_locked_array():
    geometry = Geometry((4, 3, 2), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    built = np.zeros(geometry.shape, np.uint8)
    built[0, 0, 0] = 2  # readers build freely before the label map owns the array
    first = LabelMap(built, geometry)
    assert first.array is built and not built.flags.writeable
    second = LabelMap(first.array, geometry)  # a locked array is copied: editing one cannot change the other
    second.write(np.s_[1:2, 0:1, 0:1], 5)
    assert second.array is not first.array and first.array[1, 0, 0] == 0 and second.array[1, 0, 0] == 5
    immutable = np.frombuffer(bytes(24), np.uint8).reshape(geometry.shape)
    third = LabelMap(immutable, geometry)
    third.write(np.s_[0:1, 0:1, 0:1], 1)
    assert third.array[0, 0, 0] == 1


def test_widening_to_uint16_keeps_the_array_locked(document):
    label_map = document.active_label_map
    document.edit_labels(label_map, np.s_[0:1, 0:2, 0:2], 300)
    assert label_map.array.dtype == np.uint16 and int(label_map.array.sum()) == 1200
    with pytest.raises(ValueError, match="read-only"):
        label_map.array[0, 0, 0] = 1
    document.history.undo()
    assert not label_map.array.any()


# ---------------------------------------------------------------------------- the entry point
def test_edit_labels_is_one_record_and_one_event_with_the_tight_region(document):
    label_map = document.active_label_map
    events = _events(document)
    mask = np.zeros((4, 10, 10), bool)
    mask[1, 2:5, 3:4] = True
    mask[2, 4, 6] = True
    command = document.edit_labels(label_map, np.s_[2:6, 0:10, 0:10], 4, mask, text="Test")
    tight = (slice(3, 5), slice(2, 5), slice(3, 7))
    assert command is not None and command.region == tight and command.text == "Test"
    assert events == [tight]
    assert document.history.count == 1 and int((label_map.array == 4).sum()) == 4
    # the same edit again changes nothing: no record, no event
    assert document.edit_labels(label_map, np.s_[2:6, 0:10, 0:10], 4, mask) is None
    assert events == [tight] and document.history.count == 1
    document.history.undo()
    assert not label_map.array.any() and events == [tight, tight]


def test_edit_labels_with_a_block_clips_and_follows_the_overwrite_rule(document):
    label_map = document.active_label_map
    document.edit_labels(label_map, np.s_[0:1, 0:1, 0:4], 2)  # label 2 on four voxels
    events = _events(document)
    values = np.ones((1, 1, 30), np.uint8)  # reaches past the array's 20 columns
    rule = OverwriteRule(OverwriteMode.BACKGROUND, active_value=1)
    command = document.edit_labels(label_map, (slice(0, 1), slice(0, 1), slice(-5, 25)), values, rule=rule)
    assert list(label_map.array[0, 0, :6]) == [2, 2, 2, 2, 1, 1]
    assert command.region == (slice(0, 1), slice(0, 1), slice(4, 20)) and events == [command.region]
    assert int((label_map.array == 1).sum()) == 16


def test_edit_labels_without_a_history_marks_modified():
    geometry = Geometry((5, 5, 1), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    document = Document(Volume(np.zeros(geometry.shape, np.int16), geometry))
    label_map = document.add_label_map(LabelMap.empty(geometry))
    assert document.edit_labels(label_map, np.s_[0:1, 0:2, 0:2], 1) is not None
    assert document.modified and int(label_map.array.sum()) == 4


def test_stroke_is_one_record_and_one_event_per_flush(document):
    label_map = document.active_label_map
    events = _events(document)
    stroke = document.begin_label_stroke(label_map, "Paint")
    dab = np.ones((1, 3, 3), bool)
    stroke.paint(np.s_[1:2, 0:3, 0:3], dab, 1, notify=False)
    stroke.paint(np.s_[1:2, 2:5, 2:5], dab, 1, notify=False)
    assert stroke.flush() == (slice(1, 2), slice(0, 5), slice(0, 5)) and len(events) == 1
    assert stroke.paint(np.s_[1:2, 0:3, 0:3], dab, 1) is None  # nothing new: no event
    stroke.paint(np.s_[3:4, 5:8, 5:8], dab, 2)
    assert len(events) == 2 and document.history.count == 0
    command = stroke.finish()
    assert document.history.count == 1 and command.region == (slice(1, 4), slice(0, 8), slice(0, 8))
    assert command.changed_voxels == 17 + 9
    document.history.undo()
    assert not label_map.array.any()


def test_aborted_stroke_restores_and_records_nothing(document):
    label_map = document.active_label_map
    stroke = document.begin_label_stroke(label_map)
    stroke.paint(np.s_[0:1, 0:4, 0:4], np.ones((1, 4, 4), bool), 3)
    stroke.abort()
    assert not label_map.array.any() and document.history.count == 0 and not document.modified


# ---------------------------------------------------------------------------- modified = not at the clean point
def _paint(document: Document, value: int) -> None:
    document.edit_labels(document.active_label_map, np.s_[0:1, 0:1, 0:1], value)


def test_undo_back_to_the_saved_state_clears_modified_and_redo_sets_it(document):
    flags: list[bool] = []
    document.modified_changed.connect(flags.append)
    stack = document.history
    _paint(document, 1)
    assert document.modified and flags == [True]
    stack.undo()
    assert not document.modified and flags == [True, False]
    stack.redo()
    assert document.modified and flags == [True, False, True]


def test_saving_sets_the_clean_point(document):
    stack = document.history
    _paint(document, 1)
    _paint(document, 2)
    document.mark_saved()
    assert not document.modified and stack.is_clean()
    stack.undo()
    assert document.modified  # undoing past the saved state is a change
    stack.redo()
    assert not document.modified
    _paint(document, 3)
    stack.undo()
    assert not document.modified


def test_an_edit_after_undoing_past_the_clean_point_makes_it_unreachable(document):
    stack = document.history
    _paint(document, 1)
    document.mark_saved()
    stack.undo()  # before the saved state
    _paint(document, 5)  # a new branch: the saved state is gone from the history
    assert document.modified
    stack.undo()
    assert document.modified  # this is the state before the save, not the saved one
    stack.redo()
    assert document.modified
    document.mark_saved()
    assert not document.modified


def test_changes_outside_the_history_keep_modified_until_saved(document):
    stack = document.history
    _paint(document, 1)
    document.notify_labels_changed(document.active_label_map, None)  # e.g. a restore: not undoable
    stack.undo()
    assert document.modified
    document.mark_saved()
    assert not document.modified


def test_detections_and_table_edits_from_the_history_do_not_stick(document):
    from medviewer.core import Detection
    from medviewer.core.undo import DetectionsEdit, LabelTableEdit, capture_detections

    label_map = document.active_label_map
    before = capture_detections(document)
    with document.recording():
        document.add_detections([Detection(center=(1.0, 1.0, 1.0), size=(2.0, 2.0, 2.0))])
    document.history.push(DetectionsEdit(document, before))
    after = label_map.table.copy()
    after.add(7, "new")
    document.history.push(LabelTableEdit(label_map, label_map.table.copy(), after, document), apply=True)
    assert document.modified and 7 in label_map.table and len(document.detections) == 1
    document.history.undo()
    document.history.undo()
    assert not document.modified and 7 not in label_map.table and not document.detections


def test_a_stack_follows_one_document(document):
    stack = document.history
    _paint(document, 1)
    geometry = document.geometry
    other = Document(Volume(np.zeros(geometry.shape, np.int16), geometry))
    stack.clear()  # the history of the first document is gone: its edits stay unsaved
    assert document.modified
    other.bind_history(stack)
    assert other.history is stack and document.history is None and stack.document is other
    assert document.modified and not other.modified
    other.add_label_map(LabelMap.empty(geometry))
    _paint(other, 2)
    stack.undo()
    assert not other.modified and document.modified
