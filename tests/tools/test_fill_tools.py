"""2D flood fill, polygon/lasso fill and region growing tools."""

from __future__ import annotations

import numpy as np
from tool_helpers import drag, make_session, pointer

from medviewer.tools.fill import FloodFill2DTool, PolygonTool, RegionGrowTool
from medviewer.tools.session import OverwriteMode


def test_flood_fill_fills_enclosed_region_on_one_slice(session):
    labels = session.ensure_label_map().array
    session.label_map.write(np.s_[4, 5, 5:16], 2)
    session.label_map.write(np.s_[4, 15, 5:16], 2)
    session.label_map.write(np.s_[4, 5:16, 5], 2)
    session.label_map.write(np.s_[4, 5:16, 15], 2)  # a closed square outline 11 x 11 on slice 4
    session.active_value = 3
    FloodFill2DTool(session).handle(pointer(session, "press", 10, 10, 4))
    assert (labels == 3).sum() == 9 * 9 and (labels[4, 6:15, 6:15] == 3).all()
    assert (labels[3] == 0).all() and (labels[5] == 0).all()
    # clicking outside fills the rest of the slice's background only
    FloodFill2DTool(session).handle(pointer(session, "press", 1, 1, 4))
    assert (labels[4] == 3).sum() == 30 * 40 - 40  # everything except the 40 outline pixels
    session.undo()
    assert (labels == 3).sum() == 81


def test_flood_fill_in_sagittal_view_bounded_by_intensity():
    image = np.zeros((12, 30, 40), np.int16)
    image[:6] = 500  # upper half of the volume bright
    session = make_session(image=image)
    tool = FloodFill2DTool(session, intensity_range=(400, 600))
    tool.handle(pointer(session, "press", 7, 10, 2, view_axis=0))  # sagittal slice i = 7
    labels = session.label_map.array
    assert (labels == 1).sum() == 6 * 30 and (labels[:6, :, 7] == 1).all()


def test_polygon_click_vertices_fills_pixels_with_centres_inside(session):
    tool = PolygonTool(session)
    for i, j in [(4.5, 4.5), (9.5, 4.5), (9.5, 9.5), (4.5, 9.5)]:
        tool.handle(pointer(session, "press", i, j, 3))
        tool.handle(pointer(session, "release", i, j, 3))
    assert tool.drawing and tool.preview().polylines[0].shape == (4, 3)
    assert session.label_map is None  # nothing written yet
    tool.handle(pointer(session, "double_click", 4.5, 9.5, 3))
    labels = session.label_map.array
    assert (labels == 1).sum() == 25 and (labels[3, 5:10, 5:10] == 1).all()
    assert not tool.drawing and session.undo_stack.count == 1


def test_lasso_drag_fills_on_release_in_coronal_view(session):
    tool = PolygonTool(session)
    # a triangle dragged in the coronal plane j = 8 (rows = k, columns = i); its slanted
    # side i = 2k + 1.5 passes through no pixel centre, so the answer is exact:
    # rows k = 1..5 hold columns 2k+2..12, i.e. 9 + 7 + 5 + 3 + 1 = 25 pixels
    drag(tool, session, [(2.5, 8, 0.5), (12.5, 8, 0.5), (12.5, 8, 5.5)], view_axis=1)
    labels = session.label_map.array
    assert labels.sum() == labels[:, 8, :].sum() == 25
    for k in range(1, 6):
        assert (labels[k, 8, 2 * k + 2 : 13] == 1).all() and labels[k, 8].sum() == 11 - 2 * k


def test_polygon_cancel_and_right_click_close(session):
    tool = PolygonTool(session)
    for i, j in [(1, 1), (5, 1), (5, 5)]:
        tool.handle(pointer(session, "press", i, j, 0))
        tool.handle(pointer(session, "release", i, j, 0))
    tool.cancel()
    assert not tool.drawing
    for i, j in [(0.5, 0.5), (6.5, 0.5), (6.5, 6.5), (0.5, 6.5)]:
        tool.handle(pointer(session, "press", i, j, 0))
        tool.handle(pointer(session, "release", i, j, 0))
    tool.handle(pointer(session, "press", 3, 3, 0, button="right"))
    assert (session.label_map.array[0] == 1).sum() == 36


def test_region_grow_connected_from_seed_tolerance():
    image = np.zeros((12, 30, 40), np.int16)
    image[2:8, 5:15, 5:20] = 300  # 6 x 10 x 15 = 900
    image[2:8, 5:15, 22:30] = 300  # separate box
    session = make_session(image=image)
    RegionGrowTool(session, tolerance=50).handle(pointer(session, "press", 10, 10, 4))
    assert (session.label_map.array == 1).sum() == 900
    session.undo()
    RegionGrowTool(session, tolerance=50, in_plane=True).handle(pointer(session, "press", 10, 10, 4))
    assert (session.label_map.array == 1).sum() == 150
    session.undo()
    # a small search cube stops the growth: 3 mm radius -> 7 voxels wide in x and y, 7 slices
    RegionGrowTool(session, tolerance=50, roi_radius_mm=3).handle(pointer(session, "press", 10, 10, 4))
    assert (session.label_map.array == 1).sum() == 6 * 7 * 7


def test_region_grow_confidence_and_overwrite(session):
    image = session.image
    image[2:8, 5:15, 5:20] = 300
    labels = session.ensure_label_map().array
    session.label_map.write(np.s_[4, 10, 5:20], 2)
    session.overwrite = OverwriteMode.BACKGROUND
    RegionGrowTool(session, method="confidence", multiplier=2.0).handle(pointer(session, "press", 10, 8, 4))
    assert (labels == 1).sum() == 900 - 15 and (labels == 2).sum() == 15
