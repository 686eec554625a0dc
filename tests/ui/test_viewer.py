"""The viewer in the real main window: linked views, window/level, overlays, letters, tools, edge cases.

Assertions are on rendered pixels (grabbed from the widgets) and on model state.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from medviewer.core import Detection, DetectionStatus, Geometry, LabelMap, Volume
from medviewer.core.labels import DEFAULT_COLORS
from medviewer.imaging.window_level import CT_PRESETS, colormap_lookup_table, window_level_to_uint8
from medviewer.tools.base import PointerAction, Tool, ToolPreview

from tests.ui.conftest import AIR, BONE, LUNG, SOFT_TISSUE, make_ct_phantom

pytestmark = pytest.mark.gui

SOFT_VOXEL = (35, 38, 12)  # (i, j, k)
BONE_VOXEL = (50, 25, 12)
LUNG_VOXEL = (18, 20, 12)
AIR_VOXEL = (1, 1, 12)
LABEL_COLOR = DEFAULT_COLORS[0]


# ---------------------------------------------------------------------------- helpers
def settle() -> None:
    for _ in range(3):
        QApplication.processEvents()


def pixel(view, index) -> tuple[int, int, int]:
    """Rendered RGB at the centre of voxel ``index`` in ``view``."""
    settle()
    pos = view.index_to_widget(np.asarray(index, float))
    color = view.grab().toImage().pixelColor(int(round(pos.x())), int(round(pos.y())))
    return color.red(), color.green(), color.blue()


def grey(view, index) -> int:
    r, g, b = pixel(view, index)
    assert r == g == b, f"expected a grey pixel, got {(r, g, b)}"
    return r


def mouse(view, kind, index_or_pos, button=Qt.MouseButton.LeftButton, buttons=None, modifiers=Qt.KeyboardModifier.NoModifier):
    """Send one mouse event to a view's viewport at a voxel index (or a QPointF)."""
    pos = index_or_pos if isinstance(index_or_pos, QPointF) else view.index_to_widget(np.asarray(index_or_pos, float))
    types = {"press": QMouseEvent.Type.MouseButtonPress, "move": QMouseEvent.Type.MouseMove, "release": QMouseEvent.Type.MouseButtonRelease}
    if buttons is None:
        buttons = button if kind != "release" else Qt.MouseButton.NoButton
    global_pos = QPointF(view.viewport().mapToGlobal(pos.toPoint()))
    event = QMouseEvent(types[kind], pos, global_pos, button if kind != "move" else Qt.MouseButton.NoButton, buttons, modifiers)
    QApplication.sendEvent(view.viewport(), event)


def drag(view, start, end, modifiers=Qt.KeyboardModifier.NoModifier, steps=4):
    mouse(view, "press", start, modifiers=modifiers)
    for t in np.linspace(0, 1, steps + 1)[1:]:
        point = np.asarray(start, float) + t * (np.asarray(end, float) - np.asarray(start, float))
        mouse(view, "move", point, buttons=Qt.MouseButton.LeftButton, modifiers=modifiers)
    mouse(view, "release", end, modifiers=modifiers)


def wheel(view, steps: int, modifiers=Qt.KeyboardModifier.NoModifier):
    pos = QPointF(view.width() / 2, view.height() / 2)
    event = QWheelEvent(pos, QPointF(view.mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, 120 * steps),
                        Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), event)


def views(window):
    axial, coronal, sagittal = window.slice_views
    return axial, coronal, sagittal


def labelled_phantom(window):
    """Open the phantom with one label map: a 4x4 block of label 1 at i 30..33, j 36..39, slices k 11..13."""
    volume = make_ct_phantom()
    document = window.open_volume(volume)
    labels = np.zeros(volume.array.shape, np.uint8)
    labels[11:14, 36:40, 30:34] = 1
    label_map = document.add_label_map(LabelMap(labels, volume.geometry, name="lesion"))
    return document, label_map


