"""Help > Keyboard shortcuts and Help > About.

The shortcut list is read from the window itself - every QAction in the menus (and
any other action or QShortcut with a key) - so it always matches what the keys do.
Only the mouse gestures and keys that the slice and 3D views handle in their own
event handlers are listed by hand, in ``VIEW_GESTURES`` (a GUI test presses them).

The About dialog shows versions without importing anything heavy, and finds the
compute device on a worker thread (importing torch takes seconds; on the UI thread
it would freeze the window).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from PySide6.QtCore import Qt, qVersion
from PySide6.QtGui import QAction, QGuiApplication, QIcon, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from medviewer import __version__
from medviewer.core.paths import resources_dir
from medviewer.services.about import ComputeDevice, component_versions, detect_compute_device, model_licences
from medviewer.ui.dialogs import error_text
from medviewer.ui.jobs import JobQueue

SHORTCUTS_KEY = "F1"
VIEWS_SECTION = "Slice views (mouse and keys)"
VIEW_3D_SECTION = "3D view (mouse)"

#: (section, what, keys) handled inside the views' own event handlers, not by QActions.
VIEW_GESTURES: tuple[tuple[str, str, str], ...] = (
    (VIEWS_SECTION, "Move the crosshair", "Left click / drag"),
    (VIEWS_SECTION, "Next / previous slice", "Wheel, Page Up / Page Down, arrow keys"),
    (VIEWS_SECTION, "Zoom", "Ctrl+wheel, right drag"),
    (VIEWS_SECTION, "Pan", "Middle drag, Space+left drag"),
    (VIEWS_SECTION, "Window / level", "Shift+left drag"),
    (VIEWS_SECTION, "Reset zoom and pan of the view", "R"),
    (VIEWS_SECTION, "Cancel the tool's current stroke or shape", "Escape"),
    (VIEW_3D_SECTION, "Rotate / zoom / pan", "Left / right / middle drag"),
    (VIEW_3D_SECTION, "Move the crosshair to a surface or the volume", "Left click"),
)


@dataclass(frozen=True)
class ShortcutEntry:
    """One row of the shortcut sheet: where it lives, what it does, and its keys."""

    section: str
    action: str
    keys: str


def action_title(action: QAction) -> str:
    """An action's text as shown in a menu, without the mnemonic ``&``."""
    return action.text().replace("&&", "\0").replace("&", "").replace("\0", "&").strip()


def _keys_text(sequences: list[QKeySequence]) -> str:
    texts = [s.toString(QKeySequence.SequenceFormat.NativeText) for s in sequences if not s.isEmpty()]
    return ", ".join(texts)


def _panel_title(shortcut: QShortcut) -> str:
    """'<title> panel' of the dock holding a QShortcut's widget, or '' when it is not in a dock."""
    widget = shortcut.parent()
    while isinstance(widget, QWidget):
        if isinstance(widget, QDockWidget):
            return f"{widget.windowTitle()} panel"
        widget = widget.parentWidget()
    return ""


def collect_shortcuts(window: QMainWindow, include_gestures: bool = True) -> list[ShortcutEntry]:
    """Every keyboard shortcut of ``window``, menu by menu, then the views' own keys and gestures.

    Walks the menu bar (sections are menu paths such as "Tools > Brush"), then any
    other QAction owned by the window that has a key (under "Other") and the
    QShortcuts of panels (under "<dock title> panel").
    """
    entries: list[ShortcutEntry] = []
    seen: set[int] = set()

    def walk(menu: QMenu, path: str) -> None:
        for action in menu.actions():
            if action.isSeparator():
                continue
            seen.add(id(action))
            if action.menu() is not None:
                walk(action.menu(), f"{path} > {action_title(action)}")
                continue
            keys = _keys_text(action.shortcuts())
            if keys:
                entries.append(ShortcutEntry(path, action_title(action), keys))

    for top in window.menuBar().actions():
        if top.menu() is not None:
            seen.add(id(top))
            walk(top.menu(), action_title(top))
    for action in window.findChildren(QAction):
        keys = _keys_text(action.shortcuts())
        if keys and id(action) not in seen and action_title(action):
            seen.add(id(action))
            entries.append(ShortcutEntry("Other", action_title(action), keys))
    for shortcut in window.findChildren(QShortcut):
        keys = _keys_text([shortcut.key()])
        if keys:
            section = _panel_title(shortcut) or "Other"
            entries.append(ShortcutEntry(section, shortcut.whatsThis() or shortcut.objectName() or "(shortcut of this panel)", keys))
    if include_gestures:
        entries.extend(ShortcutEntry(*gesture) for gesture in VIEW_GESTURES)
    return entries


