"""Box drawing, moving, resizing, status, class, extent and stepping, all undoable."""

from __future__ import annotations

import numpy as np
from tool_helpers import drag, make_session, pointer

from medviewer.core import Detection, DetectionStatus
from medviewer.tools import detections as ops
from medviewer.tools.detections import BoxTool


def _voxels(session, detection):
    low, high = detection.voxel_box(session.document.geometry)
    return low.tolist(), high.tolist()


def test_draw_box_covers_the_dragged_voxels_on_one_slice():
    session = make_session(spacing=(0.5, 0.5, 2.0))
    tool = BoxTool(session, label="nodule")
    drag(tool, session, [(5.2, 6.9, 4), (9.0, 8.6, 4), (12.4, 10.1, 4)])
    (box,) = session.document.detections
    assert _voxels(session, box) == ([5, 7, 4], [12, 10, 4])
    np.testing.assert_allclose(box.size, [8 * 0.5, 4 * 0.5, 2.0])
    assert box.label == "nodule" and box.status is DetectionStatus.ACCEPTED and box.source == "manual"
    assert session.document.selected_detection is box
    assert session.undo_stack.count == 1 and session.undo_stack.undo_text == "Draw box"
    session.undo()
    assert session.document.detections == []


def test_move_and_resize_with_handles(session):
    box = Detection.from_index_bounds(session.document.geometry, [9.5, 9.5, 2.5], [19.5, 14.5, 5.5], source="model v1")
    session.document.add_detections([box])
    tool = BoxTool(session)
    drag(tool, session, [(14, 12, 3), (17, 10, 3)])  # inside: move by (3, -2)
    assert _voxels(session, box) == ([13, 8, 3], [22, 12, 5])
    assert box.status is DetectionStatus.EDITED
    drag(tool, session, [(22.4, 12.4, 4), (25.2, 15.3, 4)])  # high-x/high-y corner
    assert _voxels(session, box) == ([13, 8, 3], [25, 15, 5])
    drag(tool, session, [(17, 8.3, 4), (17, 9.8, 4)])  # low-y edge to the boundary at 9.5
    assert _voxels(session, box) == ([13, 10, 3], [25, 15, 5])
    assert session.undo_stack.count == 3
    session.undo()
    session.undo()
    session.undo()
    assert _voxels(session, box) == ([10, 10, 3], [19, 14, 5]) and box.status is DetectionStatus.PROPOSED


def test_box_on_other_slice_is_not_hit(session):
    box = Detection.from_index_bounds(session.document.geometry, [9.5, 9.5, 2.5], [19.5, 14.5, 3.5])
    session.document.add_detections([box])
    drag(BoxTool(session), session, [(14, 12, 8), (16, 13, 8)])  # slice 8: draws a new box
    assert len(session.document.detections) == 2 and _voxels(session, box) == ([10, 10, 3], [19, 14, 3])


def test_status_class_extent_delete_and_step(session):
    geometry = session.document.geometry
    boxes = [Detection.from_index_bounds(geometry, [i - 1.5, 5.5, 2.5], [i + 1.5, 8.5, 4.5]) for i in (5, 15, 25)]
    session.document.add_detections(boxes)
    ops.accept_detection(session, boxes[0])
    ops.reject_detection(session, boxes[1])
    ops.set_class(session, boxes[2], "cyst")
    ops.set_slice_extent(session, boxes[2], axis=2, first=1, last=9)
    assert boxes[0].status is DetectionStatus.ACCEPTED and boxes[1].status is DetectionStatus.REJECTED
    assert boxes[2].label == "cyst" and _voxels(session, boxes[2])[0][2] == 1 and _voxels(session, boxes[2])[1][2] == 9
    assert ops.step_detection(session) is boxes[0]
    assert ops.step_detection(session) is boxes[1]
    assert ops.step_detection(session, forward=False) is boxes[0]
    np.testing.assert_allclose(session.document.cursor, boxes[0].center)
    ops.delete_detection(session, boxes[1])
    assert session.document.detections == [boxes[0], boxes[2]]
    assert session.undo_stack.count == 5
    while session.undo():
        pass
    assert session.document.detections == boxes
    assert all(b.status is DetectionStatus.PROPOSED for b in boxes) and boxes[2].label == "lesion"
    assert _voxels(session, boxes[2]) == ([24, 6, 3], [26, 8, 4])


def test_box_tool_cancel_and_preview(session):
    tool = BoxTool(session)
    tool.handle(pointer(session, "press", 3, 3, 2))
    tool.handle(pointer(session, "move", 8, 6, 2))
    preview = tool.preview()
    assert preview.view_axis == 2 and preview.slice_index == 2
    np.testing.assert_allclose(preview.polylines[0][:, :2].min(axis=0), [2.5, 2.5])
    np.testing.assert_allclose(preview.polylines[0][:, :2].max(axis=0), [8.5, 6.5])
    tool.cancel()
    assert session.document.detections == [] and session.undo_stack.count == 0
