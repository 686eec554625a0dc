"""Autosave in the window: the cadence timer, and telling the user when autosave fails.

A recovery folder on a full or read-only disk used to fail in silence: the user
painted on, and a crash took everything. :class:`AutosaveMonitor` asks the
document's ``Autosaver`` once a second whether its policy wants a write, shows a
failure in the status bar (kept until an autosave works again), asks once per
window with a dialog that offers another folder, and lets the autosaver retry.

The writer thread's psygnal signals are re-emitted as Qt signals, so the status
bar and the dialog are only touched on the UI thread. Questions go through the
module functions ``ask_autosave_failed`` and ``choose_recovery_folder`` (tests
replace them).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QLabel, QMainWindow, QMessageBox, QWidget

from medviewer.services.recovery import Autosaver


def ask_autosave_failed(parent: QWidget, message: str) -> str:
    """Tell the user autosave failed: "folder" (choose another folder) or "ok"."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Autosave failed", message, QMessageBox.StandardButton.NoButton, parent)
    choose = box.addButton("Choose another folder...", QMessageBox.ButtonRole.AcceptRole)
    box.addButton("Keep retrying", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(choose)
    box.exec()
    return "folder" if box.clickedButton() is choose else "ok"


def choose_recovery_folder(parent: QWidget) -> Path | None:
    """A folder for autosaves from now on (None: cancelled)."""
    path = QFileDialog.getExistingDirectory(parent, "Folder for autosaved edits")
    return Path(path) if path else None


def failure_text(error: BaseException, folder: Path, retry_s: float) -> str:
    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return (f"Unsaved edits could not be autosaved to {folder}: {reason}.\n\n"
            f"Your edits are still in memory and nothing else is lost; medviewer retries every {retry_s:g} s. "
            "Free some space, or choose another folder for autosaves. Save annotations (Ctrl+S) to keep them for good.")


class AutosaveMonitor(QObject):
    """Drives one window's autosave and reports its failures (see the module docstring)."""

    _failed = Signal(object)
    _succeeded = Signal(object)

    def __init__(self, window: QMainWindow, enabled: bool = True) -> None:
        super().__init__(window)
        self.window = window
        self.autosaver: Autosaver | None = None
        self.failing = False
        self._asked = False
        self.status_label = QLabel()
        self.status_label.setStyleSheet("color: #ff7060; font-weight: bold;")
        self.status_label.hide()
        window.statusBar().addPermanentWidget(self.status_label)
        self._failed.connect(self._on_failed)
        self._succeeded.connect(self._on_succeeded)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.tick)
        if enabled:
            self.timer.start(1000)

    def watch(self, autosaver: Autosaver | None) -> None:
        """Follow the autosaver of the document now open (None: no document)."""
        if self.autosaver is not None:
            self.autosaver.failed.disconnect(self._from_writer_failed)
            self.autosaver.succeeded.disconnect(self._from_writer_succeeded)
        self.autosaver = autosaver
        if autosaver is not None:
            self.timer.setInterval(autosaver.policy.tick_ms)
            autosaver.failed.connect(self._from_writer_failed)
            autosaver.succeeded.connect(self._from_writer_succeeded)
        self._clear()

    # The writer thread calls these; emitting a Qt signal queues the slot onto the UI thread.
    def _from_writer_failed(self, error: BaseException) -> None:
        self._failed.emit(error)

    def _from_writer_succeeded(self, folder: Path) -> None:
        self._succeeded.emit(folder)

    def tick(self) -> bool:
        """Autosave in the background when the policy says so; True if a write started."""
        return self.autosaver is not None and self.autosaver.autosave_if_due()

    def stop(self) -> None:
        self.timer.stop()

    # ------------------------------------------------------------------ outcomes (UI thread)
    def _on_failed(self, error: BaseException) -> None:
        saver = self.autosaver
        if saver is None:
            return
        self.failing = True
        reason = getattr(error, "strerror", None) or str(error)
        self.status_label.setText(f"Autosave failed: {reason} (retrying)")
        self.status_label.setToolTip(failure_text(error, saver.folder.parent, saver.policy.retry_s))
        self.status_label.show()
        if self._asked:
            return
        self._asked = True  # one dialog per window; the status bar keeps saying it
        if ask_autosave_failed(self.window, failure_text(error, saver.folder.parent, saver.policy.retry_s)) == "folder":
            folder = choose_recovery_folder(self.window)
            if folder is not None and self.autosaver is saver:
                saver.move_to(folder)
                saver.autosave_async()

    def _on_succeeded(self, folder: Path) -> None:
        if self.failing:
            self.window.statusBar().showMessage(f"Autosave works again: {folder}", 8000)
        self._clear()

    def _clear(self) -> None:
        self.failing = False
        self.status_label.hide()
        self.status_label.clear()
