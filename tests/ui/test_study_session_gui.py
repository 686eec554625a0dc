"""One study session behind the window: the 3D view draws from the slice views' display model,
and label maps opened from the menu are read in the background (progress, Cancel)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import SimpleITK as sitk
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QFileDialog

from medviewer.core import Document, LabelMap, LabelTable
from medviewer.ui.volume_view import VolumeView

from tests.ui.conftest import make_ct_phantom
from tests.ui.test_volume_view import make_document

pytestmark = pytest.mark.gui

MAGENTA, CYAN = (255, 0, 255), (0, 255, 255)


def settle(rounds: int = 3) -> None:
    for _ in range(rounds):
        QApplication.processEvents()


def tinted_pixels(pixels: np.ndarray, colour: tuple[int, int, int]) -> int:
    """Rendered pixels of a shaded surface of ``colour``: its strong channels well above its zero channel.

    Lighting scales a surface's colour; the volume rendering (bone preset) and the background are greys and beiges.
    """
    rgb = pixels.astype(int)
    strong = [c for c in range(3) if colour[c] > 128]
    weak = [c for c in range(3) if colour[c] < 128]
    low = rgb[..., strong].min(axis=-1)
    high = rgb[..., weak].max(axis=-1)
    return int(np.sum((low > 70) & (high < 0.45 * low)))


def slice_pixel(view, world) -> tuple[int, int, int]:
    image = view.grab().toImage()
    point = view.world_to_widget(world)
    ratio = image.devicePixelRatio()
    colour = image.pixelColor(int(point.x() * ratio), int(point.y() * ratio))
    return colour.red(), colour.green(), colour.blue()


@pytest.fixture
def window3d(qtbot, tmp_path, monkeypatch):
    from medviewer.ui import edit_actions
    from medviewer.ui.edit_actions import install_editing
    from medviewer.ui.main_window import MainWindow

    monkeypatch.setattr(edit_actions, "ask_unsaved_changes", lambda parent: "discard")  # no modal box at close

    main = MainWindow(persist_settings=False, enable_3d=True, enable_ai=False)
    qtbot.addWidget(main)
    install_editing(main, recovery_root=tmp_path / "recovery", autosave=False)
    main.resize(1100, 700)
    main.set_layout("2x2")
    main.show()
    qtbot.waitExposed(main)
    yield main
    main.close()


def _labelled_document() -> tuple[Document, LabelMap]:
    document = make_document()
    labels = np.zeros(document.geometry.shape, np.uint8)
    labels[16:48, 14:34, 12:30] = 1  # a block in the body, anterior of the bone rod
    table = LabelTable()
    table.add(1, "organ", MAGENTA)
    return document, document.add_label_map(LabelMap(labels, document.geometry, table, name="organs"))


def _render(view: VolumeView, qtbot) -> np.ndarray:
    qtbot.waitUntil(lambda: not view.surfaces_busy, timeout=20000)
    settle()
    return view.render_to_array()


def test_hiding_a_layer_in_the_layers_panel_hides_its_surfaces_in_3d(window3d, qtbot, artifacts_dir):
    document, label_map = _labelled_document()
    session = window3d.set_document(document)
    view = window3d.volume_view
    assert isinstance(view, VolumeView) and view.available, getattr(view, "unavailable_reason", "")
    assert view.display is window3d.display is session.display  # one display model for 2D and 3D
    view.set_camera_preset("A")
    shown = tinted_pixels(_render(view, qtbot), MAGENTA)
    assert shown > 500, shown  # the organ's surface is drawn

    tree = window3d.layer_panel.tree
    item = next(tree.topLevelItem(r) for r in range(tree.topLevelItemCount()) if "organs" in tree.topLevelItem(r).text(0))
    item.setCheckState(0, Qt.CheckState.Unchecked)  # as a click on the check box does
    assert not window3d.display.label_display(label_map).visible
    hidden = tinted_pixels(_render(view, qtbot), MAGENTA)
    assert hidden < 0.02 * shown, (hidden, shown)
    assert not view.is_label_surface_visible(label_map, 1)

    item = next(tree.topLevelItem(r) for r in range(tree.topLevelItemCount()) if "organs" in tree.topLevelItem(r).text(0))
    item.setCheckState(0, Qt.CheckState.Checked)
    assert tinted_pixels(_render(view, qtbot), MAGENTA) > 0.9 * shown
    assert window3d.grab_views().save(str(artifacts_dir / "session_layer_shown_again.png"))


def test_recolouring_a_label_changes_the_slice_views_and_the_3d_view(window3d, qtbot, artifacts_dir):
    document, label_map = _labelled_document()
    window3d.set_document(document)
    view = window3d.volume_view
    window3d.display.set_label_display(label_map, opacity=1.0)
    window3d.display.set_crosshair_visible(False)
    view.set_camera_preset("A")
    inside = document.geometry.index_to_world((20, 24, 32))
    document.set_cursor(inside)
    axial = window3d.slice_views[0]
    settle()
    assert slice_pixel(axial, inside) == MAGENTA
    before = _render(view, qtbot)
    assert tinted_pixels(before, MAGENTA) > 500 and tinted_pixels(before, CYAN) < 50

    panel = window3d.editing.label_panel
    panel.table.selectRow(panel.row_of(1))
    panel.recolor_current(CYAN)  # one undoable step of the session
    assert label_map.table[1].color == CYAN and window3d.session.undo_stack.count == 1
    settle()
    assert slice_pixel(axial, inside) == CYAN
    after = _render(view, qtbot)
    assert tinted_pixels(after, CYAN) > 0.9 * tinted_pixels(before, MAGENTA)
    assert tinted_pixels(after, MAGENTA) < 50
    assert window3d.grab_views().save(str(artifacts_dir / "session_recoloured.png"))

    window3d.editing.undo()  # Ctrl+Z: the session's history, back to magenta in both
    settle()
    assert slice_pixel(axial, inside) == MAGENTA
    assert tinted_pixels(_render(view, qtbot), MAGENTA) > 500


def _write_labels(path, document: Document, box) -> int:
    labels = np.zeros(document.geometry.shape, np.uint8)
    labels[box] = 3
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing(document.geometry.spacing)
    image.SetOrigin(document.geometry.origin)
    sitk.WriteImage(image, str(path))
    return int(labels.astype(bool).sum())


def test_open_label_map_from_the_menu_reads_in_the_background(viewer, qtbot, tmp_path, monkeypatch, errors):
    import medviewer.io

    document = viewer.open_volume(make_ct_phantom())
    path = tmp_path / "organs.nii.gz"
    count = _write_labels(path, document, (slice(4, 10), slice(10, 20), slice(8, 30)))
    threads, real_read = [], medviewer.io.read_label_layers

    def read(*args, **kwargs):
        threads.append(threading.current_thread())
        return real_read(*args, **kwargs)

    monkeypatch.setattr(medviewer.io, "read_label_layers", read)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(path), "")))
    action = next(a for a in viewer.menu("File").actions() if a.text() == "Open &label map...")
    action.trigger()
    assert document.label_maps == []  # nothing read on the UI thread
    qtbot.waitUntil(lambda: len(document.label_maps) == 1, timeout=10000)
    (layer,) = document.label_maps
    assert layer.voxel_count(3) == count == 6 * 10 * 22 and layer.name == "organs"
    assert threads and threads[0] is not threading.main_thread() and errors == []


def test_opening_a_label_map_can_be_cancelled(viewer, qtbot, tmp_path, monkeypatch, errors):
    import medviewer.io

    document = viewer.open_volume(make_ct_phantom())
    path = tmp_path / "slow.nii.gz"
    _write_labels(path, document, (slice(4, 10), slice(10, 20), slice(8, 30)))
    release = threading.Event()
    real_read = medviewer.io.read_label_layers

    def slow_read(*args, **kwargs):
        release.wait(10)
        return real_read(*args, **kwargs)

    monkeypatch.setattr(medviewer.io, "read_label_layers", slow_read)
    messages = []
    handle = viewer.open_label_map(path)
    handle.progress.connect(lambda _fraction, message: messages.append(message))
    qtbot.waitUntil(lambda: handle.state == "running", timeout=5000)
    handle.cancel()  # the progress dialog's Cancel button does this
    release.set()
    qtbot.waitUntil(lambda: handle.is_done, timeout=10000)
    settle()
    assert handle.state == "cancelled" and document.label_maps == [] and errors == []
    assert messages[:1] == ["Reading segmentation 1 of 1"]

    # a file that does not fit says so, naming the file
    release.set()
    bad = tmp_path / "bad.nii.gz"
    image = sitk.GetImageFromArray(np.zeros((3, 4, 5), np.uint8))
    sitk.WriteImage(image, str(bad))
    handle = viewer.open_label_map(bad)
    qtbot.waitUntil(lambda: handle.is_done, timeout=10000)
    settle()
    assert document.label_maps == [] and errors and errors[-1][0] == "Cannot load label map" and "bad.nii.gz" in errors[-1][1]