# ---------------------------------------------------------------------------- linked views
def test_crosshair_click_and_drag_sync_all_views(viewer):
    document = viewer.open_volume(make_ct_phantom())
    axial, coronal, sagittal = views(viewer)
    axial.set_slice(11)
    settle()
    mouse(axial, "press", (40, 20, 11))
    mouse(axial, "release", (40, 20, 11))
    assert document.cursor_index.tolist() == [40, 20, 11]
    assert (axial.slice_index, coronal.slice_index, sagittal.slice_index) == (11, 20, 40)
    for view in views(viewer):
        assert np.allclose(view.crosshair_world(), document.cursor, atol=1e-6), view.plane
    assert np.allclose(document.cursor, document.geometry.index_to_world([40, 20, 11]))

    # Dragging in the sagittal view moves the axial and coronal slices with it.
    drag(sagittal, (40, 20, 11), (40, 30, 5))
    assert document.cursor_index.tolist() == [40, 30, 5]
    assert (axial.slice_index, coronal.slice_index, sagittal.slice_index) == (5, 30, 40)
    worlds = [view.crosshair_world() for view in views(viewer)]
    assert np.allclose(worlds[0], worlds[1]) and np.allclose(worlds[1], worlds[2])

    # Hiding the crosshair hides it everywhere.
    viewer.crosshair_action.trigger()
    assert all(view.crosshair_world() is None for view in views(viewer))


def test_scroll_keys_and_zoom(viewer, qtbot):
    viewer.open_volume(make_ct_phantom())
    axial, coronal, _ = views(viewer)
    start = axial.slice_index
    wheel(axial, 2)
    assert axial.slice_index == start + 2
    axial.setFocus()
    qtbot.keyClick(axial, Qt.Key.Key_PageDown)
    qtbot.keyClick(axial, Qt.Key.Key_Down)
    assert axial.slice_index == start
    for _ in range(30):
        qtbot.keyClick(axial, Qt.Key.Key_PageUp)
    assert axial.slice_index == 23  # clamped at the last slice
    zoom = coronal.zoom
    wheel(coronal, 3, Qt.KeyboardModifier.ControlModifier)
    assert coronal.zoom == pytest.approx(zoom * 1.15**3, rel=0.02)
    coronal.reset_view()
    assert coronal.zoom == pytest.approx(zoom, rel=1e-3)


# ---------------------------------------------------------------------------- window / level
def test_window_presets_change_rendered_grey_levels(viewer):
    viewer.open_volume(make_ct_phantom())
    viewer.display.set_crosshair_visible(False)
    axial = viewer.slice_views[0]
    # DICOM default window of the phantom: 40/400.
    assert grey(axial, SOFT_VOXEL) == 128
    viewer.apply_window_preset("brain")  # 40/80
    assert [grey(axial, v) for v in (SOFT_VOXEL, BONE_VOXEL, LUNG_VOXEL)] == [128, 255, 0]
    for preset in ("lung", "bone", "mediastinum", "liver"):
        viewer.apply_window_preset(preset)
        center, width = CT_PRESETS[preset]
        for voxel, value in ((SOFT_VOXEL, SOFT_TISSUE), (BONE_VOXEL, BONE), (LUNG_VOXEL, LUNG), (AIR_VOXEL, AIR)):
            assert grey(axial, voxel) == window_level_to_uint8(np.array([value]), center, width)[0], (preset, voxel)
    viewer.apply_window_preset("lung")
    assert grey(axial, LUNG_VOXEL) == 85  # (-850 + 1350) / 1500 * 255
    viewer.invert_action.trigger()
    assert grey(axial, LUNG_VOXEL) == 255 - 85
    viewer.invert_action.trigger()
    viewer.display.set_colormap("hot")
    assert pixel(axial, LUNG_VOXEL) == tuple(int(c) for c in colormap_lookup_table("hot")[85])
    assert "W 1500  L -600" in axial.overlay_text()["bottom_left"]


def test_window_level_drag_with_shift(viewer):
    viewer.open_volume(make_ct_phantom())
    axial = viewer.slice_views[0]
    before = viewer.display.window
    drag(axial, (20, 24, 12), (40, 24, 12), modifiers=Qt.KeyboardModifier.ShiftModifier)
    after = viewer.display.window
    assert after.width > before.width and after.center == pytest.approx(before.center)
    assert viewer.display.preset == "custom" and viewer.window_combo.currentData() == "custom"


