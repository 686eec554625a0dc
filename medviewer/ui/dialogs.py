"""Message dialogs, routed through one module so tests can intercept them.

Every error the GUI shows goes through ``show_error`` (and notices through
``show_info``). They open a window-modal message box without blocking (no nested
event loop), so a test never hangs on a modal. Tests replace them with
``monkeypatch.setattr(medviewer.ui.dialogs, "show_error", fake)``; callers must
therefore call ``dialogs.show_error(...)`` through the module, never import the
function by name.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from medviewer.core.errors import MedviewerError


def error_text(error: BaseException) -> str:
    """What the user reads: a MedviewerError's message, or a short note for a bug."""
    if isinstance(error, MedviewerError):
        return str(error)
    return f"Unexpected error ({type(error).__name__}): {error}"


def show_error(parent: QWidget | None, title: str, message: str, details: str = "") -> QMessageBox:
    """Show an error without blocking; returns the (already open) message box."""
    box = QMessageBox(QMessageBox.Icon.Critical, title, message, QMessageBox.StandardButton.Ok, parent)
    if details:
        box.setDetailedText(details)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


def show_info(parent: QWidget | None, title: str, message: str) -> QMessageBox:
    """Show a notice without blocking; returns the (already open) message box."""
    box = QMessageBox(QMessageBox.Icon.Information, title, message, QMessageBox.StandardButton.Ok, parent)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box
