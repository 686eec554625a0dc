"""Welcome screen (open study / demo / recent studies), Help > Keyboard shortcuts and Help > About."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence

from medviewer.core.paths import resources_dir
from medviewer.io.writers import write_volume
from medviewer.services.demo import DemoData
from medviewer.ui import welcome as welcome_module
from medviewer.ui.edit_actions import install_editing
from medviewer.ui.help_dialogs import VIEW_GESTURES, AboutDialog, action_title, collect_shortcuts
from medviewer.ui.welcome import DEMO_STUDIES, install_welcome
from tests.ui.conftest import make_ct_phantom


@pytest.fixture
def nifti_study(tmp_path) -> Path:
    """The 64 x 48 x 24 CT phantom as a NIfTI file (a real file for the real loaders)."""
    return write_volume(make_ct_phantom(), tmp_path / "chest.nii.gz", compress=True)


@pytest.fixture
def window(viewer, tmp_path):
    """The real main window with the editing tools and the welcome screen, as ``medviewer`` starts it."""
    install_editing(viewer, recovery_root=tmp_path / "recovery", autosave=False)
    install_welcome(viewer)
    return viewer


def _menu_action(window, menu: str, title: str) -> QAction:
    return next(a for a in window.menu(menu).actions() if action_title(a) == title)


# ---------------------------------------------------------------------------- welcome screen
def test_welcome_replaces_the_views_until_a_study_is_open(window, qtbot, ct_volume):
    screen = window.welcome
    qtbot.waitUntil(screen.isVisible, timeout=2000)
    assert not any(view.isVisible() for view in window.slice_views)
    window.open_volume(ct_volume)
    qtbot.waitUntil(lambda: not screen.isVisible(), timeout=2000)
    assert all(view.isVisible() for view in window.slice_views)  # 1x3 layout
    window.set_document(None)
    qtbot.waitUntil(screen.isVisible, timeout=2000)
    assert not any(view.isVisible() for view in window.slice_views)


def test_open_study_button_asks_for_a_file_and_loads_it(window, qtbot, monkeypatch, nifti_study):
    asked = []

    def fake_dialog(parent, caption, directory, filter_text):
        asked.append((caption, filter_text))
        return str(nifti_study), ""

    monkeypatch.setattr(welcome_module.QFileDialog, "getOpenFileName", staticmethod(fake_dialog))
    qtbot.mouseClick(window.welcome.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.document is not None, timeout=10000)
    assert asked and "*.nii.gz" in asked[0][1] and "*.dcm" in asked[0][1]
    assert window.document.volume.array.shape == (24, 48, 64)
    assert np.array_equal(window.document.volume.array, make_ct_phantom().array)
    assert window.settings.recent_files[0] == str(nifti_study)
    assert window.settings.last_directory == str(nifti_study.parent)
    assert not window.welcome.isVisible()


def test_open_folder_button_asks_for_a_folder(window, qtbot, monkeypatch, tmp_path):
    opened = []
    monkeypatch.setattr(window, "open_path", lambda path: opened.append(path))
    monkeypatch.setattr(welcome_module.QFileDialog, "getExistingDirectory", staticmethod(lambda *a: str(tmp_path)))
    qtbot.mouseClick(window.welcome.folder_button, Qt.MouseButton.LeftButton)
    assert opened == [str(tmp_path)]
    monkeypatch.setattr(welcome_module.QFileDialog, "getExistingDirectory", staticmethod(lambda *a: ""))  # Cancel
    qtbot.mouseClick(window.welcome.folder_button, Qt.MouseButton.LeftButton)
    assert opened == [str(tmp_path)]


def test_open_demo_button_prepares_the_demo_in_the_background_and_opens_its_ct(window, qtbot, monkeypatch, tmp_path, nifti_study):
    """The real wiring (welcome -> app.open_demo -> job -> open_path), with a small stand-in for the demo data."""
    import medviewer.services.demo as demo

    names = {f.name for f in dataclasses.fields(DemoData) if f.name not in ("folder", "descriptions")}
    stand_in = DemoData(folder=tmp_path, **{name: nifti_study if name == "ct_dicom_dir" else tmp_path / name for name in names})
    calls = []
    monkeypatch.setattr(demo, "ensure_demo_data", lambda progress, cancel: calls.append(1) or stand_in)
    qtbot.mouseClick(window.welcome.demo_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.document is not None, timeout=10000)
    assert calls == [1]
    assert window.document.volume.geometry.size == (64, 48, 24)


def test_more_demos_menu_offers_each_demo_study(window):
    chosen = []
    screen = welcome_module.WelcomeScreen(window, open_demo=chosen.append)
    for action in screen.demo_menu.actions():
        action.trigger()
    assert chosen == ["ct_dicom_dir", "mr_path", "radiograph_path"]
    fake = DemoData(**{f.name: Path("/x") for f in dataclasses.fields(DemoData) if f.name != "descriptions"})
    assert all(isinstance(getattr(fake, study), Path) for study, _text in DEMO_STUDIES)  # real DemoData paths
    screen.deleteLater()


def test_recent_studies_are_listed_and_open_on_click(window, qtbot, nifti_study, tmp_path):
    missing = tmp_path / "gone" / "old-study"
    window.settings.recent_files = [str(nifti_study), str(missing)]
    screen = window.welcome
    screen.refresh()
    items = [screen.recent_list.item(i) for i in range(screen.recent_list.count())]
    assert [item.data(Qt.ItemDataRole.UserRole) for item in items] == [str(nifti_study), str(missing)]
    assert items[0].text().startswith("chest.nii.gz\n")
    assert "not found" in items[1].text() and not items[1].flags() & Qt.ItemFlag.ItemIsEnabled

    screen.recent_list.scrollToItem(items[1])
    rect = screen.recent_list.visualItemRect(items[1])
    qtbot.mouseClick(screen.recent_list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.loading_job is None and window.document is None  # the missing study is not clickable

    rect = screen.recent_list.visualItemRect(items[0])
    qtbot.mouseClick(screen.recent_list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: window.document is not None, timeout=10000)
    assert window.document.volume.array.shape == (24, 48, 64)


def test_recent_list_is_refreshed_when_the_welcome_returns(window, qtbot, nifti_study, ct_volume):
    window.settings.recent_files = []
    window.welcome.refresh()
    assert window.welcome.recent_list.count() == 0 and not window.welcome.recent_list.isVisibleTo(window.welcome)
    window.open_volume(ct_volume)
    window.settings.add_recent_file(nifti_study)
    window.set_document(None)
    qtbot.waitUntil(window.welcome.isVisible, timeout=2000)
    assert window.welcome.recent_list.count() == 1


def test_welcome_sheet_shows_the_main_shortcuts_from_the_actions(window):
    sheet = dict(window.welcome.sheet_entries())
    assert sheet["Undo"] == "Ctrl+Z"
    assert sheet["Paint brush"] == "B"
    assert sheet["Open file"] == QKeySequence(QKeySequence.StandardKey.Open).toString(QKeySequence.SequenceFormat.NativeText)
    assert sheet["Save annotations"] == "Ctrl+S"
    assert sheet["Next / previous slice"].startswith("Wheel")
    window.editing.tool_actions["paint"].setShortcut(QKeySequence("Ctrl+Alt+P"))  # follows the action
    assert dict(window.welcome.sheet_entries())["Paint brush"] == "Ctrl+Alt+P"
    assert "Ctrl+Z" in window.welcome.sheet.text()


# ---------------------------------------------------------------------------- Help > Keyboard shortcuts
def test_shortcuts_dialog_lists_every_action_shortcut(window, qtbot):
    action = _menu_action(window, "Help", "Keyboard shortcuts")
    assert action.shortcut().toString() == "F1"
    action.trigger()
    dialog = window._shortcuts_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=2000)
    rows = dialog.rows()
    assert ("Paint brush", "B", "Tools") in rows
    assert ("Undo", "Ctrl+Z", "Edit") in rows
    assert ("Redo", "Ctrl+Shift+Z, Ctrl+Y", "Edit") in rows
    assert ("Smaller brush", "[, -", "Tools > Brush") in rows
    assert ("Run selected model", "Ctrl+R", "AI") in rows
    assert ("Keyboard shortcuts", "F1", "Help") in rows
    # Every action of the window that has a key is in the table.
    listed = {(a, k) for a, k, _s in rows}
    for qaction in window.findChildren(QAction):
        keys = ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in qaction.shortcuts())
        if keys:
            assert (action_title(qaction), keys) in listed, action_title(qaction)
    for section, what, keys in VIEW_GESTURES:
        assert (what, keys, section) in rows

    dialog.filter.setText("brush")
    assert {a for a, _k, _s in dialog.rows()} == {"Paint brush", "Smaller brush", "Larger brush", "2D disc / 3D ball"}
    dialog.filter.setText("")
    window.editing.tool_actions["erase"].setShortcut(QKeySequence("Shift+E"))
    action.trigger()  # reopening re-reads the actions
    assert ("Eraser", "Shift+E", "Tools") in dialog.rows()
    dialog.close()


def test_view_keys_listed_by_hand_do_what_the_sheet_says(window, qtbot, ct_volume):
    """VIEW_GESTURES is the only hand-written part of the sheet: press its keys."""
    window.open_volume(ct_volume)
    view = window.slice_views[0]
    view.setFocus()
    start = view.slice_index
    qtbot.keyClick(view, Qt.Key.Key_PageUp)
    assert view.slice_index == start + 1
    qtbot.keyClick(view, Qt.Key.Key_Down)
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert view.slice_index == start - 1
    initial = view.zoom
    view.zoom_by(2.0)
    assert view.zoom == pytest.approx(2 * initial)
    qtbot.keyClick(view, Qt.Key.Key_R)
    assert view.zoom == pytest.approx(initial)
    assert ("Slice views (mouse and keys)", "Reset zoom and pan of the view", "R") in VIEW_GESTURES


def test_collect_shortcuts_works_on_a_bare_window(viewer):
    """Without the editing tools only the window's own actions (and the AI menu) are listed."""
    entries = collect_shortcuts(viewer, include_gestures=False)
    actions = {e.action: e.keys for e in entries}
    assert actions["Ruler"] == "M" and actions["Window/level"] == "W"
    assert "Undo" not in actions


