"""Render the slice views to a PNG without user interaction (``medviewer screenshot`` and tests).

Uses the real main window, hidden (not shown on screen), with docks, toolbar and
menus removed so the picture holds only the views. Without a display (no
``DISPLAY``) Qt renders offscreen and the 3D pane shows its placeholder.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QApplication, QDockWidget

from medviewer.core.detection import Detection
from medviewer.core.labels import LabelMap
from medviewer.core.volume import Volume
from medviewer.imaging.window_level import Window

DEFAULT_SIZES = {"1x1": (700, 700), "1x3": (1500, 560), "2x2": (1000, 1000), "3d": (800, 800)}


def render_screenshot(
    volume: Volume,
    out: str | os.PathLike[str],
    layout: str = "1x3",
    cursor_world: np.ndarray | None = None,
    window: Window | None = None,
    label_maps: list[LabelMap] = (),
    detections: list[Detection] = (),
    size: tuple[int, int] | None = None,
    colormap: str = "gray",
) -> Path:
    """Save a picture of ``volume``'s views (with overlays) as ``out``; returns the written path."""
    from medviewer.ui.app import create_application
    from medviewer.ui.main_window import MainWindow

    headless = not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
    app = create_application(offscreen=headless)
    offscreen = QApplication.platformName() in ("offscreen", "minimal")
    main = MainWindow(persist_settings=False, enable_3d=not offscreen, enable_ai=False)
    try:
        for dock in main.findChildren(QDockWidget):
            dock.hide()
        main.toolbar.hide()
        main.menuBar().hide()
        main.statusBar().hide()
        width, height = size or DEFAULT_SIZES.get(layout, (1200, 700))
        main.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
        main.resize(width, height)
        main.set_layout(layout)
        main.show()
        document = main.open_volume(volume)
        for label_map in label_maps:
            document.add_label_map(label_map)
        if detections:
            document.add_detections(detections)
        if window is not None:
            main.display.set_window(window.center, window.width)
        main.display.set_colormap(colormap)
        if cursor_world is not None:
            document.set_cursor(cursor_world)
        for _ in range(3):
            app.processEvents()
        main.reset_views()
        deadline = time.monotonic() + 120.0
        while getattr(main.volume_view, "surfaces_busy", False) and main.volume_view.isVisible() and time.monotonic() < deadline:
            app.processEvents()  # let the 3D view finish its label surfaces
            time.sleep(0.02)
        app.processEvents()
        return main.save_screenshot(out)
    finally:
        main.close()
        main.deleteLater()
        QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
        app.processEvents()
