"""The 3D view under Xvfb with Mesa: rendering, presets, world placement, surfaces, picking, no-GL path."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QImage

from medviewer.core import Detection, Document, Geometry, LabelMap, LabelTable, Volume
from medviewer.demo.phantoms import ChestPhantomParams, generate_chest_ct
from medviewer.services.demo import DEMO_SEED
from medviewer.ui.volume_view import DISABLE_ENV_VAR, PRESETS, VolumeView, opengl_status
from medviewer.ui.volume_view import widget as widget_module
from medviewer.ui.volume_view.surfaces import extract_label_surfaces, labels_to_rebuild

pytestmark = pytest.mark.gui

N = 64
VIEW_SIZE = (400, 340)
# A tilted, mirrored grid: i runs towards -P (anterior), j towards +L, k towards +S, then
# rotated 20 degrees about the S axis. det = -1, so a mirror too.
_ANGLE = np.deg2rad(20.0)
_ROTATION = np.array([[np.cos(_ANGLE), -np.sin(_ANGLE), 0.0], [np.sin(_ANGLE), np.cos(_ANGLE), 0.0], [0.0, 0.0, 1.0]])
OBLIQUE_DIRECTION = _ROTATION @ np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]) @ np.diag([1.0, 1.0, 1.0])
MIRRORED_DIRECTION = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


def ct_phantom() -> np.ndarray:
    """A 64^3 CT-like cylinder: air, soft tissue, a bone rod, lung pockets and a contrast vessel (HU)."""
    zz, yy, xx = np.mgrid[:N, :N, :N]
    ct = np.full((N, N, N), -1000, np.int16)
    ct[((yy - 32) / 26.0) ** 2 + ((xx - 32) / 28.0) ** 2 < 1] = 40
    ct[((yy - 26) / 10.0) ** 2 + ((xx - 20) / 7.0) ** 2 < 1] = -820  # right lung
    ct[((yy - 26) / 10.0) ** 2 + ((xx - 44) / 7.0) ** 2 < 1] = -820  # left lung
    ct[(yy - 46) ** 2 + (xx - 32) ** 2 < 25] = 900  # spine-like rod, posterior
    ct[(yy - 34) ** 2 + (xx - 30) ** 2 < 6] = 300  # contrast-filled vessel
    return ct


@pytest.fixture(scope="module")
def demo_case():
    """The demo chest CT phantom (same seed as the demo data) on a coarse 128 x 128 x 64 grid."""
    return generate_chest_ct(ChestPhantomParams.from_seed(DEMO_SEED), (64, 128, 128), (2.8, 2.8, 4.7))


def make_document(direction: np.ndarray = np.eye(3), spacing=(1.0, 1.0, 1.5), origin=(-32.0, -32.0, -48.0)) -> Document:
    geometry = Geometry.from_matrix((N, N, N), spacing, origin, direction)
    return Document(Volume(ct_phantom(), geometry, modality="CT"))


@pytest.fixture
def view(qtbot):
    widget = VolumeView()
    assert widget.available, widget.unavailable_reason
    qtbot.addWidget(widget)
    widget.resize(*VIEW_SIZE)  # small: Mesa ray casting costs per pixel
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.shutdown()


def wait_for_surfaces(qtbot, view: VolumeView) -> None:
    qtbot.waitUntil(lambda: not view.surfaces_busy, timeout=15000)


def save_screenshot(view: VolumeView, folder, name: str, image: np.ndarray | None = None) -> None:
    """Save the whole pane, or just an already rendered image (cheaper), as a PNG."""
    path = folder / f"volume_view_{name}.png"
    if image is None:
        picture = view.screenshot()
    else:
        picture = QImage(image.data, image.shape[1], image.shape[0], 3 * image.shape[1], QImage.Format.Format_RGB888)
    assert picture.save(str(path)), path


def differing_fraction(image: np.ndarray, background: np.ndarray, threshold: int = 30) -> float:
    return float(np.mean(np.abs(image.astype(int) - background.astype(int)).max(axis=2) > threshold))


def voxel_world_extent(geometry: Geometry) -> np.ndarray:
    """World size of one voxel along L, P, S (its axis-aligned box)."""
    return np.abs(geometry.direction_matrix * np.asarray(geometry.spacing)[None, :]).sum(axis=1)


# ---------------------------------------------------------------------------- capability / no-GL
def test_real_opengl_check_passes_under_xvfb(qtbot):
    status = opengl_status()
    assert status.available, status.reason
    assert status.version is not None and status.version >= (3, 2)


def test_no_opengl_path_shows_message_and_accepts_a_document(qtbot, monkeypatch, artifacts_dir):
    monkeypatch.setenv(DISABLE_ENV_VAR, "1")
    widget = VolumeView()
    qtbot.addWidget(widget)
    widget.resize(400, 300)
    widget.show()
    assert not widget.available
    assert DISABLE_ENV_VAR in widget.unavailable_reason
    assert widget.message_text.startswith("3D view unavailable")
    assert not hasattr(widget, "vtk_widget")
    document = make_document()
    widget.set_document(document)  # must not fail; the rest of the app keeps working
    document.set_cursor((1.0, 2.0, 3.0))
    widget.set_preset("MIP")
    widget.set_camera_preset("A")
    assert widget.pick_display_point(10, 10) is None
    assert widget.screenshot().save(str(artifacts_dir / "volume_view_no_opengl.png"))

    forced = VolumeView(opengl=False)
    qtbot.addWidget(forced)
    assert not forced.available and forced.message_text


# ---------------------------------------------------------------------------- volume rendering
def test_rendering_is_not_empty_and_changes_with_preset(qtbot, view, artifacts_dir, demo_case):
    document = Document(demo_case.volume)
    view.set_document(document)
    view.set_surfaces_visible(False)
    view.set_slice_planes_visible(False)
    assert view.preset_name == "CT bone"  # CT gets the bone preset

    view.set_volume_visible(False)
    document.set_cursor((1000.0, 1000.0, 1000.0))  # move the cursor sphere out of sight
    background = view.render_to_array()
    view.set_volume_visible(True)

    images = {}
    for name in PRESETS:
        view.set_preset(name)
        images[name] = view.render_to_array()
        save_screenshot(view, artifacts_dir, "preset_" + name.replace(" ", "_"), images[name])
        assert differing_fraction(images[name], background) > 0.01, f"{name} renders nothing"
    names = list(images)
    for first in range(len(names)):
        for second in range(first + 1, len(names)):
            a, b = images[names[first]], images[names[second]]
            assert differing_fraction(a, b, threshold=20) > 0.005, f"{names[first]} looks like {names[second]}"

    # Soft tissue shows the whole body; bone only the skeleton inside it.
    assert differing_fraction(images["CT soft tissue"], background) > differing_fraction(images["CT bone"], background)

    # Shifting the opacity ramp and switching shading change the picture.
    view.set_preset("CT soft tissue")
    before = view.render_to_array()
    view.set_opacity_shift(0.4)
    assert view.shift_slider.value() == 40
    shifted = view.render_to_array()
    assert differing_fraction(before, shifted) > 0.005
    view.set_opacity_shift(0.0)
    view.set_shading(False)
    assert not view.shading_check.isChecked()
    assert differing_fraction(before, view.render_to_array(), threshold=10) > 0.005


def test_toolbar_controls_drive_the_view(qtbot, view):
    view.set_document(make_document())
    view.preset_combo.setCurrentText("MIP")
    assert view.preset_name == "MIP"
    assert view.volume_mapper.GetBlendMode() == view.volume_mapper.MAXIMUM_INTENSITY_BLEND
    view.quality_combo.setCurrentIndex(view.quality_combo.findData("best"))
    assert not view.volume_mapper.GetAutoAdjustSampleDistances()
    view.quality_combo.setCurrentIndex(view.quality_combo.findData("fast"))
    assert view.volume_mapper.GetAutoAdjustSampleDistances()
    qtbot.mouseClick(view.camera_buttons["S"], Qt.MouseButton.LeftButton)
    np.testing.assert_allclose(view.renderer.GetActiveCamera().GetDirectionOfProjection(), (0, 0, -1), atol=1e-9)
    with pytest.raises(ValueError):
        view.set_preset("no such preset")


def test_volume_is_placed_with_direction_and_spacing(qtbot, view, artifacts_dir):
    """A bright blob at a known voxel appears where its world position projects, on a mirrored grid."""
    geometry = Geometry.from_matrix((N, N, N), (0.8, 1.2, 1.5), (15.0, -40.0, 60.0), MIRRORED_DIRECTION)
    array = np.zeros((N, N, N), np.int16)
    blob_index = np.array([12, 40, 20])  # (i, j, k)
    i, j, k = blob_index
    array[k - 3 : k + 4, j - 3 : j + 4, i - 3 : i + 4] = 1000
    array[0, 0, 0] = 0
    document = Document(Volume(array, geometry, modality="MR"))
    view.set_document(document)
    view.set_preset("MIP")
    view.set_slice_planes_visible(False)
    document.set_cursor((1000.0, 1000.0, 1000.0))
    for letter in ("A", "L", "S"):
        view.set_camera_preset(letter)
        image = view.render_to_array()
        height = image.shape[0]
        x, y = view.world_to_display(geometry.index_to_world(blob_index))
        row, column = int(round(height - 1 - y)), int(round(x))
        assert image[row, column].mean() > 150, f"blob not at its world position in view {letter}"
        # Where the blob would be if the direction were ignored (index * spacing + origin) stays dark.
        naive = np.asarray(geometry.origin) + blob_index * np.asarray(geometry.spacing)
        nx, ny = view.world_to_display(naive)
        nrow, ncolumn = int(round(height - 1 - ny)), int(round(nx))
        if 0 <= nrow < height and 0 <= ncolumn < image.shape[1] and np.hypot(nx - x, ny - y) > 20:
            assert image[nrow, ncolumn].mean() < 100
        save_screenshot(view, artifacts_dir, f"mirrored_blob_{letter}", image)


def test_camera_presets_follow_lps(qtbot, view):
    document = make_document()
    view.set_document(document)
    camera = view.renderer.GetActiveCamera()
    expected = {"A": (0, 1, 0), "P": (0, -1, 0), "L": (-1, 0, 0), "R": (1, 0, 0), "S": (0, 0, -1), "I": (0, 0, 1)}
    for letter, projection in expected.items():
        view.set_camera_preset(letter)
        np.testing.assert_allclose(camera.GetDirectionOfProjection(), projection, atol=1e-9)
    # From the front (A) the patient's left (+x) is on the screen's right.
    view.set_camera_preset("A")
    left_x, _ = view.world_to_display((20.0, 0.0, 0.0))
    right_x, _ = view.world_to_display((-20.0, 0.0, 0.0))
    assert left_x > right_x
    view.set_camera_preset("S")  # from above, anterior at the top
    _, anterior_y = view.world_to_display((0.0, -20.0, 0.0))
    _, posterior_y = view.world_to_display((0.0, 20.0, 0.0))
    assert anterior_y > posterior_y


# ---------------------------------------------------------------------------- surfaces
@pytest.mark.parametrize(
    "direction, spacing",
    [(np.eye(3), (1.0, 1.0, 1.0)), (OBLIQUE_DIRECTION, (0.7, 1.3, 2.5)), (MIRRORED_DIRECTION, (1.1, 0.6, 2.0))],
    ids=["identity", "oblique-anisotropic", "mirrored-anisotropic"],
)
def test_surface_bounds_equal_label_world_bounds(qtbot, view, direction, spacing):
    document = make_document(direction, spacing, origin=(12.0, -7.0, 33.0))
    geometry = document.geometry
    labels = np.zeros(geometry.shape, np.uint8)
    labels[10:21, 5:30, 30:52] = 1
    labels[40:64, 30:40, 0:9] = 2  # touches two image borders: still a closed surface
    label_map = document.add_label_map(LabelMap(labels, geometry))
    view.set_document(document)
    wait_for_surfaces(qtbot, view)
    tolerance = voxel_world_extent(geometry)
    for value in (1, 2):
        polydata = view.surface_polydata(label_map, value)
        assert polydata is not None and polydata.GetNumberOfCells() > 0
        bounds = np.array(polydata.GetBounds()).reshape(3, 2)
        centres = geometry.index_to_world(np.argwhere(labels == value)[:, ::-1])
        np.testing.assert_array_less(np.abs(bounds[:, 0] - centres.min(axis=0)), tolerance)
        np.testing.assert_array_less(np.abs(bounds[:, 1] - centres.max(axis=0)), tolerance)
        # On axis-aligned grids the surface encloses the voxel centres (about half a voxel outside).
        assert geometry.is_oblique() or np.all(bounds[:, 0] < centres.min(axis=0)) and np.all(bounds[:, 1] > centres.max(axis=0))
        assert view.is_label_surface_visible(label_map, value)


def test_surfaces_follow_edits_table_and_toggles(qtbot, view, artifacts_dir):
    document = make_document()
    geometry = document.geometry
    labels = np.zeros(geometry.shape, np.uint8)
    labels[20:40, 15:30, 10:25] = 1
    labels[10:50, 38:46, 36:50] = 2
    table = LabelTable()
    table.add(1, "liver", (200, 60, 60))
    table.add(2, "kidney", (60, 200, 60))
    label_map = document.add_label_map(LabelMap(labels, geometry, table))
    view.set_document(document)
    wait_for_surfaces(qtbot, view)
    first_two = view.surface_polydata(label_map, 2)
    assert view.surface_polydata(label_map, 1) is not None

    # Paint a new label 3 in a block and erase part of label 1 in the same region: label 2 is untouched.
    region = (slice(20, 40), slice(10, 20), slice(5, 30))
    block = label_map.array[region].copy()
    block[block == 1] = 0
    block[5:15, 0:4, 0:4] = 3  # voxels 25:35, 10:14, 5:9
    with qtbot.waitSignal(view.surfaces_updated, timeout=15000):
        document.edit_labels(label_map, region, block)
    wait_for_surfaces(qtbot, view)
    assert view.surface_polydata(label_map, 2) is first_two  # not rebuilt
    three = view.surface_polydata(label_map, 3)
    assert three is not None
    bounds = np.array(three.GetBounds()).reshape(3, 2)
    centres = geometry.index_to_world(np.argwhere(label_map.array == 3)[:, ::-1])
    np.testing.assert_array_less(np.abs(bounds[:, 0] - centres.min(axis=0)), voxel_world_extent(geometry))
    one = np.array(view.surface_polydata(label_map, 1).GetBounds()).reshape(3, 2)
    assert one[1, 0] > geometry.index_to_world((0, 19, 0))[1]  # erased rows y < 20 are gone

    # Erase label 3 completely: its surface disappears.
    document.edit_labels(label_map, np.s_[25:35, 10:14, 5:9], 0, label_map.array[25:35, 10:14, 5:9] == 3)
    wait_for_surfaces(qtbot, view)
    assert view.surface_polydata(label_map, 3) is None

    # Colour and visibility come from the label table; per-label toggles are the view's own.
    actor = view._layers[id(label_map)].actors[1]
    np.testing.assert_allclose(actor.GetProperty().GetColor(), (200 / 255, 60 / 255, 60 / 255))
    label_map.table[1].visible = False
    document.notify_label_table_changed(label_map)
    assert not view.is_label_surface_visible(label_map, 1)
    label_map.table[1].visible = True
    document.notify_label_table_changed(label_map)
    view.set_label_surface_visible(label_map, 2, False)
    assert view.is_label_surface_visible(label_map, 1) and not view.is_label_surface_visible(label_map, 2)
    view._fill_labels_menu()
    actions = {a.text().split("  ")[0]: a for a in view.labels_menu.actions()}
    assert set(actions) == {"liver", "kidney"} and not actions["kidney"].isChecked()
    actions["kidney"].setChecked(True)
    assert view.is_label_surface_visible(label_map, 2)
    view.set_surface_opacity(0.5)
    assert actor.GetProperty().GetOpacity() == pytest.approx(0.5)
    view.set_surfaces_visible(False)
    assert not view.is_label_surface_visible(label_map, 1)
    view.set_surfaces_visible(True)
    view.set_surface_opacity(1.0)
    view.set_camera_preset("A")
    save_screenshot(view, artifacts_dir, "surfaces")

    # Removing the layer removes its surfaces.
    document.remove_label_map(label_map)
    assert view.surface_polydata(label_map, 1) is None


def test_labels_to_rebuild_tracks_touched_labels():
    array = np.zeros((10, 10, 10), np.uint8)
    array[0:3, 0:3, 0:3] = 1
    array[6:9, 6:9, 6:9] = 2
    known = {1: (slice(0, 3), slice(0, 3), slice(0, 3)), 2: (slice(6, 9), slice(6, 9), slice(6, 9))}
    array[1, 1, 1] = 0  # edit inside label 1's box
    plan = labels_to_rebuild(array, [(slice(1, 2), slice(1, 2), slice(1, 2))], known)
    assert plan == {1: known[1]}
    array[4, 4, 4] = 5  # a new label may also exist elsewhere: search everything
    plan = labels_to_rebuild(array, [(slice(4, 5), slice(4, 5), slice(4, 5))], known)
    assert plan == {5: None}
    result = extract_label_surfaces(array, Geometry((10, 10, 10)), None, {**known, 7: known[1]})
    assert result[7].polydata is None and result[5].voxel_box == (slice(4, 5),) * 3


# ---------------------------------------------------------------------------- picking, cursor, boxes
def test_picking_a_surface_moves_the_cursor(qtbot, view, artifacts_dir):
    document = make_document(OBLIQUE_DIRECTION, (0.9, 1.1, 1.5), origin=(5.0, 5.0, 5.0))
    document.volume.array[...] = -1000  # transparent volume: the pick must hit the surface
    geometry = document.geometry
    labels = np.zeros(geometry.shape, np.uint8)
    labels[20:44, 20:44, 20:44] = 1
    label_map = document.add_label_map(LabelMap(labels, geometry))
    view.set_document(document)
    wait_for_surfaces(qtbot, view)
    view.set_slice_planes_visible(False)
    view.set_camera_preset("A")
    view.render()

    # The label's centre, seen from the front: the pick lands on its anterior surface.
    centre = geometry.index_to_world(np.array([31.5, 31.5, 31.5]))
    x, y = view.world_to_display(centre)
    with qtbot.waitSignal(document.cursor_moved, timeout=5000) as moved:
        picked = view.pick_display_point(int(round(x)), int(round(y)))
    assert picked is not None
    np.testing.assert_allclose(moved.args[0], picked)
    polydata = view.surface_polydata(label_map, 1)
    front = np.array(polydata.GetBounds())[2]  # smallest P = most anterior world position
    assert abs(picked[1] - front) < 3.0  # the oblique cube's front edge region, within a voxel or two
    inside = geometry.world_to_index(picked)
    assert np.all(inside > 18) and np.all(inside < 46)
    # The picked point lies on the mesh (closest mesh vertex within one voxel).
    from vtkmodules.util.numpy_support import vtk_to_numpy

    vertices = vtk_to_numpy(polydata.GetPoints().GetData())
    assert np.min(np.linalg.norm(vertices - picked, axis=1)) < max(geometry.spacing)

    # A real mouse click on the widget does the same (Qt y runs downwards).
    document.set_cursor((0.0, 0.0, 0.0))
    widget_height = view.vtk_widget.height()
    target = QPoint(int(round(x)), int(round(widget_height - 1 - y)))
    with qtbot.waitSignal(view.picked, timeout=5000) as clicked:
        qtbot.mouseClick(view.vtk_widget, Qt.MouseButton.LeftButton, pos=target)
    np.testing.assert_allclose(clicked.args[0], document.cursor)
    assert np.linalg.norm(document.cursor - picked) < max(geometry.spacing)
    save_screenshot(view, artifacts_dir, "picked")

    # Clicking the empty background leaves the cursor alone.
    before = document.cursor
    assert view.pick_display_point(2, 2) is None
    np.testing.assert_array_equal(document.cursor, before)


def test_picking_the_volume_moves_the_cursor(qtbot, view, monkeypatch):
    # Make this small volume "large" so the fast mode draws its decimated preview first.
    monkeypatch.setattr(widget_module, "PREVIEW_MAX_VOXELS", 30_000)
    document = make_document()
    view.set_document(document)
    view.set_preset("CT bone")
    view.set_slice_planes_visible(False)
    view.set_camera_preset("P")  # from behind: the bone rod (posterior, y = 46 +- 5 voxels) is first
    assert view.preview_mapper.GetInput().GetDimensions() == (22, 22, 22)  # every 3rd voxel
    qtbot.waitUntil(lambda: view._showing_preview, timeout=5000)  # the quick frame
    qtbot.waitUntil(lambda: not view._showing_preview, timeout=10000)  # then the refined one
    target = document.geometry.index_to_world(np.array([32.0, 46.0, 32.0]))
    x, y = view.world_to_display(target)
    picked = view.pick_display_point(int(round(x)), int(round(y)))
    assert picked is not None
    index = document.geometry.world_to_index(picked)
    assert abs(index[0] - 32) < 2 and abs(index[2] - 32) < 2
    assert 49 <= index[1] <= 52.5  # the rod's posterior surface (y index 46 + 5), within a voxel

    # A real click while the preview is drawn still picks the full-resolution volume.
    document.set_cursor((0.0, 0.0, 0.0))
    qtbot.waitUntil(lambda: view._showing_preview, timeout=5000)
    target_pixel = QPoint(int(round(x)), int(round(view.vtk_widget.height() - 1 - y)))
    with qtbot.waitSignal(view.picked, timeout=5000):
        qtbot.mouseClick(view.vtk_widget, Qt.MouseButton.LeftButton, pos=target_pixel)
    np.testing.assert_allclose(document.cursor, picked, atol=1e-6)


def test_fast_interaction_draws_the_preview_unshaded_then_refines(qtbot, view, monkeypatch):
    monkeypatch.setattr(widget_module, "PREVIEW_MAX_VOXELS", 30_000)
    view.set_document(make_document())
    qtbot.waitUntil(lambda: not view._showing_preview, timeout=10000)
    assert view.volume_property.GetShade()
    interactor = view.interactor
    centre_x, centre_y = (n // 2 for n in view.render_window.GetSize())
    camera = view.renderer.GetActiveCamera()
    before = camera.GetDirectionOfProjection()
    interactor.SetEventInformation(centre_x, centre_y, 0, 0, "\0", 0, None)
    interactor.LeftButtonPressEvent()
    for step in range(1, 4):
        interactor.SetEventInformation(centre_x + 10 * step, centre_y, 0, 0, "\0", 0, None)
        interactor.MouseMoveEvent()
        assert view._showing_preview and not view.volume_property.GetShade()
    cursor = view.document.cursor
    interactor.LeftButtonReleaseEvent()
    assert not np.allclose(camera.GetDirectionOfProjection(), before)  # it rotated
    assert view.volume_property.GetShade()  # shading back for the refined frame
    np.testing.assert_array_equal(view.document.cursor, cursor)  # a drag is not a click
    qtbot.waitUntil(lambda: not view._showing_preview, timeout=10000)

    view.set_quality("best")  # best quality never draws the preview
    view.request_render()
    qtbot.wait(50)
    assert not view._showing_preview and view.volume.GetVisibility()


def test_cursor_planes_and_detection_boxes(qtbot, view, artifacts_dir):
    document = make_document(OBLIQUE_DIRECTION, (1.0, 1.0, 1.5))
    geometry = document.geometry
    view.set_document(document)
    cursor = geometry.index_to_world(np.array([10.0, 20.0, 30.0]))
    document.set_cursor(cursor)
    np.testing.assert_allclose(view.cursor_source.GetCenter(), cursor)
    assert view.cursor_actor.GetVisibility()
    # The axial plane outline (constant k) passes through the cursor's k.
    axial = view.plane_actors[0].GetMapper().GetInput()
    from vtkmodules.util.numpy_support import vtk_to_numpy

    ring = geometry.world_to_index(vtk_to_numpy(axial.GetPoints().GetData()))
    np.testing.assert_allclose(ring[:, 2], 30.0, atol=1e-9)

    low, high = np.array([5.0, 6.0, 7.0]), np.array([25.0, 30.0, 40.0])
    first = Detection.from_index_bounds(geometry, low, high)
    second = Detection.from_index_bounds(geometry, low + 20, high + 20)
    document.add_detections([first, second])
    boxes = view.boxes_actor.GetMapper().GetInput()
    assert boxes.GetNumberOfLines() == 24
    def corners(lo, hi):
        return geometry.index_to_world(np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])]))

    both = np.concatenate([corners(low, high), corners(low + 20, high + 20)])
    np.testing.assert_allclose(np.array(boxes.GetBounds()).reshape(3, 2).T, [both.min(axis=0), both.max(axis=0)], atol=1e-6)
    document.select_detection(first)
    selected = view.selected_box_actor.GetMapper().GetInput()
    assert view.selected_box_actor.GetVisibility() and selected.GetNumberOfLines() == 12
    first_corners = corners(low, high)
    np.testing.assert_allclose(
        np.array(selected.GetBounds()).reshape(3, 2).T, [first_corners.min(axis=0), first_corners.max(axis=0)], atol=1e-6
    )
    assert view.boxes_actor.GetMapper().GetInput().GetNumberOfLines() == 12
    view.set_camera_preset("A")
    save_screenshot(view, artifacts_dir, "boxes_and_planes")
    document.remove_detection(first)
    assert not view.selected_box_actor.GetVisibility()


def test_switching_documents_and_2d_images(qtbot, view):
    first = make_document()
    view.set_document(first)
    view.set_document(Document(Volume(np.zeros((1, 32, 32), np.uint8), Geometry((32, 32, 1)), modality="DX")))
    assert not view.volume.GetVisibility()
    assert "2D" in view.notice.GetInput()
    first.set_cursor((3.0, 3.0, 3.0))  # the old document no longer drives the view
    assert not np.allclose(view.cursor_source.GetCenter(), (3.0, 3.0, 3.0))
    view.render_to_array()
    view.set_document(None)
    assert view.document is None
    view.render_to_array()


# ---------------------------------------------------------------------------- in the main window
def test_volume_view_in_the_2x2_layout_follows_and_drives_the_cursor(qtbot, artifacts_dir, demo_case):
    from medviewer.ui.main_window import MainWindow

    window = MainWindow(persist_settings=False, enable_3d=True, enable_ai=False)
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    try:
        document = Document(demo_case.volume)
        document.add_label_map(demo_case.labels.copy())
        document.add_detections(demo_case.nodules)
        window.set_document(document)
        window.set_layout("2x2")
        view = window.volume_view
        assert isinstance(view, VolumeView) and view.isVisible() and view.document is document
        wait_for_surfaces(qtbot, view)
        label_map = document.label_maps[0]
        assert view.surface_polydata(label_map, 1) is not None  # right lung
        assert view.boxes_actor.GetMapper().GetInput().GetNumberOfLines() == 12 * len(demo_case.nodules)

        # The slice views' cursor shows in 3D ...
        target = demo_case.nodules[0].center
        document.set_cursor(target)
        np.testing.assert_allclose(view.cursor_source.GetCenter(), target)
        # ... and a click in 3D moves the cursor of every view.
        view.set_volume_visible(False)
        view.set_camera_preset("A")
        view.render()
        lung_centre = demo_case.volume.geometry.index_to_world(
            np.mean(np.argwhere(label_map.array == 1)[:, ::-1], axis=0)
        )
        x, y = view.world_to_display(lung_centre)
        picked = view.pick_display_point(int(round(x)), int(round(y)))
        assert picked is not None
        np.testing.assert_allclose(document.cursor, picked)
        assert label_map.array[tuple(document.cursor_index[::-1])] in (0, 1)  # on the lung's surface
        view.set_volume_visible(True)
        image = window.grab_views()
        assert image.save(str(artifacts_dir / "volume_view_in_main_window_2x2.png"))
    finally:
        window.close()
    assert not view.available  # closing the window released the 3D view
