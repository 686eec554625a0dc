"""Unsaved label/box edits when another study replaces the open one, or the window closes (issue 5).

Opening another file, folder, series (study browser) or the demo, and closing the
window, ask Save / Discard / Cancel: Save writes the annotation dataset case, Discard
drops the edits' recovery autosave, Cancel keeps everything as it was. The question is
answered programmatically (``medviewer.ui.edit_actions.ask_unsaved_changes``).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from medviewer.io.nnunet_dataset import NnUNetDataset
from medviewer.services.annotations import SaveTarget
from medviewer.services.recovery import list_recoverable
from medviewer.ui import edit_actions
from medviewer.ui.edit_actions import install_editing

from tests.ui.editing_gui_helpers import drag, make_ct_volume
from tests.ui.test_main_window import fake_source

pytestmark = pytest.mark.gui


class Answers:
    """Stands in for the Save / Discard / Cancel question: gives queued answers, counts questions."""

    def __init__(self) -> None:
        self.queue: list[str] = []
        self.asked = 0

    def __call__(self, parent) -> str:
        self.asked += 1
        return self.queue.pop(0) if self.queue else "discard"  # "discard" lets the fixture close the window


@pytest.fixture
def answers(monkeypatch) -> Answers:
    answer = Answers()
    monkeypatch.setattr(edit_actions, "ask_unsaved_changes", answer)
    monkeypatch.setattr(edit_actions, "ask_restore", lambda parent, entry: "later")
    return answer


@pytest.fixture
def window(qtbot, tmp_path, answers):
    from medviewer.ui.main_window import MainWindow

    main = MainWindow(persist_settings=False, enable_3d=False, enable_ai=False)
    qtbot.addWidget(main)
    editing = install_editing(main, recovery_root=tmp_path / "recovery")
    editing.save_target = SaveTarget(530, "Unsaved", tmp_path / "datasets")
    main.volumes = {"/data/first": make_ct_volume(), "/data/second": make_ct_volume()}
    main.scans = []
    scan, load = fake_source(main.volumes)
    main.scan_function = lambda path, progress, cancel: (main.scans.append(path), scan(path, progress, cancel))[1]
    main.load_function = load
    main.resize(1300, 800)
    main.show()
    qtbot.waitExposed(main)
    yield main
    editing.autosave_monitor.stop()


def open_and_wait(window, qtbot, path: str):
    with qtbot.waitSignal(window.document_changed, timeout=5000):
        assert window.open_path(path) is not None
    qtbot.wait(30)
    window.reset_views()
    return window.document


def paint(window, qtbot):
    """A real brush stroke in the axial view, autosaved; returns the recovery folder."""
    editing = window.editing
    view = window.slice_views[0]
    editing.activate_tool("paint")
    k = view.slice_index
    drag(view, [(40, 48, k), (56, 48, k)])
    window.set_interaction_mode("crosshair")
    assert window.document.modified and window.document.active_label_map.array.any()
    assert editing.controller.autosaver.autosave_now()
    folder = editing.controller.autosaver.folder
    assert (folder / "manifest.json").is_file()
    return folder


def test_nothing_unsaved_opens_without_asking(window, qtbot, answers):
    first = open_and_wait(window, qtbot, "/data/first")
    second = open_and_wait(window, qtbot, "/data/second")
    assert answers.asked == 0 and first is not second
    assert second.volume is window.volumes["/data/second"]


def test_cancel_keeps_the_study_and_its_edits(window, qtbot, answers, tmp_path):
    document = open_and_wait(window, qtbot, "/data/first")
    folder = paint(window, qtbot)
    painted = document.active_label_map.array.copy()
    recent = list(window.settings.recent_files)
    answers.queue.append("cancel")
    assert window.open_path("/data/second") is None
    qtbot.wait(100)
    assert answers.asked == 1
    assert window.document is document and document.modified
    assert window.scans == ["/data/first"]  # the new study was not even scanned
    assert window.settings.recent_files == recent and window.loading_job is None
    np.testing.assert_array_equal(document.active_label_map.array, painted)
    assert (folder / "manifest.json").is_file()  # the autosave still protects the edits
    assert not (tmp_path / "datasets").exists()
    assert "*" in window.windowTitle()


def test_discard_opens_the_new_study_and_drops_the_autosave(window, qtbot, answers, tmp_path):
    document = open_and_wait(window, qtbot, "/data/first")
    folder = paint(window, qtbot)
    answers.queue.append("discard")
    new = open_and_wait(window, qtbot, "/data/second")
    assert answers.asked == 1
    assert new is not document and new.volume is window.volumes["/data/second"]
    assert not folder.exists() and list_recoverable(tmp_path / "recovery") == []
    assert not (tmp_path / "datasets").exists()
    assert not new.modified and "*" not in window.windowTitle()


def test_save_writes_the_annotations_then_opens(window, qtbot, answers, tmp_path):
    document = open_and_wait(window, qtbot, "/data/first")
    folder = paint(window, qtbot)
    painted = document.active_label_map.array.copy()
    answers.queue.append("save")
    new = open_and_wait(window, qtbot, "/data/second")
    assert answers.asked == 1 and new is not document
    dataset = NnUNetDataset(tmp_path / "datasets" / "Dataset530_Unsaved")
    (case,) = dataset.case_ids()
    _image, labels = dataset.load_case(case)
    np.testing.assert_array_equal(labels.array, painted)
    assert not folder.exists() and list_recoverable(tmp_path / "recovery") == []


def test_a_failed_save_keeps_the_study(window, qtbot, answers, tmp_path, errors):
    document = open_and_wait(window, qtbot, "/data/first")
    folder = paint(window, qtbot)
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the dataset folder should go")
    window.editing.save_target = SaveTarget(531, "Blocked", blocker)
    answers.queue.append("save")
    assert window.open_path("/data/second") is None
    assert errors and errors[0][0] == "Cannot save annotations"
    assert window.document is document and document.modified and folder.is_dir()
    assert window.scans == ["/data/first"]


def test_study_browser_series_asks_too(window, qtbot, answers):
    document = open_and_wait(window, qtbot, "/data/first")
    paint(window, qtbot)
    scan, _load = fake_source(window.volumes)
    (other,) = scan("/data/second", lambda *a: None, None)  # as the study browser lists it
    answers.queue.append("cancel")
    assert window.load_series(other) is None
    qtbot.wait(100)
    assert window.document is document and document.modified
    answers.queue.append("discard")
    with qtbot.waitSignal(window.document_changed, timeout=5000):
        assert window.load_series(other) is not None
    assert window.document.volume is window.volumes["/data/second"] and answers.asked == 2


def test_demo_asks_before_preparing_anything(window, qtbot, answers, monkeypatch):
    from medviewer.services import demo
    from medviewer.ui.app import open_demo

    prepared = []

    def fake_demo(progress, cancel):
        prepared.append(True)
        return SimpleNamespace(ct_dicom_dir="/data/second")

    monkeypatch.setattr(demo, "ensure_demo_data", fake_demo)
    document = open_and_wait(window, qtbot, "/data/first")
    paint(window, qtbot)
    answers.queue.append("cancel")
    open_demo(window)
    qtbot.wait(200)
    assert prepared == [] and window.document is document and document.modified
    answers.queue.append("discard")
    with qtbot.waitSignal(window.document_changed, timeout=5000):
        open_demo(window)
    assert prepared == [True] and window.document.volume is window.volumes["/data/second"]
    assert answers.asked == 2  # the study opened after the demo was prepared did not ask again


def test_close_with_discard_drops_the_autosave(window, qtbot, answers, tmp_path):
    open_and_wait(window, qtbot, "/data/first")
    folder = paint(window, qtbot)
    answers.queue.append("cancel")
    window.close()
    assert window.isVisible() and folder.is_dir()
    answers.queue.append("discard")
    window.close()
    assert not window.isVisible() and answers.asked == 2
    assert not folder.exists() and list_recoverable(tmp_path / "recovery") == []
    assert not (tmp_path / "datasets").exists()
