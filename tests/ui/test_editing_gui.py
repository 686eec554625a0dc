"""Editing in the real main window under Xvfb: tools with real mouse events, overlay pixels,
undo/redo, shortcuts, label table, boxes, save on close, and crash recovery after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from editing_gui_helpers import drag, make_ct_volume, make_document, pixel_at, use_nifti_loader, widget_point, write_nifti
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtTest import QTest
from scipy import ndimage

from medviewer.core import DetectionStatus, Document
from medviewer.io.nnunet_dataset import NnUNetDataset
from medviewer.services.annotations import SaveTarget
from medviewer.tools import SHORTCUTS
from medviewer.ui import edit_actions
from medviewer.ui.edit_actions import install_editing
from medviewer.ui.main_window import MainWindow

pytestmark = pytest.mark.gui
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    # pytest-qt closes the window before fixtures are finalised: never block on the question
    monkeypatch.setattr(edit_actions, "ask_unsaved_changes", lambda parent: "discard")
    monkeypatch.setattr(edit_actions, "ask_restore", lambda parent, entry: "later")
    window = MainWindow(persist_settings=False, enable_3d=False)
    qtbot.addWidget(window)
    editing = install_editing(window, recovery_root=tmp_path / "recovery")
    editing.save_target = SaveTarget(520, "GuiTest", tmp_path / "datasets")
    window.resize(1400, 900)
    window.show()
    qtbot.waitExposed(window)
    yield window
    editing.autosave_monitor.stop()


def _open(window, qtbot, document: Document | None = None) -> Document:
    document = document or make_document()
    window.set_document(document)
    qtbot.wait(50)
    window.reset_views()
    qtbot.wait(50)
    return document


def _axial(window):
    return next(v for v in window.slice_views if v.plane == "axial")


def test_paint_drag_shows_overlay_and_undo_redo(window, qtbot, artifacts_dir):
    document = _open(window, qtbot)
    editing = window.editing
    view = _axial(window)
    k = view.slice_index
    before = pixel_at(view, (30, 60, k))
    assert before.red() == before.green() == before.blue()  # grey image
    editing.activate_tool("paint")
    assert window.active_tool is editing.controller.tool("paint")
    drag(view, [(20, 60, k), (40, 62, k), (76, 64, k)])  # a fast drag: only three positions
    labels = document.active_label_map.array
    painted = labels[k] == 1
    assert painted.sum() > 200 and ndimage.label(painted)[1] == 1  # one connected band, no gaps
    assert labels.sum() == painted.sum()  # only on the displayed slice
    assert painted[60, 20] and painted[64, 76]
    after = pixel_at(view, (30, 60, k))
    # label 1's colour (128, 174, 128) blended over the grey: green now dominates
    assert after.green() - after.red() > 10 and after.green() - after.blue() > 10
    window.save_screenshot(artifacts_dir / "editing_paint.png")
    assert window.session.undo_stack.count == 1 and document.modified

    assert editing.undo_action.isEnabled() and not editing.redo_action.isEnabled()
    editing.undo_action.trigger()
    qtbot.wait(20)
    assert not labels.any()
    restored = pixel_at(view, (30, 60, k))
    assert restored.red() == restored.green() == restored.blue()
    editing.redo_action.trigger()
    assert (labels[k] == 1).sum() == painted.sum()


def test_shortcuts_match_the_table_and_work_from_the_keyboard(window, qtbot):
    _open(window, qtbot)
    editing = window.editing
    for name, action in editing.tool_actions.items():
        assert action.shortcut() == QKeySequence(SHORTCUTS[name])
    assert QKeySequence("Ctrl+Z") in editing.undo_action.shortcuts()
    assert {QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")} <= set(editing.redo_action.shortcuts())
    window.activateWindow()
    view = _axial(window)
    view.setFocus()
    qtbot.waitUntil(lambda: window.isActiveWindow(), timeout=3000)
    QTest.keyClick(view.viewport(), Qt.Key.Key_B)
    assert window.active_tool is editing.controller.tool("paint")
    QTest.keyClick(view.viewport(), Qt.Key.Key_BracketRight)
    assert editing.controller.brush_radius_mm == pytest.approx(6.25)
    assert editing.tool_panel.radius_spin.value() == pytest.approx(6.25)
    k = view.slice_index
    drag(view, [(48, 48, k)])
    assert window.document.active_label_map.array.any()
    QTest.keyClick(view.viewport(), Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not window.document.active_label_map.array.any()
    QTest.keyClick(view.viewport(), Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert window.document.active_label_map.array.any()
    QTest.keyClick(view.viewport(), Qt.Key.Key_D)
    assert window.active_tool is editing.controller.tool("box")


def test_threshold_preview_and_fill_in_the_view(window, qtbot, artifacts_dir):
    document = _open(window, qtbot)
    editing = window.editing
    view = _axial(window)
    k = view.slice_index
    threshold = editing.controller.tool("threshold_paint")
    threshold.lower, threshold.upper = 200, 300  # only the 250 HU block
    editing.activate_tool("threshold_paint")
    QTest.mouseMove(view.viewport(), widget_point(view, (50, 38, k)))
    qtbot.wait(20)
    preview = threshold.preview()
    assert preview is not None and preview.mask.sum() == 15 * 20
    window.save_screenshot(artifacts_dir / "editing_threshold_preview.png")
    editing.controller.set_brush_radius(30.0)
    drag(view, [(50, 38, k)])
    labels = document.active_label_map.array
    assert (labels[k] == 1).sum() == 15 * 20 and (labels[k, 30:45, 40:60] == 1).all()
    # flood fill of the empty body around the block with label 2, bounded to soft tissue
    editing.label_panel.add_label("body")
    editing.controller.tool("fill").intensity_range = (0, 100)
    assert editing.controller.session.active_value == 2
    editing.activate_tool("fill")
    drag(view, [(48, 70, k)])
    body = np.zeros((96, 96), bool)
    rows, cols = np.ogrid[:96, :96]
    body[(rows - 48) ** 2 + (cols - 48) ** 2 < 40**2] = True
    assert (labels[k] == 2).sum() == body.sum() - 15 * 20
    window.save_screenshot(artifacts_dir / "editing_fill.png")


def test_polygon_and_operations_from_menus(window, qtbot, monkeypatch):
    document = _open(window, qtbot)
    editing = window.editing
    view = _axial(window)
    k = view.slice_index
    editing.activate_tool("polygon")
    for point in [(30.5, 30.5, k), (40.5, 30.5, k), (40.5, 40.5, k), (30.5, 40.5, k)]:
        drag(view, [point])  # clicks add vertices; a double click on the last one closes and fills
    QTest.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                      widget_point(view, (30.5, 40.5, k)))
    labels = document.active_label_map.array
    assert (labels[k] == 1).sum() == 100
    # draw the same square two slices away and fill between them from the operation action
    document.edit_labels(document.active_label_map, np.s_[k + 4:k + 5, 31:41, 31:41], 1)
    handle = editing.run_operation("fill_between_slices")  # computed on a worker thread
    qtbot.waitUntil(lambda: window.session.undo_stack.undo_text == "Fill between slices", timeout=10000)
    assert handle.is_done
    assert all((labels[s] == 1).sum() == 100 for s in range(k, k + 5))
    # grow from seeds needs two labels: a clear message, no change
    shown = []
    monkeypatch.setattr(edit_actions.dialogs, "show_error", lambda parent, title, message, details="": shown.append(message))
    assert editing.run_operation("grow_from_seeds") is None and "two labels" in shown[-1]


def test_box_drawing_and_review_keys(window, qtbot, artifacts_dir):
    document = _open(window, qtbot)
    editing = window.editing
    view = _axial(window)
    k = view.slice_index
    editing.activate_tool("box")
    drag(view, [(20, 20, k), (26, 24, k), (30, 28, k)])
    (box,) = document.detections
    low, high = box.voxel_box(document.geometry)
    assert low.tolist() == [20, 20, k] and high.tolist() == [30, 28, k]
    window.save_screenshot(artifacts_dir / "editing_box.png")
    editing.box_action("reject")
    assert box.status is DetectionStatus.REJECTED
    editing.box_action("accept")
    assert box.status is DetectionStatus.ACCEPTED
    editing.undo()
    assert box.status is DetectionStatus.REJECTED
    editing.box_action("delete")
    assert document.detections == []
    editing.undo()
    assert document.detections == [box]


def test_label_table_panel_edits_are_undoable(window, qtbot, artifacts_dir):
    document = _open(window, qtbot)
    editing = window.editing
    view = _axial(window)
    k = view.slice_index
    editing.activate_tool("paint")
    drag(view, [(48, 48, k)])
    panel = editing.label_panel
    assert panel.table.rowCount() == 1
    panel.table.item(0, 2).setText("liver")
    assert document.active_label_map.table[1].name == "liver"
    value = panel.add_label("tumour")
    assert value == 2 and panel.table.rowCount() == 2 and panel.current_value() == 2
    drag(view, [(60, 48, k)])
    panel.table.setCurrentCell(panel.row_of(2), 2)
    panel.merge_current(target=1)
    assert 2 not in document.active_label_map.table and not (document.active_label_map.array == 2).any()
    panel.overwrite_combo.setCurrentIndex(1)
    assert editing.controller.session.overwrite.value == "background"
    window.save_screenshot(artifacts_dir / "editing_labels_panel.png")
    editing.undo()
    assert (document.active_label_map.array == 2).any() and panel.table.rowCount() == 2


def test_save_labels_and_open_them_again_over_the_image(window, qtbot, tmp_path, monkeypatch):
    document = _open(window, qtbot)
    editing = window.editing
    view = _axial(window)
    editing.activate_tool("paint")
    drag(view, [(30, 40, view.slice_index), (60, 45, view.slice_index)])
    path = tmp_path / "labels.nii.gz"
    assert editing.save_labels(path)
    reopened = window.load_label_map(path)
    assert reopened is not None and len(document.label_maps) == 2
    np.testing.assert_array_equal(reopened.array, document.label_maps[0].array)
    # a label file of another image is refused with a clear message
    shown = []
    monkeypatch.setattr(edit_actions.dialogs, "show_error", lambda parent, title, message, details="": shown.append(message))
    other = Document(make_ct_volume())
    other.volume.geometry = other.volume.geometry.replace(spacing=(1.0, 1.0, 3.0))
    window.set_document(other)
    assert window.load_label_map(path) is None and "spacing" in shown[-1]


def test_export_dicom_seg_of_a_corrected_model_proposal(window, qtbot, tmp_path):
    import copy

    import highdicom as hd
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    from medviewer.core import Geometry, LabelMap, LabelTable, SeriesInfo, Volume

    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    orientation = np.asarray(template.ImageOrientationPatient, float)
    normal = np.cross(orientation[:3], orientation[3:])
    origin = np.asarray(template.ImagePositionPatient, float)
    files, series_uid = [], generate_uid()
    for n in range(3):
        ds = copy.deepcopy(template)
        ds.SeriesInstanceUID, ds.SOPInstanceUID = series_uid, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImagePositionPatient = [float(v) for v in origin + 2.0 * n * normal]
        files.append(str(tmp_path / f"s{n}.dcm"))
        ds.save_as(files[-1])
    spacing = (float(template.PixelSpacing[1]), float(template.PixelSpacing[0]), 2.0)
    geometry = Geometry.from_matrix((128, 128, 3), spacing, origin, np.stack([orientation[:3], orientation[3:], normal], 1))
    volume = Volume(np.zeros(geometry.shape, np.int16), geometry, "CT")
    document = _open(window, qtbot, Document(volume, SeriesInfo(uid=series_uid, files=files, geometry=geometry)))
    proposal = np.zeros(geometry.shape, np.uint8)
    proposal[1, 40:60, 40:60] = 1
    document.add_label_map(LabelMap(proposal, geometry, LabelTable.from_names({1: "nodule"}), "Nodules", "nodule-net 2.0"))
    document.edit_labels(document.active_label_map, np.s_[1:2, 40:45, 40:60], 0)  # the correction
    assert window.editing.export_seg(tmp_path / "seg.dcm")
    seg = hd.seg.segread(tmp_path / "seg.dcm")
    description = seg.get_segment_description(1)
    assert description.segment_label == "nodule"
    assert description.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC
    assert description.algorithm_identification[0].AlgorithmName == "nodule-net"
    pixels = seg.get_pixels_by_source_instance([pydicom.dcmread(files[1]).SOPInstanceUID], combine_segments=True)
    assert int(pixels.sum()) == 15 * 20


def test_close_with_unsaved_changes_asks(window, qtbot, monkeypatch, tmp_path):
    document = _open(window, qtbot)
    editing = window.editing
    view = _axial(window)
    editing.activate_tool("paint")
    drag(view, [(48, 48, view.slice_index)])
    editing.controller.autosaver.autosave_now()
    recovery_folder = editing.controller.autosaver.folder
    assert recovery_folder.is_dir()
    answers = ["cancel"]
    monkeypatch.setattr(edit_actions, "ask_unsaved_changes", lambda parent: answers.pop(0))
    window.close()
    assert window.isVisible() and document.modified
    answers.append("save")
    window.close()
    assert not window.isVisible() and not document.modified
    dataset = NnUNetDataset(tmp_path / "datasets" / "Dataset520_GuiTest")
    (case,) = dataset.case_ids()
    _, labels = dataset.load_case(case)
    np.testing.assert_array_equal(labels.array, document.active_label_map.array)
    assert not recovery_folder.exists()



def test_saved_provenance_names_the_annotator(window, qtbot, monkeypatch, tmp_path):
    """The settings' annotator name goes into annotations.jsonl; without one, the login name does."""
    _open(window, qtbot)
    editing = window.editing
    view = _axial(window)
    editing.activate_tool("paint")
    for variable in ("USER", "USERNAME", "LNAME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("LOGNAME", "rad-fellow")
    drag(view, [(48, 48, view.slice_index)])
    assert editing.save_annotations()
    window.set_annotator_name("Dr. A. Annotator")
    drag(view, [(30, 40, view.slice_index)])
    assert editing.save_annotations()
    lines = (tmp_path / "datasets" / "Dataset520_GuiTest" / "annotations.jsonl").read_text().splitlines()
    assert [json.loads(line)["annotator"] for line in lines] == ["rad-fellow", "Dr. A. Annotator"]


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import numpy as np
    sys.path.insert(0, {helpers!r})
    from editing_gui_helpers import drag, use_nifti_loader
    from medviewer.ui.app import create_application
    from medviewer.ui.main_window import MainWindow
    from medviewer.ui.edit_actions import install_editing

    app = create_application()
    window = MainWindow(persist_settings=False, enable_3d=False)
    editing = install_editing(window, recovery_root=Path(sys.argv[1]))
    use_nifti_loader(window)
    window.resize(1200, 800)
    window.show()
    window.open_path(sys.argv[2])
    while window.document is None:
        app.processEvents()
    for _ in range(20):
        app.processEvents()
    window.reset_views()
    app.processEvents()
    view = next(v for v in window.slice_views if v.plane == "axial")
    editing.activate_tool("paint")
    k = view.slice_index
    drag(view, [(20, 48, k), (70, 52, k)])
    editing.activate_tool("box")
    drag(view, [(30, 30, k), (40, 36, k)])
    editing.autosave()
    editing.controller.autosaver.wait(30)
    np.save(sys.argv[3], window.document.active_label_map.array)
    print("painted", int(window.document.active_label_map.array.sum()), len(window.document.detections), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_crash_recovery_end_to_end(window, qtbot, monkeypatch, tmp_path, artifacts_dir):
    image_path = write_nifti(tmp_path / "ct.nii.gz", make_ct_volume())
    recovery = tmp_path / "recovery"
    expected_path = tmp_path / "expected.npy"
    script = CHILD.format(helpers=str(Path(__file__).parent))
    result = subprocess.run(
        [sys.executable, "-c", script, str(recovery), str(image_path), str(expected_path)],
        cwd=REPO, capture_output=True, text=True, timeout=180,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == -signal.SIGKILL, result.stdout + result.stderr
    assert result.stdout.startswith("painted") and result.stdout.split()[2] == "1"

    # the next start: the same recovery folder, the user says "restore"
    editing = window.editing
    editing.recovery_root = recovery
    use_nifti_loader(window)
    offered = []
    monkeypatch.setattr(edit_actions, "ask_restore", lambda parent, entry: offered.append(entry) or "restore")
    entry = editing.offer_recovery()
    assert entry is not None and offered == [entry] and entry.source_path == str(image_path)
    qtbot.waitUntil(lambda: window.document is not None and window.document.active_label_map is not None, timeout=30000)
    expected = np.load(expected_path)
    np.testing.assert_array_equal(window.document.active_label_map.array, expected)
    assert len(window.document.detections) == 1 and window.document.modified
    assert not entry.folder.exists()  # adopted by this session's autosave
    assert (editing.controller.autosaver.folder / "manifest.json").is_file()
    window.reset_views()
    qtbot.wait(50)
    window.save_screenshot(artifacts_dir / "editing_restored_after_crash.png")
