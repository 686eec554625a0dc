"""Every tool and operation edits through the one path: one undo record, one labels_changed, tight region."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core.undo import tight_region
from medviewer.tools import operations
from medviewer.tools.fill import FloodFill2DTool, PolygonTool, RegionGrowTool
from medviewer.tools.paint import EraserTool, PaintBrushTool, ThresholdPaintTool
from medviewer.tools.session import EditSession

from tool_helpers import drag, make_session, pointer


def _setup(session) -> None:
    """A 5 x 5 square of label 2 on slice 6 and a bright box in the image (loaded, not edited)."""
    session.ensure_label_map().write(np.s_[6:7, 10:15, 10:15], 2)
    session.document.volume.array[4:8, 5:20, 20:35] = 500
    session.document.mark_saved()


def _brush(session):
    drag(PaintBrushTool(session, radius_mm=3.0), session, [(5, 5, 6)])


def _eraser(session):
    drag(EraserTool(session, radius_mm=2.0), session, [(12, 12, 6)])


def _threshold(session):
    drag(ThresholdPaintTool(session, 400, 600, radius_mm=4.0), session, [(21, 10, 6)])


def _fill(session):
    FloodFill2DTool(session).handle(pointer(session, "press", 12, 12, 6))


def _polygon(session):
    tool = PolygonTool(session)
    for i, j in ((2, 20), (8, 20), (8, 26)):
        tool.handle(pointer(session, "press", i, j, 6))
        tool.handle(pointer(session, "release", i, j, 6))
    tool.handle(pointer(session, "double_click", 8, 26, 6))


def _grow(session):
    RegionGrowTool(session, lower=400, upper=600, roi_radius_mm=None).handle(pointer(session, "press", 25, 10, 6))


def _islands(session):
    operations.remove_small_islands(session, 30)


def _smooth(session):
    operations.smooth_label(session, 2, "opening", 2.0, in_plane_of=2)


def _merge(session):
    operations.merge_labels(session, [2], 1)


def _delete(session):
    operations.delete_label(session, 2)


EDITS = {
    "brush": (_brush, 29),
    "eraser": (_eraser, 13),
    "threshold paint": (_threshold, 49 - 13),  # the disc minus its 13 points left of the bright box
    "fill": (_fill, 25),
    "polygon": (_polygon, 28),
    "grow": (_grow, 15 * 15 * 4),
    "remove small islands": (_islands, 25),
    "smooth": (_smooth, 4),  # the square's corners
    "merge": (_merge, 25),
    "delete": (_delete, 25),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_each_edit_is_one_record_and_one_event_with_the_tight_region(name):
    session = make_session()
    _setup(session)
    label_map = session.label_map
    before = label_map.array.copy()
    events: list = []
    session.document.labels_changed.connect(lambda lm, region: events.append((lm, region)))
    edit, changed = EDITS[name]
    edit(session)
    after = label_map.array
    tight = tight_region(before != after)
    assert int(np.count_nonzero(before != after)) == changed
    assert session.undo_stack.count == 1
    assert events == [(label_map, tight)]
    assert session.document.modified
    session.undo()
    np.testing.assert_array_equal(label_map.array, before)
    assert not session.document.modified  # back at the saved state
    assert events[-1] == (label_map, tight) and len(events) == 2


def test_a_drag_notifies_once_per_pointer_event_and_records_once():
    session = make_session()
    events: list = []
    session.document.labels_changed.connect(lambda lm, region: events.append(region))
    drag(PaintBrushTool(session, radius_mm=1.0), session, [(3, 3, 2), (6, 3, 2), (9, 3, 2), (9, 3, 2)])
    assert len(events) == 3  # press and two moves; the last move painted nothing new
    assert session.undo_stack.count == 1
    assert tight_region(session.label_map.array != 0) == (slice(2, 3), slice(2, 5), slice(2, 11))


def test_a_session_binds_its_history_to_the_document():
    session = make_session()
    assert session.document.history is session.undo_stack
    again = EditSession(session.document)  # no stack given: the document's history is reused
    assert again.undo_stack is session.undo_stack


def test_change_label_value_above_255_widens_and_undoes():
    session = make_session()
    session.ensure_label_map().write(np.s_[2:3, 3:5, 3:5], 4)
    session.label_map.table.ensure([4])
    operations.change_label_value(session, 4, 300)
    assert session.label_map.array.dtype == np.uint16 and int((session.label_map.array == 300).sum()) == 4
    session.undo()
    assert int((session.label_map.array == 4).sum()) == 4 and 4 in session.label_map.table
