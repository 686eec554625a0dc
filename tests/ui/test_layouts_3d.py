"""The "3D only" layout of the main window (issue 6): the one VolumeView, large, alone.

Under Xvfb with Mesa. Switching layouts moves the same VolumeView (same OpenGL render
window) between the 2x2 grid and the 3D-only layout; the no-OpenGL path shows its
message there too; the layout has a shortcut and is remembered in the settings.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLabel

from medviewer.services.settings import load_settings
from medviewer.ui.volume_view import DISABLE_ENV_VAR, VolumeView

from tests.ui.test_volume_view import make_document

pytestmark = pytest.mark.gui

WINDOW_SIZE = (900, 640)  # small: Mesa ray casting costs per pixel


def settle() -> None:
    for _ in range(3):
        QApplication.processEvents()


def image_array(image: QImage) -> np.ndarray:
    """(height, width, 3) uint8 RGB of a QImage."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits(), np.uint8, count=image.bytesPerLine() * height)
    return data.reshape(height, image.bytesPerLine())[:, : 3 * width].reshape(height, width, 3).copy()


def bright_fraction(pixels: np.ndarray) -> float:
    """Share of pixels brighter than the 3D background gradient (at most about 66 in any channel)."""
    return float(np.mean(pixels.max(axis=2) > 120))


def pane_pixels(window, pane) -> np.ndarray:
    """What ``grab_views`` shows inside ``pane`` (the 3D rendering is composited into the grab)."""
    pixels = image_array(window.grab_views())
    rect = pane.geometry()
    return pixels[rect.top() : rect.bottom() + 1, rect.left() : rect.right() + 1]


@pytest.fixture
def window(qtbot):
    from medviewer.ui.main_window import MainWindow

    main = MainWindow(persist_settings=False, enable_3d=True, enable_ai=False)
    qtbot.addWidget(main)
    main.resize(*WINDOW_SIZE)
    main.set_layout("1x3")
    main.show()
    qtbot.waitExposed(main)
    yield main
    main.close()


def test_3d_layout_shows_the_same_volume_view_alone_and_large(window, qtbot, artifacts_dir):
    document = make_document()
    window.set_document(document)
    window.set_layout("2x2")
    settle()
    view = window.volume_view
    assert isinstance(view, VolumeView) and view.available, getattr(view, "unavailable_reason", "")
    render_window = view.render_window
    small_width = view.width()

    window.set_layout("3d")
    settle()
    assert window.volume_view is view and view.render_window is render_window  # moved, not re-created
    assert window.findChildren(VolumeView) == [view]  # one 3D view, one OpenGL context
    assert view.isVisible() and not any(v.isVisible() for v in window.slice_views)
    central = window.centralWidget()
    assert view.width() >= central.width() - 4 and view.height() >= central.height() - 4
    assert view.width() > 1.5 * small_width
    assert view.document is document
    pixels = pane_pixels(window, view)
    assert bright_fraction(pixels) > 0.01  # the bone rod and soft tissue are rendered
    assert window._layout_actions["3d"].isChecked()
    assert window.grab_views().save(str(artifacts_dir / "layout_3d_only.png"))

    window.set_layout("1x3")
    settle()
    assert all(v.isVisible() for v in window.slice_views) and not view.isVisible()
    window.set_layout("3d")
    settle()
    assert window.volume_view is view and view.isVisible() and bright_fraction(pane_pixels(window, view)) > 0.01
    window.set_layout("2x2")
    settle()
    assert view.isVisible() and all(v.isVisible() for v in window.slice_views)
    assert view.width() < 0.6 * central.width() and window.findChildren(VolumeView) == [view]


def test_3d_layout_shortcut_from_the_keyboard(window, qtbot):
    window.set_document(make_document())
    assert window._layout_actions["3d"].shortcut() == QKeySequence("Ctrl+4")
    assert window._layout_actions["1x3"].shortcut() == QKeySequence("Ctrl+2")
    window.activateWindow()
    axial = window.slice_views[0]
    axial.setFocus()
    qtbot.waitUntil(lambda: window.isActiveWindow(), timeout=3000)
    QTest.keyClick(axial.viewport(), Qt.Key.Key_4, Qt.KeyboardModifier.ControlModifier)
    assert window.layout_name == "3d" and window.volume_view.isVisible() and not axial.isVisible()
    QTest.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert window.layout_name == "1x3" and axial.isVisible() and not window.volume_view.isVisible()


def test_no_opengl_message_in_the_3d_layout(qtbot, monkeypatch, artifacts_dir):
    from medviewer.ui.main_window import MainWindow

    monkeypatch.setenv(DISABLE_ENV_VAR, "1")
    window = MainWindow(persist_settings=False, enable_3d=True, enable_ai=False)
    qtbot.addWidget(window)
    window.resize(*WINDOW_SIZE)
    window.show()
    qtbot.waitExposed(window)
    try:
        window.set_document(make_document())
        window.set_layout("3d")
        settle()
        view = window.volume_view
        assert isinstance(view, VolumeView) and not view.available
        assert view.message_text.startswith("3D view unavailable") and DISABLE_ENV_VAR in view.message_text
        message = view.findChild(QLabel, "volumeViewMessage")
        assert message.isVisible() and message.width() > 0.9 * window.centralWidget().width()
        assert not any(v.isVisible() for v in window.slice_views)
        # The message is drawn: light text pixels on the dark pane.
        assert bright_fraction(pane_pixels(window, view)) > 0.001
        assert window.grab_views().save(str(artifacts_dir / "layout_3d_only_no_opengl.png"))
        window.set_layout("1x3")
        settle()
        assert all(v.isVisible() for v in window.slice_views) and not view.isVisible()
        window.set_layout("3d")
        settle()
        assert window.volume_view is view and message.isVisible()
    finally:
        window.close()


def test_3d_layout_is_remembered(qtbot, medviewer_home):
    from medviewer.ui.main_window import MainWindow

    first = MainWindow(persist_settings=True, enable_3d=False, enable_ai=False)
    qtbot.addWidget(first)
    first.set_layout("3d")
    first.close()
    assert load_settings().layout == "3d"
    second = MainWindow(persist_settings=True, enable_3d=False, enable_ai=False)
    qtbot.addWidget(second)
    second.show()
    settle()
    assert second.layout_name == "3d" and second._layout_actions["3d"].isChecked()
    assert second.volume_view is not None and second.volume_view.isVisible()
    assert not any(v.isVisible() for v in second.slice_views)
    second.set_layout("1x3")
    second.close()
