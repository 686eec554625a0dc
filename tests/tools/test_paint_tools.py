"""Paint brush, eraser, threshold paint: exact voxel counts, continuous strokes, undo, overwrite rule."""

from __future__ import annotations

import itertools

import numpy as np
from scipy import ndimage

from medviewer.tools.paint import EraserTool, PaintBrushTool, ThresholdPaintTool
from medviewer.tools.session import OverwriteMode

from tool_helpers import drag, make_session, pointer


def _points_within(radius: float, spacing_a: float, spacing_b: float) -> int:
    reach = 30
    return sum(
        1
        for a, b in itertools.product(range(-reach, reach + 1), repeat=2)
        if (a * spacing_a) ** 2 + (b * spacing_b) ** 2 <= radius**2
    )


def test_single_dab_is_a_disc_of_integer_points(session):
    tool = PaintBrushTool(session, radius_mm=5.0)
    drag(tool, session, [(20, 15, 6)])
    labels = session.label_map.array
    assert int((labels == 1).sum()) == 81 == _points_within(5.0, 1.0, 1.0)
    assert (labels[6] == 1).sum() == 81  # all on the clicked axial slice
    assert labels[6, 15, 25] == 1 and labels[6, 15, 26] == 0 and labels[6, 19, 23] == 1  # 4^2+3^2 = 25


def test_dab_in_coronal_view_respects_slice_thickness():
    session = make_session(size=(40, 30, 12), spacing=(0.7, 0.7, 2.5))
    tool = PaintBrushTool(session, radius_mm=5.0)
    drag(tool, session, [(20, 15.2, 6)], view_axis=1)  # coronal slice j = 15
    labels = session.label_map.array
    assert int(labels.sum()) == _points_within(5.0, 0.7, 2.5)
    assert labels[:, 15, :].sum() == labels.sum()
    assert labels[4:9, 15, 20].all() and not labels[3, 15, 20] and not labels[9, 15, 20]


def test_sphere_brush_counts_voxels_in_the_ball():
    session = make_session(size=(40, 40, 20), spacing=(1.0, 1.0, 2.0))
    tool = PaintBrushTool(session, radius_mm=6.0, sphere=True)
    drag(tool, session, [(20, 20, 10)])
    expected = sum(
        1 for x, y, z in itertools.product(range(-6, 7), range(-6, 7), range(-3, 4)) if x * x + y * y + 4 * z * z <= 36
    )
    assert int(session.label_map.array.sum()) == expected


def test_fast_drag_leaves_a_connected_band_and_is_one_undo_step(session):
    tool = PaintBrushTool(session, radius_mm=1.5)
    # one move event far away: the tool must interpolate dabs between the two positions
    drag(tool, session, [(2, 2, 5), (37, 27, 5)])
    painted = session.label_map.array[5] == 1
    components, count = ndimage.label(painted)
    assert count == 1
    for t in np.linspace(0, 1, 200):  # every point of the segment is covered
        x, y = 2 + 35 * t, 2 + 25 * t
        assert painted[int(round(y)), int(round(x))]
    assert session.undo_stack.count == 1
    after = session.label_map.array.copy()
    session.undo()
    assert not session.label_map.array.any()
    session.redo()
    np.testing.assert_array_equal(session.label_map.array, after)


def test_stroke_notifies_small_regions_only(session):
    regions = []
    session.document.labels_changed.connect(lambda lm, region: regions.append(region))
    tool = PaintBrushTool(session, radius_mm=2.0)
    drag(tool, session, [(10, 10, 3), (11, 10, 3), (12, 10, 3)])
    assert regions and all(r is not None for r in regions)
    for region in regions:
        assert region[0] == slice(3, 4)
        assert region[1].stop - region[1].start <= 5 and region[2].stop - region[2].start <= 6


def test_right_button_and_eraser_erase(session):
    brush = PaintBrushTool(session, radius_mm=5.0)
    drag(brush, session, [(20, 15, 6)])
    drag(brush, session, [(20, 15, 6)], button="right")  # ITK-SNAP: right button erases
    assert not session.label_map.array.any()
    drag(brush, session, [(20, 15, 6)])
    drag(EraserTool(session, radius_mm=2.0), session, [(20, 15, 6)])
    assert int(session.label_map.array.sum()) == 81 - 13
    assert session.undo_stack.count == 4


def test_overwrite_rules(session):
    labels = session.ensure_label_map().array
    session.label_map.write(np.s_[6, 15, 10:30], 2)  # an existing label crossing the brush
    brush = PaintBrushTool(session, radius_mm=5.0)
    session.overwrite = OverwriteMode.BACKGROUND
    drag(brush, session, [(20, 15, 6)])
    assert (labels == 2).sum() == 20 and (labels == 1).sum() == 81 - 11
    session.undo()
    session.overwrite = OverwriteMode.SELECTED
    session.overwritable = {3}
    drag(brush, session, [(20, 15, 6)])
    assert (labels == 2).sum() == 20
    session.undo()
    session.overwritable = {2}
    drag(brush, session, [(20, 15, 6)])
    assert (labels == 2).sum() == 20 - 11 and (labels == 1).sum() == 81
    # erasing in BACKGROUND mode removes only the active label
    session.overwrite = OverwriteMode.BACKGROUND
    session.label_map.write(np.s_[6, 15, 20], 2)
    session.active_value = 1
    drag(EraserTool(session, radius_mm=5.0), session, [(20, 15, 6)])
    assert (labels == 1).sum() == 0 and labels[6, 15, 20] == 2


def test_new_value_is_added_to_table_and_widens(session):
    session.active_value = 300
    drag(PaintBrushTool(session, radius_mm=1.0), session, [(5, 5, 5)])
    assert session.label_map.array.dtype == np.uint16
    assert (session.label_map.array == 300).sum() == 5 and 300 in session.label_map.table


def test_threshold_paint_paints_only_in_range_and_previews():
    image = np.zeros((12, 30, 40), np.int16)
    image[:, :, 20:] = 200
    session = make_session(image=image)
    tool = ThresholdPaintTool(session, lower=100, upper=300, radius_mm=5.0)
    tool.handle(pointer(session, "move", 20, 15, 6))  # hover
    preview = tool.preview()
    assert preview.slice_index == 6 and preview.mask.shape == (30, 40)
    assert preview.mask.sum() == 30 * 20
    drag(tool, session, [(20, 15, 6)])
    # the disc of 81 points centred on x = 20: columns 20..25 are in range
    expected = sum(1 for a, b in itertools.product(range(-5, 6), repeat=2) if a * a + b * b <= 25 and b >= 0)
    assert int(session.label_map.array.sum()) == expected


def test_brush_preview_is_the_footprint(session):
    tool = PaintBrushTool(session, radius_mm=5.0)
    tool.handle(pointer(session, "move", 20.3, 14.8, 6))
    preview = tool.preview()
    assert preview.view_axis == 2 and preview.slice_index == 6
    assert preview.mask.sum() == 81 and preview.mask_origin == (10, 15)
    np.testing.assert_allclose(np.linalg.norm(preview.polylines[0][:, :2] - [20, 15], axis=1), 5.0)
    assert not session.label_map or not session.label_map.array.any()  # hovering paints nothing


def test_cancel_restores(session):
    tool = PaintBrushTool(session, radius_mm=3.0)
    tool.handle(pointer(session, "press", 10, 10, 2))
    tool.handle(pointer(session, "move", 20, 10, 2))
    tool.cancel()
    assert not session.label_map.array.any() and session.undo_stack.count == 0
