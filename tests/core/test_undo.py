"""UndoStack, LabelEdit, LabelEditRecorder and DetectionsEdit."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core import Detection, DetectionStatus, Document, Geometry, LabelMap, Volume
from medviewer.core.undo import (
    CompoundEdit,
    DetectionsEdit,
    LabelEdit,
    LabelEditRecorder,
    LabelTableEdit,
    UndoStack,
    capture_detections,
    tight_region,
)


@pytest.fixture
def document() -> Document:
    geometry = Geometry((40, 30, 20), (0.8, 0.8, 2.5), (-10.0, 5.0, 30.0))
    doc = Document(Volume(np.zeros(geometry.shape, np.int16), geometry))
    doc.add_label_map(LabelMap.empty(geometry))
    return doc


def _random_edit(rng: np.random.Generator, label_map: LabelMap, document: Document, stack: UndoStack) -> None:
    """Record a random 'stroke' of several boxes of random values as one step."""
    recorder = LabelEditRecorder(label_map, document)
    shape = label_map.array.shape
    for _ in range(int(rng.integers(1, 5))):
        start = [int(rng.integers(0, n)) for n in shape]
        stop = [min(n, s + int(rng.integers(1, 8))) for s, n in zip(start, shape)]
        region = tuple(slice(a, b) for a, b in zip(start, stop))
        recorder.prepare(region)
        value = int(rng.integers(0, 6))
        label_map.write(np.s_[region], value)
    stack.push(recorder.finish())


def test_long_random_sequence_round_trips_bit_exact(document):
    rng = np.random.default_rng(1234)
    label_map = document.active_label_map
    stack = UndoStack()
    states = [label_map.array.copy()]
    for _ in range(150):
        _random_edit(rng, label_map, document, stack)
        if stack.index == len(states):  # pushed (a no-op edit pushes nothing)
            states.append(label_map.array.copy())
        else:
            np.testing.assert_array_equal(label_map.array, states[-1])
    assert stack.count == len(states) - 1 > 100
    # Walk back and forth randomly: every position must reproduce its state exactly.
    for _ in range(400):
        if rng.random() < 0.5:
            stack.undo()
        else:
            stack.redo()
        assert np.array_equal(label_map.array, states[stack.index])
    while stack.undo():
        pass
    assert not label_map.array.any()
    while stack.redo():
        pass
    np.testing.assert_array_equal(label_map.array, states[-1])


def test_push_after_undo_discards_redo_and_signals(document):
    label_map = document.active_label_map
    stack = UndoStack()
    events = []
    stack.can_undo_changed.connect(lambda v: events.append(("undo", v)))
    stack.can_redo_changed.connect(lambda v: events.append(("redo", v)))
    for value in (1, 2):
        before = label_map.array[0:1, 0:2, 0:2].copy()
        label_map.write(np.s_[0:1, 0:2, 0:2], value)
        stack.push(LabelEdit(label_map, (slice(0, 1), slice(0, 2), slice(0, 2)), before, label_map.array[0:1, 0:2, 0:2].copy()))
    assert events == [("undo", True)]
    stack.undo()
    assert events[-1] == ("redo", True) and stack.redo_text == "Edit labels"
    assert label_map.array[0, 0, 0] == 1
    before = label_map.array[5:6, 5:6, 5:6].copy()
    label_map.write(np.s_[5, 5, 5], 3)
    stack.push(LabelEdit(label_map, (slice(5, 6), slice(5, 6), slice(5, 6)), before, label_map.array[5:6, 5:6, 5:6].copy()))
    assert events[-1] == ("redo", False)
    assert not stack.can_redo and stack.count == 2


def test_label_edit_notifies_tight_region(document):
    label_map = document.active_label_map
    seen = []
    document.labels_changed.connect(lambda lm, region: seen.append(region))
    before = label_map.array[2:10, 3:12, 4:20].copy()
    label_map.write(np.s_[5, 6, 7:9], 4)
    command = LabelEdit.from_change(label_map, (slice(2, 10), slice(3, 12), slice(4, 20)), before,
                                    label_map.array[2:10, 3:12, 4:20].copy(), document)
    assert command.region == (slice(5, 6), slice(6, 7), slice(7, 9))
    assert command.changed_voxels == 2
    command.undo()
    assert seen == [command.region] and not label_map.array.any()
    assert LabelEdit.from_change(label_map, (slice(0, 1),) * 3, np.zeros((1, 1, 1)), np.zeros((1, 1, 1))) is None


def test_recorder_grows_and_keeps_original_values(document):
    label_map = document.active_label_map
    label_map.write(np.s_[0, 0, 0:5], 7)  # pre-existing labels must come back on undo
    original = label_map.array.copy()
    recorder = LabelEditRecorder(label_map, document)
    for x in range(0, 38, 3):  # a long stroke that grows the box many times
        region = (slice(0, 2), slice(0, 2), slice(x, x + 2))
        recorder.prepare(region)
        label_map.write(np.s_[region], 1)
    recorder.prepare((slice(0, 2), slice(0, 2), slice(0, 2)))  # revisiting does not lose originals
    label_map.write(np.s_[0, 0, 0], 2)
    command = recorder.finish()
    after = label_map.array.copy()
    command.undo()
    np.testing.assert_array_equal(label_map.array, original)
    command.redo()
    np.testing.assert_array_equal(label_map.array, after)


def test_recorder_abort_restores(document):
    label_map = document.active_label_map
    recorder = LabelEditRecorder(label_map, document)
    recorder.prepare((slice(1, 3), slice(1, 3), slice(1, 3)))
    label_map.write(np.s_[1:3, 1:3, 1:3], 9)
    recorder.abort()
    assert not label_map.array.any()
    assert recorder.finish() is None


def test_history_capped_by_bytes_and_count(document):
    label_map = document.active_label_map
    rng = np.random.default_rng(0)
    stack = UndoStack(max_bytes=60_000, max_count=1000)
    for step in range(20):
        region = (slice(0, 20), slice(0, 30), slice(0, 40))
        before = label_map.array.copy()
        label_map.write(np.s_[:], rng.integers(0, 255, label_map.array.shape, dtype=np.uint8))  # incompressible
        stack.push(LabelEdit(label_map, region, before, label_map.array.copy()))
    # each step holds ~2 x 24000 bytes: only one fits in 60 kB, the most recent is always kept
    assert stack.count == 1 and stack.nbytes <= 60_000 + 49_000
    stack = UndoStack(max_count=3)
    for step in range(5):
        stack.push(LabelTableEdit(label_map, label_map.table.copy(), label_map.table.copy()))
    assert stack.count == 3 and stack.index == 3


def test_default_history_has_no_step_count_limit(document):
    """500 steps used to be dropped silently (issue 18.6): the default caps bytes only."""
    label_map = document.active_label_map
    stack = UndoStack()
    for step in range(2000):
        stack.push(LabelTableEdit(label_map, label_map.table.copy(), label_map.table.copy()))
    assert stack.count == 2000 and stack.max_count is None and stack.max_bytes == 256 * 1024 * 1024
    while stack.undo():
        pass
    assert stack.index == 0


def test_table_and_compound_edits(document):
    label_map = document.active_label_map
    label_map.table.add(1, "liver")
    before_table = label_map.table.copy()
    after_table = label_map.table.copy()
    after_table[1].name = "spleen"
    before = label_map.array[0:1, 0:1, 0:3].copy()
    after = before.copy()
    after[:] = 1
    stack = UndoStack()
    stack.push(
        CompoundEdit(
            [LabelEdit(label_map, (slice(0, 1), slice(0, 1), slice(0, 3)), before, after, document),
             LabelTableEdit(label_map, before_table, after_table, document)],
            "Rename and paint",
        ),
        apply=True,
    )
    table_object = label_map.table
    assert label_map.table[1].name == "spleen" and label_map.voxel_count(1) == 3
    stack.undo()
    assert label_map.table[1].name == "liver" and label_map.voxel_count(1) == 0
    assert label_map.table is table_object  # panels holding the table stay valid


def test_detections_edit_keeps_identity(document):
    box = Detection((0.0, 0.0, 40.0), (4.0, 4.0, 5.0), label="nodule")
    document.add_detections([box])
    before = capture_detections(document)
    box.center = (1.0, 2.0, 40.0)
    box.status = DetectionStatus.ACCEPTED
    extra = Detection((5.0, 5.0, 40.0), (2.0, 2.0, 2.5))
    document.detections.append(extra)
    command = DetectionsEdit(document, before, text="Edit")
    assert not command.is_noop
    stack = UndoStack()
    stack.push(command)
    stack.undo()
    assert document.detections == [box] and document.detections[0] is box
    assert box.center == (0.0, 0.0, 40.0) and box.status is DetectionStatus.PROPOSED
    stack.redo()
    assert document.detections == [box, extra] and box.center == (1.0, 2.0, 40.0)


def test_tight_region():
    mask = np.zeros((5, 6, 7), bool)
    assert tight_region(mask) is None
    mask[1, 2, 3] = mask[3, 4, 5] = True
    assert tight_region(mask, (10, 0, 0)) == (slice(11, 14), slice(2, 5), slice(3, 6))