class ShortcutsDialog(QDialog):
    """A searchable table of every shortcut (Help > Keyboard shortcuts)."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.setWindowTitle("Keyboard shortcuts - medviewer")
        self.resize(720, 640)
        self.window_ = window
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter (action, menu or key)")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._apply_filter)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Action", "Shortcut", "Where"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.filter)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.entries: list[ShortcutEntry] = []
        self.refresh()

    def refresh(self) -> None:
        """Re-read the window's actions (plug-ins may have added some since)."""
        self.entries = collect_shortcuts(self.window_)
        self.table.setRowCount(len(self.entries))
        for row, entry in enumerate(self.entries):
            for column, text in enumerate((entry.action, entry.keys, entry.section)):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self._apply_filter(self.filter.text())

    def _apply_filter(self, text: str) -> None:
        needle = text.strip().lower()
        for row, entry in enumerate(self.entries):
            haystack = f"{entry.action} {entry.keys} {entry.section}".lower()
            self.table.setRowHidden(row, bool(needle) and needle not in haystack)

    def rows(self) -> list[tuple[str, str, str]]:
        """The visible rows as (action, keys, section)."""
        return [
            (entry.action, entry.keys, entry.section)
            for row, entry in enumerate(self.entries)
            if not self.table.isRowHidden(row)
        ]


def show_shortcuts(window: QMainWindow) -> ShortcutsDialog:
    """Open (or bring forward) the window's shortcut dialog; non-modal so it can stay open."""
    dialog = getattr(window, "_shortcuts_dialog", None)
    if dialog is None:
        dialog = ShortcutsDialog(window)
        window._shortcuts_dialog = dialog
    dialog.refresh()
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog


# ---------------------------------------------------------------------------- About
def app_icon() -> QIcon:
    """The application icon (resources/icons), empty when the files are missing."""
    icon = QIcon()
    for size in (16, 24, 32, 48, 64, 128, 256):
        path = resources_dir() / "icons" / f"medviewer-{size}.png"
        if path.is_file():
            icon.addFile(str(path))
    return icon


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...] = ()) -> str:
    cells = "".join(f"<th align='left'>{html.escape(h)}</th>" for h in header)
    out = [f"<table cellspacing='0' cellpadding='3'>{f'<tr>{cells}</tr>' if header else ''}"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    return "".join(out) + "</table>"


class AboutDialog(QDialog):
    """Versions, the compute device models run on, and the licences of the models and demo data."""

    def __init__(self, window: QMainWindow | None = None, registry=None) -> None:
        super().__init__(window)
        self.setWindowTitle("About medviewer")
        self.resize(760, 620)
        self.window_ = window
        ai_panel = getattr(window, "ai_panel", None)
        if registry is None and ai_panel is not None:
            registry = ai_panel.service.registry  # the models the AI panel shows
        self.device_preference = "auto"
        if ai_panel is not None and hasattr(ai_panel, "device"):
            self.device_preference = ai_panel.device.currentData() or "auto"
        self.versions = [*component_versions()[:2], ("Qt (runtime)", qVersion()), *component_versions()[2:]]
        self.licences = model_licences(registry)
        self.device: ComputeDevice | None = None
        self.device_text = "finding out (loading torch in the background)..."

        icon = QLabel()
        icon.setPixmap(app_icon().pixmap(72, 72))
        title = QLabel(f"<h2>medviewer {html.escape(__version__)}</h2>"
                       "CT, MR and X-ray viewer with AI-assisted annotation.<br>"
                       "Open source under the Apache License 2.0.")
        title.setTextFormat(Qt.TextFormat.RichText)
        head = QHBoxLayout()
        head.addWidget(icon)
        head.addWidget(title, 1)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(False)
        copy = QPushButton("Copy details")
        copy.setToolTip("Copy versions, device and licences as text (for bug reports)")
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.details_text()))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addLayout(head)
        layout.addWidget(self.browser, 1)
        layout.addWidget(buttons)
        self._render()

        self.jobs = JobQueue(max_parallel=1, parent=self)
        self.device_job = self.jobs.submit(
            lambda progress, cancel: detect_compute_device(progress, cancel, self.device_preference), "Finding the compute device"
        )
        self.device_job.finished.connect(self._on_device)
        self.device_job.failed.connect(self._on_device_failed)

    def _on_device(self, device: ComputeDevice) -> None:
        self.device = device
        self.device_text = device.summary()
        self._render()

    def _on_device_failed(self, error: BaseException) -> None:
        self.device_text = f"unknown: the AI engine could not be loaded ({error_text(error)})"
        self._render()

    def _demo_licences(self) -> list[tuple[str, str]]:
        folder = resources_dir() / "demo"
        rows = [("Demo data description and licences", str(folder / "README.md"))]
        rows += [(path.stem, str(path)) for path in sorted((folder / "LICENSES").glob("*")) if path.is_file()]
        return rows

    def _render(self) -> None:
        preference = "" if self.device_preference == "auto" else f" (chosen in the AI panel: {self.device_preference})"
        parts = [
            "<h3>AI compute device</h3>",
            f"<p><b>{html.escape(self.device_text)}</b>{html.escape(preference)}<br>"
            "<small>Automatic choice: an NVIDIA GPU (CUDA) when torch sees one, else an Apple GPU (MPS), "
            "else the CPU. The AI panel can force one.</small></p>",
            "<h3>Components</h3>",
            _table(self.versions),
            "<h3>Models and their licences</h3>",
            _table([(m.title, m.ref, m.origin, m.licence, m.training_data) for m in self.licences],
                   ("Model", "Version", "Source", "Licence", "Trained on")) if self.licences else "<p>No models found.</p>",
            "<h3>Demo data</h3>",
            "<p>The chest CT and radiograph are synthetic (generated on first use). The brain MR is the "
            "MNI ICBM152 2009a template; its licence and the other notices:</p>",
            _table(self._demo_licences()),
        ]
        scroll = self.browser.verticalScrollBar().value()
        self.browser.setHtml("".join(parts))
        self.browser.verticalScrollBar().setValue(scroll)

    def details_text(self) -> str:
        """Everything the dialog shows, as plain text."""
        lines = [f"medviewer {__version__}", f"AI compute device: {self.device_text}", "", "Components:"]
        lines += [f"  {name}: {version}" for name, version in self.versions]
        lines += ["", "Models:"]
        lines += [f"  {m.title} ({m.ref}, {m.origin}): licence {m.licence}; trained on {m.training_data}" for m in self.licences]
        return "\n".join(lines) + "\n"


def show_about(window: QMainWindow) -> AboutDialog:
    """Open the About dialog (non-modal; it fills in the compute device when torch has loaded)."""
    dialog = AboutDialog(window)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog


__all__ = [
    "VIEW_GESTURES",
    "AboutDialog",
    "ShortcutEntry",
    "ShortcutsDialog",
    "action_title",
    "app_icon",
    "collect_shortcuts",
    "show_about",
    "show_shortcuts",
]
