"""Main window behaviour: opening in the background, cancel, layouts, 2D images, bad input, screenshots."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import SimpleITK as sitk
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QLabel

from medviewer.core import Detection, Geometry, LabelMap, SeriesInfo, Volume
from medviewer.core.errors import CorruptFileError
from medviewer.services.settings import load_settings
from medviewer.tools.base import Tool

from tests.ui.conftest import make_ct_phantom
from tests.ui.test_viewer import grey, pixel, settle, wheel

pytestmark = pytest.mark.gui


def fake_source(volumes: dict[str, Volume], slow: set[str] = frozenset(), started: threading.Event | None = None):
    """scan/load functions serving in-memory volumes; 'slow' paths take ~4 s unless cancelled."""

    def scan(path, progress, cancel):
        if path in slow:
            if started is not None:
                started.set()
            for step in range(400):
                cancel.raise_if_cancelled()
                progress(step / 400, "scanning")
                time.sleep(0.01)
        if path not in volumes:
            raise CorruptFileError("not an image", path)
        return [SeriesInfo(uid=path, description=path, modality="CT", files=[path], geometry=volumes[path].geometry, source_path=path)]

    def load(series, progress, cancel):
        cancel.raise_if_cancelled()
        return volumes[series.uid]

    return scan, load


def test_open_path_in_background_lists_series_and_shows_them(viewer, qtbot):
    volume = make_ct_phantom()
    viewer.scan_function, viewer.load_function = fake_source({"/data/ct": volume})
    with qtbot.waitSignal(viewer.document_changed, timeout=5000):
        viewer.open_path("/data/ct")
    assert viewer.document.volume is volume
    assert viewer.study_browser.tree.topLevelItemCount() == 1
    assert viewer.study_browser.tree.topLevelItem(0).text(2) == "64x48x24"
    assert "phantom CT" in viewer.windowTitle()
    assert viewer.settings.recent_files[0].endswith("ct")


def test_opening_a_second_series_while_the_first_loads_cancels_the_first(viewer, qtbot):
    first, second = make_ct_phantom(), make_ct_phantom(spacing=(1, 1, 1))
    started = threading.Event()
    viewer.scan_function, viewer.load_function = fake_source({"/slow": first, "/fast": second}, slow={"/slow"}, started=started)
    shown = []
    viewer.document_changed.connect(lambda doc: shown.append(doc.volume))
    slow_job = viewer.open_path("/slow")
    assert started.wait(5)
    assert viewer.loading_job is slow_job
    t0 = time.monotonic()
    with qtbot.waitSignal(slow_job.cancelled, timeout=3000):
        viewer.open_path("/fast")
    qtbot.waitUntil(lambda: viewer.document is not None, timeout=5000)
    assert time.monotonic() - t0 < 2.0
    qtbot.wait(100)
    assert shown == [second]  # the first result never arrives
    assert viewer.loading_job is None


def test_load_errors_are_shown_in_a_dialog(viewer, qtbot, errors):
    viewer.scan_function, viewer.load_function = fake_source({})
    job = viewer.open_path("/broken.nii.gz")
    qtbot.waitUntil(lambda: job.is_done, timeout=5000)
    qtbot.waitUntil(lambda: bool(errors), timeout=2000)
    assert errors == [("Cannot open", "/broken.nii.gz: not an image")]
    assert viewer.document is None
    assert "/broken.nii.gz" not in viewer.settings.recent_files


def test_label_map_with_mismatched_geometry_is_refused_with_a_clear_error(viewer, tmp_path, errors):
    document = viewer.open_volume(make_ct_phantom())
    good = sitk.GetImageFromArray(np.zeros((24, 48, 64), np.uint8))
    good.SetSpacing(document.geometry.spacing)
    good.SetOrigin(document.geometry.origin)
    sitk.WriteImage(good, str(tmp_path / "good.nii.gz"))
    bad = sitk.GetImageFromArray(np.zeros((24, 48, 64), np.uint8))
    bad.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(bad, str(tmp_path / "bad.nii.gz"))

    assert viewer.load_label_map(tmp_path / "bad.nii.gz") is None
    assert len(errors) == 1 and errors[0][0] == "Cannot load label map"
    assert "bad.nii.gz" in errors[0][1] and "geometry" in errors[0][1] and "spacing" in errors[0][1]
    assert document.label_maps == []
    wrong_shape = LabelMap(np.zeros((2, 3, 4), np.uint8), Geometry((4, 3, 2)))
    assert viewer.add_label_map(wrong_shape) is None and len(errors) == 2
    assert viewer.load_label_map(tmp_path / "good.nii.gz").name == "good"
    assert len(document.label_maps) == 1 and len(errors) == 2


def test_single_slice_volume_and_radiograph_open_in_one_view(viewer):
    slab = np.arange(40 * 50, dtype=np.int16).reshape(1, 40, 50)
    document = viewer.open_volume(Volume(slab, Geometry((50, 40, 1), (0.2, 0.2, 1.0)), "CT"))
    axial, coronal, sagittal = viewer.slice_views
    settle()
    assert axial.isVisible() and not coronal.isVisible() and not sagittal.isVisible()
    wheel(axial, 3)  # nothing to scroll to, nothing breaks
    assert axial.slice_index == 0 and axial.overlay_text()["top_left"].count("1 / 1") == 1
    viewer.set_layout("2x2")
    assert axial.isVisible() and not coronal.isVisible()

    # A radiograph stored as a coronal image (DICOM CR/DX orientation) is shown in the coronal view.
    radiograph = np.zeros((60, 40), np.uint16)
    radiograph[:10, :10] = 4000  # top-left corner as stored: patient's right shoulder, superior
    geometry = Geometry((40, 60, 1), (0.3, 0.3, 1.0), direction=(1, 0, 0, 0, 0, 1, 0, -1, 0))
    viewer.open_volume(Volume(radiograph, geometry, "DX"))
    viewer.display.set_crosshair_visible(False)
    viewer.display.set_window(2000, 4000)
    settle()
    assert coronal.isVisible() and not axial.isVisible()
    assert coronal.letters == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert grey(coronal, (3, 3, 0)) == 255 and grey(coronal, (30, 50, 0)) == 0
    viewer.set_layout("1x3")
    assert coronal.isVisible() and not axial.isVisible()
    viewer.open_volume(make_ct_phantom())
    settle()
    assert all(view.isVisible() for view in viewer.slice_views)


def test_very_small_window_and_tiny_views_still_work(viewer, qtbot):
    viewer.open_volume(make_ct_phantom())
    viewer.resize(220, 160)
    settle()
    for view in viewer.slice_views:
        assert view.width() >= 1 and view.height() >= 1
        view.reset_view()
        assert view.grab().width() == view.width()
    wheel(viewer.slice_views[0], 1)
    viewer.slice_views[0].resize(40, 40)
    settle()
    assert viewer.grab_views().width() > 0


def test_layouts_and_3d_placeholder(viewer):
    viewer.open_volume(make_ct_phantom())
    axial, coronal, sagittal = viewer.slice_views
    viewer.set_layout("2x2")
    settle()
    assert isinstance(viewer.volume_view, QLabel) and viewer.volume_view.text() == "3D view: coming"
    assert viewer.volume_view.isVisible() and all(v.isVisible() for v in viewer.slice_views)
    coronal.activated.emit(coronal)
    viewer.set_layout("1x1")
    settle()
    assert coronal.isVisible() and not axial.isVisible() and not viewer.volume_view.isVisible()
    viewer.set_layout("1x3")
    settle()
    assert all(v.isVisible() for v in viewer.slice_views) and not viewer.volume_view.isVisible()
    with pytest.raises(ValueError):
        viewer.set_layout("3x3")


def test_extension_api_menus_panels_and_active_tool(viewer):
    for name in ("File", "View", "Tools", "AI", "Help"):
        assert viewer.menu(name).title().replace("&", "") == name
    with pytest.raises(KeyError):
        viewer.menu("Edit me")
    dock = viewer.add_panel(QLabel("hello"), "My panel", "bottom")
    assert viewer.dockWidgetArea(dock) == Qt.DockWidgetArea.BottomDockWidgetArea
    assert dock.toggleViewAction() in viewer._panels_menu.actions()
    changes = []
    viewer.active_tool_changed.connect(changes.append)
    tool = Tool()
    viewer.set_active_tool(tool)
    assert all(view.tool is tool for view in viewer.slice_views) and changes == [tool]
    viewer.set_interaction_mode("pan")
    assert viewer.active_tool is None and changes == [tool, None]
    assert all(view.interaction_mode == "pan" for view in viewer.slice_views)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # PySide6 flags the only QDragEnterEvent constructor
def test_drop_a_file_opens_it(viewer, qtbot):
    volume = make_ct_phantom()
    viewer.scan_function, viewer.load_function = fake_source({"/tmp/dropped.nii.gz": volume})
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile("/tmp/dropped.nii.gz")])
    event = QDropEvent(QPointF(100, 100), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    enter = QDragEnterEvent(QPoint(100, 100), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    viewer.dragEnterEvent(enter)
    assert enter.isAccepted()
    with qtbot.waitSignal(viewer.document_changed, timeout=5000):
        viewer.dropEvent(event)  # Qt delivers drops only inside a real drag; call the handler as Qt would
    assert viewer.document.volume is volume



@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # PySide6 flags the only QDragEnterEvent constructor
def test_drop_a_dicom_seg_puts_it_over_the_open_series(viewer, qtbot, tmp_path):
    from medviewer.io.dicom_seg import export_dicom_seg, series_files
    from tests.io.test_dicom_seg import _labels, write_ct_series

    folder = tmp_path / "series"
    series_uid, geometry = write_ct_series(folder)
    seg_path = export_dicom_seg(_labels(geometry), series_files([folder], series_uid), tmp_path / "seg.dcm")
    with qtbot.waitSignal(viewer.document_changed, timeout=20000):
        viewer.open_path(str(folder))
    document = viewer.document
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(seg_path))])
    viewer.dropEvent(QDropEvent(QPointF(100, 100), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier))
    assert document.label_maps == []  # read in the background, not on the UI thread
    qtbot.waitUntil(lambda: len(document.label_maps) == 1, timeout=20000)
    assert viewer.document is document  # the image stays; the SEG is a new layer over it
    (layer,) = document.label_maps
    assert layer.source == "DICOM SEG" and layer.voxel_count(1) == 202 and layer.voxel_count(2) == 20
    assert [layer.table[n].name for n in (1, 2)] == ["liver", "lesion"]


def test_settings_remember_layout_and_recent_files(qtbot, medviewer_home):
    from medviewer.ui.main_window import MainWindow

    first = MainWindow(persist_settings=True, enable_3d=False)
    qtbot.addWidget(first)
    first.set_layout("1x1")
    first.settings.add_recent_file("/data/study1")
    first.close()
    assert load_settings().layout == "1x1"
    second = MainWindow(persist_settings=True, enable_3d=False)
    qtbot.addWidget(second)
    assert second.layout_name == "1x1"
    assert [a.text() for a in second._recent_menu.actions()][0].endswith("study1")
    second.set_layout("1x3")
    second.close()


def test_screenshots_of_1x3_and_2x2_layouts(viewer, artifacts_dir, tmp_path):
    volume = make_ct_phantom()
    document = viewer.open_volume(volume)
    labels = np.zeros(volume.array.shape, np.uint8)
    labels[6:18, 12:30, 10:26] = 1  # the lung block
    labels[8:16, 20:34, 44:56] = 2  # the bone block
    document.add_label_map(LabelMap(labels, volume.geometry, name="phantom labels"))
    document.add_detections([Detection.from_index_bounds(volume.geometry, [44, 20, 8], [56, 34, 16], label="bone", score=0.91)])
    document.set_cursor_index((50, 27, 12))
    for layout in ("1x3", "2x2"):
        viewer.set_layout(layout)
        settle()
        path = viewer.save_screenshot(artifacts_dir / f"viewer_{layout}.png")
        image = QImage(str(path))
        assert image.width() == viewer.centralWidget().width() and image.height() > 100
    # Saving keeps the extension and writes atomically (no temporary files left behind).
    saved = viewer.save_screenshot(tmp_path / "shot")
    assert saved.name == "shot.png" and [p.name for p in tmp_path.iterdir()] == ["shot.png"]
    # The label colour of the bone block is visible in the screenshot's axial view.
    assert pixel(viewer.slice_views[0], (50, 27, 12)) != pixel(viewer.slice_views[0], (38, 38, 12))


def test_study_browser_lists_real_files_with_thumbnails_and_loads_on_double_click(viewer, qtbot, tmp_path, monkeypatch):
    from medviewer.io import write_volume

    thumbnails = {}
    original = viewer.study_browser.set_thumbnail
    monkeypatch.setattr(viewer.study_browser, "set_thumbnail",
                        lambda series, pixmap: (thumbnails.__setitem__(series.description, pixmap.size().toTuple()), original(series, pixmap)))

    ct = make_ct_phantom()
    small = Volume(np.full((3, 20, 30), 500, np.int16), Geometry((30, 20, 3)), "MR")
    write_volume(ct, tmp_path / "a_ct.nii.gz")
    write_volume(small, tmp_path / "b_small.nii.gz")
    with qtbot.waitSignal(viewer.document_changed, timeout=20000):
        viewer.open_path(tmp_path)
    browser = viewer.study_browser
    assert browser.tree.topLevelItemCount() == 2
    assert viewer.document.volume.geometry.size == (64, 48, 24)  # the largest series opens first
    qtbot.waitUntil(lambda: len(thumbnails) == 2, timeout=5000)
    assert thumbnails["b_small"] == (30, 20) and max(thumbnails["a_ct"]) == 64
    row = next(r for r in range(2) if browser.tree.topLevelItem(r).text(2) == "30x20x3")
    assert not browser.tree.topLevelItem(row).font(0).bold()
    with qtbot.waitSignal(viewer.document_changed, timeout=20000):
        browser.tree.itemActivated.emit(browser.tree.topLevelItem(row), 0)
    assert viewer.document.volume.geometry.size == (30, 20, 3)
    assert browser.tree.topLevelItem(row).font(0).bold()


def test_radiograph_without_orientation_is_not_called_axial(viewer):
    from medviewer.core import VolumeMetadata

    film = Volume(np.zeros((1, 60, 40), np.uint16), Geometry((40, 60, 1), (0.2, 0.2, 1.0)), "DX",
                  VolumeMetadata(extra={"patient_orientation": ["L", "F"]}))
    viewer.open_volume(film)
    settle()
    axial = viewer.slice_views[0]
    text = axial.overlay_text()
    assert axial.isVisible() and text["top_left"].startswith("Image DX")
    assert axial.letters == {"left": "R", "right": "L", "top": "H", "bottom": "F"}
    viewer.open_volume(Volume(np.zeros((1, 60, 40), np.uint8), Geometry((40, 60, 1)), "", VolumeMetadata(extra={"two_dimensional": True})))
    settle()
    assert axial.letters == {"left": "", "right": "", "top": "", "bottom": ""}


def test_sagittal_view_stays_exact_while_scrolling_and_editing(viewer):
    """The sagittal view reads slabs of 8 neighbouring slices (int16): pixels must still be exact."""
    from medviewer.core.labels import DEFAULT_COLORS

    from tests.ui.test_viewer import grey as grey_at

    volume = make_ct_phantom()  # bone block at i 44..55, lung block at i 10..25
    document = viewer.open_volume(volume)
    viewer.display.set_crosshair_visible(False)
    sagittal = viewer.slice_views[2]
    expected_grey = {-1000: 0, -850: 0, 40: 128, 700: 255}
    for i in [*range(0, 64, 5), 63, 47, 48, 44, 43, 12]:  # forwards, then backwards across slab borders
        document.set_cursor_index((i, 27, 12))
        assert sagittal.slice_index == i
        for j, k in ((27, 12), (15, 10), (40, 3)):
            assert grey_at(sagittal, (i, j, k)) == expected_grey[int(volume.array[k, j, i])], (i, j, k)

    labels = np.zeros(volume.array.shape, np.uint8)
    labels[4:8, 8:32, 41] = 1
    label_map = document.add_label_map(LabelMap(labels, volume.geometry, name="edits"))
    viewer.display.set_label_display(label_map, opacity=1.0)
    color = DEFAULT_COLORS[0]
    document.set_cursor_index((41, 20, 6))
    assert pixel(sagittal, (41, 20, 6)) == color and pixel(sagittal, (41, 20, 9)) != color
    # An edit of a neighbouring slice in the same slab, not displayed: the slab is patched.
    document.edit_labels(label_map, np.s_[6:7, 20:21, 44:45], 1)
    document.set_cursor_index((44, 20, 6))
    assert pixel(sagittal, (44, 20, 6)) == color and grey_at(sagittal, (44, 20, 8)) == 255  # bone below it
    assert grey_at(sagittal, (44, 21, 6)) == 128
    document.edit_labels(label_map, np.s_[6:7, 20:21, 44:45], 0)  # erasing on the displayed slice redraws it
    assert grey_at(sagittal, (44, 20, 6)) == 128


@pytest.mark.parametrize(("orientation", "letters"), [
    (("L", "F"), {"left": "R", "right": "L", "top": "H", "bottom": "F"}),
    (("R", "H"), {"left": "L", "right": "R", "top": "F", "bottom": "H"}),
])
def test_dicom_radiograph_shows_its_patient_orientation_letters(viewer, qtbot, tmp_path, orientation, letters):
    from medviewer.io.dicom_write import write_dicom_radiograph

    film = np.full((160, 120), 500, np.uint16)
    film[:30, :30] = 3000
    path = write_dicom_radiograph(film, tmp_path / "chest.dcm", (0.4, 0.4), patient_orientation=orientation)
    with qtbot.waitSignal(viewer.document_changed, timeout=20000):
        viewer.open_path(path)  # the real scan and load of a DX file (no ImageOrientationPatient)
    settle()
    assert viewer.document.volume.metadata.extra["patient_orientation"] == list(orientation)
    (view,) = [v for v in viewer.slice_views if v.isVisible()]
    assert view.letters == letters and view.overlay_text()["top_left"].startswith("Image DX")
    # Each letter is drawn (orange pixels) at its edge of the view.
    picture = view.grab().toImage()
    for edge, text in view.overlay_texts.letters.items():
        box = text.geometry()
        orange = 0
        for y in range(box.top(), box.bottom() + 1):
            for x in range(box.left(), box.right() + 1):
                c = picture.pixelColor(x, y)
                orange += c.red() > 200 and 120 < c.green() < 210 and c.blue() < 80
        assert orange >= 5, edge
    width, height = view.width(), view.height()
    edges = {edge: text.geometry() for edge, text in view.overlay_texts.letters.items()}
    assert edges["left"].left() < 20 and edges["right"].right() > width - 20
    assert edges["top"].top() < 40 and edges["bottom"].bottom() > height - 40


def test_a_dicom_seg_in_the_opened_folder_comes_with_its_series(viewer, qtbot, tmp_path):
    """As in 3D Slicer: a SEG next to the slices it was drawn on opens as a label layer with them."""
    from medviewer.io.dicom_seg import export_dicom_seg, series_files
    from tests.io.test_dicom_seg import _labels, write_ct_series

    folder = tmp_path / "study"
    series_uid, geometry = write_ct_series(folder / "ct")
    export_dicom_seg(_labels(geometry), series_files([folder / "ct"], series_uid), folder / "seg.dcm")
    write_ct_series(folder / "other")  # another series of the study (smaller, so not opened first): the SEG is not its
    for name in ("slice0.dcm", "slice4.dcm"):
        (folder / "other" / name).unlink()
    with qtbot.waitSignal(viewer.document_changed, timeout=20000):
        viewer.open_path(str(folder))
    qtbot.waitUntil(lambda: len(viewer.document.label_maps) == 1, timeout=20000)
    assert viewer.document.volume.metadata.series_uid == series_uid
    (layer,) = viewer.document.label_maps
    assert layer.voxel_count(1) == 202 and layer.voxel_count(2) == 20
    other = next(info for info in viewer.study_browser.series if info.uid != viewer.document.series.uid)
    with qtbot.waitSignal(viewer.document_changed, timeout=20000):
        viewer.load_series(other)
    qtbot.wait(500)
    assert viewer.document.label_maps == []


def test_an_rt_structure_set_in_the_opened_folder_comes_with_its_series(viewer, qtbot, tmp_path):
    """Overlapping structures (BODY around the liver) arrive as two label layers, no voxel lost."""
    from tests.io.test_dicom_rtstruct import write_study

    folder, _series_uid, _geometry = write_study(tmp_path)  # the io test's study: CT slices + RTSTRUCT
    with qtbot.waitSignal(viewer.document_changed, timeout=20000):
        viewer.open_path(str(folder))
    qtbot.waitUntil(lambda: len(viewer.document.label_maps) == 2, timeout=20000)
    first, second = viewer.document.label_maps
    assert first.voxel_count(1) == 390 and first.voxel_count(2) == 20 and second.voxel_count(1) == 95 * 95 * 3