def test_monochrome1_is_displayed_inverted(viewer):
    volume = make_ct_phantom()
    volume.metadata.display_inverted = True
    viewer.open_volume(volume)
    viewer.display.set_crosshair_visible(False)
    assert viewer.display.invert and viewer.invert_action.isChecked()
    assert grey(viewer.slice_views[0], SOFT_VOXEL) == 255 - 128


# ---------------------------------------------------------------------------- overlays
def test_label_overlay_colour_at_labelled_voxels_only(viewer):
    document, label_map = labelled_phantom(viewer)
    viewer.display.set_crosshair_visible(False)
    axial, coronal, sagittal = views(viewer)
    document.set_cursor_index((31, 37, 12))
    settle()
    viewer.display.set_label_display(label_map, opacity=1.0)
    for view in (axial, coronal, sagittal):
        assert pixel(view, (31, 37, 12)) == LABEL_COLOR, view.plane
    assert grey(axial, (35, 38, 12)) == 128  # next to the block: image only
    assert grey(coronal, (31, 37, 15)) == 128  # above the block in the coronal view

    viewer.display.set_label_display(label_map, opacity=0.5)
    blended = pixel(axial, (31, 37, 12))
    expected = [(c + 128) / 2 for c in LABEL_COLOR]
    assert np.allclose(blended, expected, atol=2)

    viewer.display.set_label_display(label_map, opacity=1.0, outline=True)
    assert pixel(axial, (30, 37, 12)) == LABEL_COLOR  # boundary voxel
    assert grey(axial, (31, 37, 12)) == 128  # interior: outline only

    viewer.display.set_label_display(label_map, visible=False)
    assert grey(axial, (30, 37, 12)) == 128
    # The layer panel reflects and controls the same state.
    item = viewer.layer_panel.tree.topLevelItem(1)
    assert item.checkState(0) == Qt.CheckState.Unchecked
    item.setCheckState(0, Qt.CheckState.Checked)
    assert viewer.display.label_display(label_map).visible
    # the click is applied without rebuilding the tree from inside the item's own signal (that freed
    # the item Qt was still using: a segmentation fault in a CI run); the item stays the tree's
    assert viewer.layer_panel.tree.topLevelItem(1) is item and item.checkState(0) == Qt.CheckState.Checked
    item.setCheckState(0, Qt.CheckState.Unchecked)
    assert not viewer.display.label_display(label_map).visible and pixel(axial, (30, 37, 12)) != LABEL_COLOR


def test_label_edits_redraw_only_when_they_touch_the_displayed_slice(viewer, monkeypatch):
    document, label_map = labelled_phantom(viewer)
    viewer.display.set_crosshair_visible(False)
    viewer.display.set_label_display(label_map, opacity=1.0)
    axial = viewer.slice_views[0]
    document.set_cursor_index((10, 10, 12))
    settle()
    renders = []
    original = axial.label_layer.render
    monkeypatch.setattr(axial.label_layer, "render", lambda lm, *args: (renders.append(lm), original(lm, *args)))

    document.edit_labels(label_map, np.s_[5:6, 10:11, 10:11], 1)  # another axial slice
    assert renders == []
    document.edit_labels(label_map, np.s_[12:13, 10:11, 10:11], 1)
    assert renders == [label_map]
    assert pixel(axial, (10, 10, 12)) == LABEL_COLOR


