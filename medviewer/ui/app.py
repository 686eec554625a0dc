"""Application start-up: the QApplication, the dark theme, and ``run_app`` used by ``medviewer [PATH]``."""

from __future__ import annotations

import os
import sys

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from medviewer.ui.main_window import MainWindow


def dark_palette() -> QPalette:
    """A dark palette: images read better on dark surroundings (as in Slicer, ITK-SNAP, PACS)."""
    palette = QPalette()
    colors = {
        QPalette.ColorRole.Window: QColor(45, 45, 48),
        QPalette.ColorRole.WindowText: QColor(220, 220, 220),
        QPalette.ColorRole.Base: QColor(30, 30, 32),
        QPalette.ColorRole.AlternateBase: QColor(40, 40, 44),
        QPalette.ColorRole.ToolTipBase: QColor(60, 60, 64),
        QPalette.ColorRole.ToolTipText: QColor(230, 230, 230),
        QPalette.ColorRole.Text: QColor(220, 220, 220),
        QPalette.ColorRole.Button: QColor(55, 55, 60),
        QPalette.ColorRole.ButtonText: QColor(220, 220, 220),
        QPalette.ColorRole.Highlight: QColor(60, 120, 200),
        QPalette.ColorRole.HighlightedText: QColor(255, 255, 255),
        QPalette.ColorRole.Link: QColor(100, 160, 240),
    }
    for role, color in colors.items():
        palette.setColor(role, color)
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(120, 120, 120))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(120, 120, 120))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor(120, 120, 120))
    return palette


def create_application(argv: list[str] | None = None, offscreen: bool = False) -> QApplication:
    """The QApplication (created once; reused when it already exists, e.g. under pytest-qt).

    ``offscreen`` renders without a display (screenshots from the command line on a
    machine with no X server); it only takes effect if no QApplication exists yet.
    """
    app = QApplication.instance()
    if app is None:
        if offscreen and "QT_QPA_PLATFORM" not in os.environ:
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
        app.setApplicationName("medviewer")
        app.setOrganizationName("medviewer")
        app.setStyle("Fusion")
        app.setPalette(dark_palette())
        from medviewer.ui.help_dialogs import app_icon

        app.setWindowIcon(app_icon())
    return app


def run_app(path: str | None = None, demo: bool = False, layout: str | None = None) -> int:
    """Open the main window (optionally on ``path`` or the demo study) and run the event loop."""
    app = create_application()
    window = MainWindow()
    from medviewer.ui.edit_actions import install_editing  # editing tools, undo, saving, autosave

    editing = install_editing(window)
    from medviewer.ui.welcome import install_welcome  # open study / demo / recent, while no study is open

    install_welcome(window)
    from medviewer.ui.panels.database_panel import install_database  # the local study database

    install_database(window)
    if layout:
        window.set_layout(layout)
    window.show()
    if editing.offer_recovery() is not None:  # autosaved edits of a session that crashed: open their image
        pass
    elif demo:
        open_demo(window)
    elif path:
        window.open_path(path)
    return app.exec()


def open_demo(window: MainWindow, study: str = "ct_dicom_dir") -> None:
    """Generate the demo studies if needed (in the background) and open one (default: the CT).

    ``study`` names a path of ``medviewer.services.demo.DemoData``: "ct_dicom_dir",
    "mr_path" or "radiograph_path". Unsaved edits of the open study are resolved first
    (Save / Discard / Cancel); on Cancel nothing is prepared or opened.
    """
    from medviewer.ui import dialogs

    if not window.confirm_replace_document():
        return

    def job(progress, cancel):
        from medviewer.services.demo import ensure_demo_data

        return ensure_demo_data(progress, cancel)

    handle = window.jobs.submit(job, "Preparing the demo study")
    from medviewer.ui.jobs import JobProgressDialog

    JobProgressDialog(handle, "Preparing the demo study", window)
    handle.finished.connect(lambda demo_data: window.open_path(str(getattr(demo_data, study))))
    handle.failed.connect(lambda error: dialogs.show_error(window, "Demo data", dialogs.error_text(error)))
