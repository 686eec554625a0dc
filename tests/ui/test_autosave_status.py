"""A failing autosave is shown (status bar + one dialog), retried, and can move to another folder (issue 18.3)."""

from __future__ import annotations

import json

import pytest

from medviewer.services.autosave_policy import AutosavePolicy
from medviewer.ui import autosave_status, edit_actions
from medviewer.ui.edit_actions import install_editing

from tests.ui.editing_gui_helpers import drag, make_ct_volume
from tests.ui.test_main_window import fake_source

pytestmark = pytest.mark.gui


@pytest.fixture
def broken_recovery_window(qtbot, tmp_path, monkeypatch):
    """A main window whose recovery folder cannot be created (a file stands where its parent should be)."""
    from medviewer.ui.main_window import MainWindow

    monkeypatch.setattr(edit_actions, "ask_unsaved_changes", lambda parent: "discard")  # closing at teardown
    blocker = tmp_path / "blocked"
    blocker.write_text("not a folder")
    main = MainWindow(persist_settings=False, enable_3d=False, enable_ai=False)
    qtbot.addWidget(main)
    editing = install_editing(main, recovery_root=blocker / "recovery")
    scan, load = fake_source({"/data/ct": make_ct_volume()})
    main.scan_function, main.load_function = scan, load
    main.resize(1200, 800)
    main.show()
    qtbot.waitExposed(main)
    with qtbot.waitSignal(main.document_changed, timeout=5000):
        main.open_path("/data/ct")
    qtbot.wait(30)
    main.reset_views()
    editing.controller.autosaver.policy = AutosavePolicy(idle_s=0, retry_s=0)
    yield main, editing
    editing.autosave_monitor.stop()


def _stroke(window, editing):
    view = window.slice_views[0]
    editing.activate_tool("paint")
    k = view.slice_index
    drag(view, [(40, 48, k), (56, 48, k)])
    window.set_interaction_mode("crosshair")
    assert window.document.modified


def test_failure_is_shown_once_as_a_dialog_and_kept_in_the_status_bar(broken_recovery_window, qtbot, monkeypatch):
    window, editing = broken_recovery_window
    questions = []
    monkeypatch.setattr(autosave_status, "ask_autosave_failed", lambda parent, text: questions.append(text) or "ok")
    monitor = editing.autosave_monitor
    _stroke(window, editing)
    assert monitor.tick()
    qtbot.waitUntil(lambda: monitor.failing, timeout=5000)
    label = monitor.status_label
    assert label.isVisible() and label.text().startswith("Autosave failed:")
    assert len(questions) == 1 and "could not be autosaved to" in questions[0] and "blocked" in questions[0]
    assert "retries every 0 s" in questions[0]
    # the next tick retries; it fails again, and no second dialog is shown
    editing.controller.autosaver.wait()
    assert monitor.tick()
    editing.controller.autosaver.wait()
    qtbot.wait(50)
    assert len(questions) == 1 and label.isVisible() and editing.controller.autosaver.needs_autosave


def test_choosing_another_folder_autosaves_there(broken_recovery_window, qtbot, monkeypatch, tmp_path):
    window, editing = broken_recovery_window
    monkeypatch.setattr(autosave_status, "ask_autosave_failed", lambda parent, text: "folder")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setattr(autosave_status, "choose_recovery_folder", lambda parent: elsewhere)
    monitor = editing.autosave_monitor
    _stroke(window, editing)
    assert monitor.tick()
    saver = editing.controller.autosaver
    qtbot.waitUntil(lambda: saver.folder.parent == elsewhere and (saver.folder / "manifest.json").is_file(),
                    timeout=5000)
    qtbot.waitUntil(lambda: not monitor.failing, timeout=5000)
    assert not monitor.status_label.isVisible()
    assert "Autosave works again" in window.statusBar().currentMessage()
    manifest = json.loads((saver.folder / "manifest.json").read_text())
    assert [m["name"] for m in manifest["label_maps"]] == [window.document.active_label_map.name]
    assert not saver.needs_autosave