def test_detection_boxes_list_and_click_selection(viewer):
    document = viewer.open_volume(make_ct_phantom())
    geometry = document.geometry
    low_score = Detection.from_index_bounds(geometry, [46, 22, 10], [54, 30, 14], label="nodule", score=0.6)
    high_score = Detection.from_index_bounds(geometry, [14, 16, 6], [22, 24, 10], label="mass", score=0.95,
                                             status=DetectionStatus.ACCEPTED)
    document.add_detections([low_score, high_score])
    panel = viewer.detections_panel
    assert panel.table.rowCount() == 2
    assert panel.detection_at_row(0) is high_score  # sorted by score, highest first
    panel.select_row(0)
    assert document.selected_detection is high_score
    axial, coronal, sagittal = views(viewer)
    assert (axial.slice_index, coronal.slice_index, sagittal.slice_index) == (8, 20, 18)
    assert [d for d, _ in axial.boxes.drawn] == [high_score]
    # The accepted box is drawn in green on its edge.
    settle()
    image = axial.grab().toImage()
    edge = axial.index_to_widget([14, 20, 8])
    colors = {image.pixelColor(int(edge.x()) + dx, int(edge.y()) + dy).getRgb()[:3] for dx in (-1, 0, 1) for dy in (-3, 0, 3)}
    assert (40, 220, 60) in colors

    # Sorting by score the other way puts the low score first; selecting it jumps there.
    panel.table.sortByColumn(1, Qt.SortOrder.AscendingOrder)
    panel.select_row(0)
    assert document.selected_detection is low_score and axial.slice_index == 12
    # Clicking a box in a view selects it; the cursor does not move.
    document.select_detection(None)
    cursor = document.cursor
    mouse(axial, "press", (50, 26, 12))
    mouse(axial, "release", (50, 26, 12))
    assert document.selected_detection is low_score
    assert np.allclose(document.cursor, cursor)
    # A box is not drawn on slices it does not cross.
    axial.set_slice(2)
    assert axial.boxes.drawn == []