# ---------------------------------------------------------------------------- Help > About
def test_about_shows_versions_device_and_every_builtin_model_licence(window, qtbot):
    from medviewer.ai.devices import describe_device, resolve_device
    from medviewer.services.about import COMPONENTS, distribution_version

    action = _menu_action(window, "Help", "About medviewer")
    action.trigger()
    dialog = next(w for w in window.findChildren(AboutDialog))
    qtbot.waitUntil(lambda: dialog.device is not None, timeout=60000)
    expected_device = describe_device(resolve_device("auto")[0])
    text = dialog.browser.toPlainText()
    assert dialog.device_text == expected_device
    assert expected_device in text
    assert "CPU (" in expected_device or "GPU" in expected_device
    details = dialog.details_text().splitlines()
    for shown, distributions in COMPONENTS:
        version = distribution_version(*distributions)
        assert version != "not installed", shown
        assert f"  {shown}: {version}" in details
        assert f"{shown}\n{version}\n" in text  # a table row: name cell, version cell
    import PySide6

    assert PySide6.__version__ in text

    builtin = sorted((resources_dir() / "models").glob("*/model.json"))
    assert len(builtin) >= 3
    for manifest_path in builtin:
        manifest = json.loads(manifest_path.read_text())
        ref = f"{manifest['name']}:{manifest['version']}"
        assert f"{manifest['title']}\n{ref}\nbuiltin\n{manifest['provenance']['license']}\n" in text
        assert any(ref in line and f"licence {manifest['provenance']['license']};" in line for line in details)
    assert "MNI-ICBM152-2009" in text  # the demo MR's licence file
    assert f"AI compute device: {expected_device}" in details
    dialog.close()


def test_about_without_a_window_uses_the_default_registry(qtbot):
    dialog = AboutDialog(None)
    qtbot.addWidget(dialog)
    assert {licence.ref.split(":")[0] for licence in dialog.licences if licence.origin == "builtin"} >= {
        "ct-lung-seg", "ct-nodule-det", "ct-denoise"
    }
    qtbot.waitUntil(lambda: dialog.device is not None, timeout=60000)
    assert dialog.device.preference == "auto"


def test_readme_shortcut_table_matches_the_app(window):
    """Every (action, keys) pair in the README's shortcut table is what the app's menus say."""
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("\n## Keyboard shortcuts\n"):]
    section = section[: section.index("\n## ", 5)]
    pairs = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[1].startswith("`"):
            pairs += [(cells[0], cells[1].strip("`")), (cells[3], cells[4].strip("`"))]
    assert len(pairs) >= 20
    live = {(entry.action, entry.keys) for entry in collect_shortcuts(window, include_gestures=False)}
    missing = [pair for pair in pairs if pair not in live]
    assert not missing, f"README shortcuts that the app does not have: {missing}"
    assert re.search(r"`R` resets\s+the view", section)