# ---------------------------------------------------------------------------- geometry on screen
def bright_extent(view) -> tuple[int, int]:
    """Width and height in screen pixels of the white (>250, brighter than the overlay text) area of a view."""
    settle()
    image = view.grab().toImage()
    width, height = image.width(), image.height()
    pixels = np.frombuffer(image.constBits(), np.uint8).reshape(height, image.bytesPerLine() // 4, 4)[:, :width, :3]
    bright = np.argwhere(pixels.min(axis=2) > 250)
    (r0, c0), (r1, c1) = bright.min(axis=0), bright.max(axis=0)
    return c1 - c0 + 1, r1 - r0 + 1


def test_physical_aspect_ratio_with_anisotropic_spacing(viewer):
    array = np.zeros((10, 40, 40), np.int16)
    array[3:7, 10:30, 10:30] = 1000  # 20 x 20 voxels in-plane (10 mm), 4 slices (16 mm)
    volume = Volume(array, Geometry((40, 40, 10), (0.5, 0.5, 4.0)), "CT")
    document = viewer.open_volume(volume)
    viewer.display.set_crosshair_visible(False)
    viewer.display.set_window(500, 200)
    document.set_cursor_index((20, 20, 5))
    axial, coronal, sagittal = views(viewer)
    width, height = bright_extent(axial)
    assert height / width == pytest.approx(1.0, abs=0.05)
    for view in (coronal, sagittal):
        width, height = bright_extent(view)
        assert height / width == pytest.approx(16 / 10, rel=0.05), view.plane


def bright_side(view) -> float:
    """Mean x of the bright pixels as a fraction of the view width."""
    settle()
    image = view.grab().toImage()
    width, height = image.width(), image.height()
    pixels = np.frombuffer(image.constBits(), np.uint8).reshape(height, image.bytesPerLine() // 4, 4)[:, :width, :3]
    bright = np.argwhere((pixels.min(axis=2) > 250))
    return float(bright[:, 1].mean()) / width


@pytest.mark.parametrize("direction, bone_on_right", [((1, 0, 0, 0, 1, 0, 0, 0, 1), True), ((-1, 0, 0, 0, -1, 0, 0, 0, 1), False)])
def test_orientation_letters_and_radiological_convention(viewer, direction, bone_on_right):
    document = viewer.open_volume(make_ct_phantom(direction=direction))
    viewer.display.set_crosshair_visible(False)
    viewer.apply_window_preset("brain")  # bone white, soft tissue mid grey
    document.set_cursor_index(BONE_VOXEL)
    axial, coronal, sagittal = views(viewer)
    assert axial.letters == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert coronal.letters == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert sagittal.letters == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    text = axial.overlay_text()
    assert (text["letter_left"], text["letter_right"], text["letter_top"], text["letter_bottom"]) == ("R", "L", "A", "P")
    letters = axial.overlay_texts.letters
    assert letters["right"].x() > axial.width() * 0.9 and letters["left"].x() < axial.width() * 0.1
    assert letters["top"].y() < axial.height() * 0.1 and letters["bottom"].y() > axial.height() * 0.85
    # The bone block is in the patient's left for LPS data and right for the flipped data:
    # radiological convention puts the patient's left on the screen's right.
    for view in (axial, coronal):
        assert (bright_side(view) > 0.5) == bone_on_right, view.plane
    assert "Axial" in text["top_left"] and "13 / 24" in text["top_left"]
    assert text["top_right"] == ""  # not oblique


def test_oblique_volume_shows_a_notice(viewer):
    angle = np.radians(15)
    direction = (np.cos(angle), -np.sin(angle), 0, np.sin(angle), np.cos(angle), 0, 0, 0, 1)
    viewer.open_volume(make_ct_phantom(direction=direction))
    assert all(view.overlay_text()["top_right"] == "oblique" for view in viewer.slice_views)


# ---------------------------------------------------------------------------- tools
class RecordingTool(Tool):
    name = "recording"

    def __init__(self, consume=True):
        self.events = []
        self.consume = consume

    def handle(self, event):
        self.events.append(event)
        return self.consume

    def preview(self):
        if not self.events:
            return None
        last = self.events[-1]
        i, j, _ = last.voxel
        mask = np.ones((3, 3), bool)
        return ToolPreview(last.view_axis, last.slice_index, mask=mask, mask_origin=(j - 1, i - 1), color=(255, 0, 0))


def test_tool_gets_pointer_events_in_image_space(viewer):
    document = viewer.open_volume(make_ct_phantom())
    viewer.display.set_crosshair_visible(False)
    axial, coronal, _ = views(viewer)
    tool = RecordingTool()
    viewer.set_active_tool(tool)
    cursor = document.cursor
    drag(axial, (20, 30, 12), (26, 30, 12), modifiers=Qt.KeyboardModifier.ControlModifier)
    actions = [e.action for e in tool.events]
    assert actions[0] == PointerAction.PRESS and actions[-1] == PointerAction.RELEASE
    assert set(actions[1:-1]) == {PointerAction.MOVE}
    press, release = tool.events[0], tool.events[-1]
    assert press.view_axis == 2 and press.slice_index == 12 and press.button == "left"
    assert press.modifiers == frozenset({"ctrl"})
    assert np.allclose(press.index, [20, 30, 12], atol=0.1) and np.allclose(release.index, [26, 30, 12], atol=0.1)
    assert np.allclose(press.world, document.geometry.index_to_world(press.index))
    assert np.allclose(document.cursor, cursor)  # consumed: the crosshair did not move
    # The preview (a red 3x3 mask around the last voxel) is drawn half transparent.
    red, green, blue = pixel(axial, (26, 30, 12))
    assert red > green + 60 and green == blue

    # Hover moves arrive with no button; coronal events carry its view axis.
    tool.events.clear()
    mouse(coronal, "move", (10, 20, 5), buttons=Qt.MouseButton.NoButton)
    assert tool.events[-1].button == "" and tool.events[-1].view_axis == 1

    # A tool that does not consume the press leaves the crosshair behaviour.
    viewer.set_active_tool(RecordingTool(consume=False))
    mouse(axial, "press", (40, 10, 12))
    mouse(axial, "release", (40, 10, 12))
    assert document.cursor_index.tolist() == [40, 10, 12]
    viewer.set_active_tool(None)
    assert all(view.tool is None for view in viewer.slice_views)


def test_measurements_ruler_and_roi_listed_and_deletable(viewer):
    document = viewer.open_volume(make_ct_phantom())
    axial = viewer.slice_views[0]
    viewer.set_active_tool(viewer.measurement_tools["ruler"])
    drag(axial, (10, 10, 12), (20, 10, 12))
    viewer.set_active_tool(viewer.measurement_tools["ellipse_roi"])
    drag(axial, (36, 34, 12), (42, 40, 12))  # inside soft tissue
    viewer.set_active_tool(viewer.measurement_tools["rectangle_roi"])
    drag(axial, (46, 22, 12), (54, 32, 12))  # inside the bone block
    items = list(viewer.measurements)
    assert [m.kind for m in items] == ["ruler", "ellipse", "rectangle"]
    table = viewer.measurements_panel.table
    assert table.rowCount() == 3
    assert table.item(0, 2).text() == "8.0 mm"  # 10 voxels of 0.8 mm
    assert table.item(1, 2).text().startswith("mean 40.0 HU, sd 0.0")
    assert table.item(2, 2).text().startswith("mean 700.0 HU")
    assert "area 51.2 mm" in table.item(2, 2).text()  # 8 x 10 voxels of 0.8 x 0.8 mm
    assert len(axial.measurement_layer.items) == 6  # three shapes and their labels
    table.selectRow(0)
    viewer.measurements_panel.delete_selected()
    assert [m.kind for m in viewer.measurements] == ["ellipse", "rectangle"]
    assert table.rowCount() == 2 and len(axial.measurement_layer.items) == 4
    # A click without a drag adds nothing; measurements on other slices are not drawn.
    mouse(axial, "press", (5, 5, 12))
    mouse(axial, "release", (5, 5, 12))
    assert len(viewer.measurements) == 2
    axial.set_slice(3)
    assert axial.measurement_layer.items == []


def test_uncalibrated_ruler_says_pixels(viewer):
    volume = make_ct_phantom()
    volume.metadata.calibrated = False
    viewer.open_volume(volume)
    viewer.set_active_tool(viewer.measurement_tools["ruler"])
    drag(viewer.slice_views[0], (10, 10, 12), (20, 10, 12))
    assert viewer.measurements_panel.table.item(0, 2).text() == "8.0 px"


def test_status_bar_shows_what_is_under_the_mouse(viewer):
    document, label_map = labelled_phantom(viewer)
    axial = viewer.slice_views[0]
    mouse(axial, "move", BONE_VOXEL, buttons=Qt.MouseButton.NoButton)
    status = viewer.status_text()
    assert status["voxel"] == "ijk (50, 25, 12)"
    assert status["value"] == "700 HU"
    x, y, z = np.round(document.geometry.index_to_world(BONE_VOXEL), 1) + 0.0
    assert status["world"] == f"LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm"
    assert status["slice"] == "axial 13/24" and status["zoom"].endswith("%")
    mouse(axial, "move", (31, 37, 12), buttons=Qt.MouseButton.NoButton)
    assert viewer.status_text()["label"] == "Label 1 (1)"



def test_pan_and_zoom_with_the_mouse(viewer, qtbot):
    document = viewer.open_volume(make_ct_phantom())
    axial = viewer.slice_views[0]
    cursor = document.cursor
    voxel = (32, 24, 12)
    before = axial.index_to_widget(voxel)

    def drag_with(button, start, end, buttons=None):
        mouse(axial, "press", start, button=button)
        mouse(axial, "move", end, buttons=buttons or button)
        mouse(axial, "release", end, button=button)

    start = QPointF(axial.width() / 2, axial.height() / 2)
    drag_with(Qt.MouseButton.MiddleButton, start, start + QPointF(40, 25))
    moved = axial.index_to_widget(voxel)
    assert (moved.x() - before.x(), moved.y() - before.y()) == pytest.approx((40, 25), abs=0.5)

    axial.setFocus()
    qtbot.keyPress(axial, Qt.Key.Key_Space)
    drag_with(Qt.MouseButton.LeftButton, start, start + QPointF(-40, -25))
    qtbot.keyRelease(axial, Qt.Key.Key_Space)
    back = axial.index_to_widget(voxel)
    assert (back.x(), back.y()) == pytest.approx((before.x(), before.y()), abs=0.5)
    assert np.allclose(document.cursor, cursor)  # panning never moves the crosshair

    zoom = axial.zoom
    drag_with(Qt.MouseButton.RightButton, start, start + QPointF(0, -50))  # drag up: zoom in
    assert axial.zoom == pytest.approx(zoom * np.exp(0.5), rel=0.02)
    viewer.set_interaction_mode("zoom")
    drag_with(Qt.MouseButton.LeftButton, start, start + QPointF(0, 50), buttons=Qt.MouseButton.LeftButton)
    assert axial.zoom == pytest.approx(zoom, rel=0.02)
    viewer.set_interaction_mode("window_level")
    window = viewer.display.window
    drag(axial, (20, 24, 12), (20, 30, 12))  # plain left drag now levels
    assert viewer.display.window.center > window.center
    assert np.allclose(document.cursor, cursor)
