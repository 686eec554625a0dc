"""The welcome screen, shown in place of the views while no study is open.

It offers what a first-time user needs: open a study (file or DICOM folder), open
the built-in demo (no network, generated on first use), the recent studies from the
settings, and a short sheet of the most used shortcuts read from the window's own
actions (Help > Keyboard shortcuts has them all).

``install_welcome(window)`` plugs it into a ``MainWindow`` through
``set_welcome_widget``; the window shows it whenever its document is None.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from medviewer import __version__
from medviewer.ui.help_dialogs import SHORTCUTS_KEY, VIEW_GESTURES, app_icon, collect_shortcuts

IMAGE_FILE_FILTER = (
    "Images (*.dcm *.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd *.png *.jpg *.jpeg *.tif *.tiff *.bmp);;All files (*)"
)
#: The demo studies offered (``DemoData`` attribute, menu text).
DEMO_STUDIES: tuple[tuple[str, str], ...] = (
    ("ct_dicom_dir", "Chest CT with lung labels and nodule boxes (synthetic)"),
    ("mr_path", "Brain MR (MNI ICBM152 template)"),
    ("radiograph_path", "Chest X-ray (computed from the CT)"),
)
#: Menu actions on the short sheet, by their menu text (missing ones are left out).
SHEET_ACTIONS = (
    "Open file...",
    "Open folder...",
    "Save annotations",
    "Undo",
    "Redo",
    "Paint brush",
    "Eraser",
    "Boxes (detections)",
    "Run selected model",
)
#: View gestures on the short sheet (from ``VIEW_GESTURES``).
SHEET_GESTURES = ("Next / previous slice", "Zoom", "Pan", "Window / level")
RECENT_SHOWN = 8

_STYLE = """
QWidget#welcome { background: #1e1f22; }
QLabel { color: #d8d8d8; background: transparent; }
QLabel#title { font-size: 26px; font-weight: 600; color: #f0f0f0; }
QLabel#heading { font-size: 15px; font-weight: 600; color: #9fc3ff; margin-top: 6px; }
QLabel#muted { color: #8c8c8c; }
QFrame#card { background: #26282c; border: 1px solid #34373c; border-radius: 10px; }
QPushButton { background: #34373c; color: #e8e8e8; border: 1px solid #45484e; border-radius: 6px;
              padding: 9px 16px; font-size: 14px; text-align: left; }
QPushButton:hover { background: #3d4046; }
QPushButton#primary { background: #2f6fc0; border-color: #3b82dc; color: white; }
QPushButton#primary:hover { background: #3b82dc; }
QListWidget { background: #1e1f22; color: #e0e0e0; border: 1px solid #34373c; border-radius: 6px; font-size: 13px; }
QListWidget::item { padding: 6px 4px; }
QListWidget::item:hover { background: #2d3035; }
"""


class WelcomeScreen(QWidget):
    """Open study / Open demo / recent studies / shortcut sheet.

    Parameters
    ----------
    window:
        The main window: ``open_path``, ``settings`` (recent files, last directory)
        and its menus (for the shortcut sheet).
    open_demo:
        ``fn(study)`` opening a demo study, ``study`` being a ``DemoData`` attribute
        name; by default ``medviewer.ui.app.open_demo``.
    """

    def __init__(self, window, open_demo: Callable[[str], None] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.window_ = window
        self._open_demo = open_demo
        self.setObjectName("welcome")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(_STYLE)

        # -- left card: start here
        icon = QLabel()
        icon.setPixmap(app_icon().pixmap(64, 64))
        title = QLabel("medviewer")
        title.setObjectName("title")
        tagline = QLabel(f"CT, MR and X-ray viewer with AI-assisted annotation - version {html.escape(__version__)}")
        tagline.setObjectName("muted")
        tagline.setWordWrap(True)
        self.open_button = QPushButton("Open study...")
        self.open_button.setObjectName("primary")
        self.open_button.setToolTip("A DICOM file, NIfTI, NRRD, MHA/MHD or an image (PNG, JPEG, TIFF)")
        self.open_button.clicked.connect(self.choose_file)
        self.folder_button = QPushButton("Open DICOM folder...")
        self.folder_button.setToolTip("A folder of DICOM files (searched recursively; every series is listed)")
        self.folder_button.clicked.connect(self.choose_folder)
        self.demo_button = QPushButton("Open demo")
        self.demo_button.setToolTip("Built-in demo studies, made on this computer the first time (no network)")
        self.demo_button.clicked.connect(lambda: self.open_demo(DEMO_STUDIES[0][0]))
        self.demo_menu = QMenu(self)
        for study, text in DEMO_STUDIES:
            self.demo_menu.addAction(text, lambda s=study: self.open_demo(s))
        self.more_demos = QPushButton("More demos")
        self.more_demos.setMenu(self.demo_menu)
        demo_row = QHBoxLayout()
        demo_row.addWidget(self.demo_button, 1)
        demo_row.addWidget(self.more_demos)
        drop = QLabel("Or drop a file or folder anywhere on this window.")
        drop.setObjectName("muted")

        start = QVBoxLayout()
        header = QHBoxLayout()
        header.addWidget(icon)
        names = QVBoxLayout()
        names.addWidget(title)
        names.addWidget(tagline)
        header.addLayout(names, 1)
        start.addLayout(header)
        start.addSpacing(12)
        start.addWidget(self.open_button)
        start.addWidget(self.folder_button)
        start.addLayout(demo_row)
        start.addWidget(drop)
        start.addStretch(1)

        # -- middle card: recent studies
        recent_heading = QLabel("Recent studies")
        recent_heading.setObjectName("heading")
        self.recent_list = QListWidget()
        self.recent_list.setVerticalScrollMode(QListWidget.ScrollMode.ScrollPerPixel)
        self.recent_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.recent_list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.recent_list.setWordWrap(False)
        self.recent_list.itemClicked.connect(self.open_recent)
        self.recent_list.itemActivated.connect(self.open_recent)
        self.recent_empty = QLabel("Studies you open are listed here.")
        self.recent_empty.setObjectName("muted")
        recent = QVBoxLayout()
        recent.addWidget(recent_heading)
        recent.addWidget(self.recent_list, 1)
        recent.addWidget(self.recent_empty)

        # -- right card: shortcut sheet
        sheet_heading = QLabel("Keyboard and mouse")
        sheet_heading.setObjectName("heading")
        self.sheet = QLabel()
        self.sheet.setTextFormat(Qt.TextFormat.RichText)
        self.sheet.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.sheet.setWordWrap(True)
        more = QLabel(f"All shortcuts: Help > Keyboard shortcuts ({SHORTCUTS_KEY})")
        more.setObjectName("muted")
        sheet = QVBoxLayout()
        sheet.addWidget(sheet_heading)
        sheet.addWidget(self.sheet, 1)
        sheet.addWidget(more)

        grid = QGridLayout()
        grid.setSpacing(16)
        for content, row, column, span in ((start, 0, 0, 1), (recent, 0, 1, 1), (sheet, 1, 0, 2)):
            card = QFrame()
            card.setObjectName("card")
            card.setLayout(content)
            content.setContentsMargins(18, 14, 18, 14)
            grid.addWidget(card, row, column, 1, span)
        grid.setColumnStretch(0, 2)
        grid.setColumnStretch(1, 3)
        grid.setRowStretch(0, 1)
        holder = QWidget()
        holder.setMaximumSize(1200, 720)
        holder.setLayout(grid)
        outer = QGridLayout(self)
        outer.setContentsMargins(24, 24, 24, 24)
        outer.addWidget(holder, 0, 0)
        self.refresh()

    # ------------------------------------------------------------------ content
    def refresh(self) -> None:
        """Re-read the recent studies and the shortcuts (both change while the app runs)."""
        self.recent_list.clear()
        for path in list(self.window_.settings.recent_files)[:RECENT_SHOWN]:
            location = Path(path)
            exists = location.exists()
            name = location.name or path
            item = QListWidgetItem(f"{name}\n{location.parent}" + ("" if exists else "   (not found)"))
            item.setData(Qt.ItemDataRole.UserRole, path)
            item.setToolTip(path)
            if not exists:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
            self.recent_list.addItem(item)
        has_recent = self.recent_list.count() > 0
        self.recent_list.setVisible(has_recent)
        self.recent_empty.setVisible(not has_recent)
        self.sheet.setText(self._sheet_html())

    def sheet_entries(self) -> list[tuple[str, str]]:
        """(what, keys) on the short sheet, from the window's actions and the views' gestures."""
        wanted = {title.lower(): title for title in SHEET_ACTIONS}
        found: dict[str, str] = {}
        for entry in collect_shortcuts(self.window_, include_gestures=False):
            key = entry.action.lower()
            if key in wanted and key not in found:
                found[key] = entry.keys
        rows = [(wanted[key].rstrip("."), found[key]) for key in wanted if key in found]
        rows += [(what, keys) for _section, what, keys in VIEW_GESTURES if what in SHEET_GESTURES]
        return rows

    def _sheet_html(self) -> str:
        entries = self.sheet_entries()
        half = (len(entries) + 1) // 2
        rows = []
        for index in range(half):
            cells = []
            for what, keys in (entries[index], entries[index + half] if index + half < len(entries) else ("", "")):
                cells.append(f"<td style='color:#cfe0ff; padding-right:10px'>{html.escape(keys)}</td>"
                             f"<td style='padding-right:28px'>{html.escape(what)}</td>")
            rows.append(f"<tr>{''.join(cells)}</tr>")
        return f"<table cellspacing='0' cellpadding='3'>{''.join(rows)}</table>"

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.refresh()
        super().showEvent(event)

    # ------------------------------------------------------------------ actions
    def _start_directory(self) -> str:
        return self.window_.settings.last_directory or str(Path.home())

    def choose_file(self) -> None:
        """Ask for an image file and open it."""
        path, _ = QFileDialog.getOpenFileName(self, "Open study", self._start_directory(), IMAGE_FILE_FILTER)
        if path:
            self.window_.settings.last_directory = str(Path(path).parent)
            self.window_.open_path(path)

    def choose_folder(self) -> None:
        """Ask for a DICOM folder and open it."""
        path = QFileDialog.getExistingDirectory(self, "Open DICOM folder", self._start_directory())
        if path:
            self.window_.settings.last_directory = str(Path(path).parent)
            self.window_.open_path(path)

    def open_demo(self, study: str = "ct_dicom_dir") -> None:
        """Open a demo study (generated in the background the first time)."""
        if self._open_demo is not None:
            self._open_demo(study)
            return
        from medviewer.ui.app import open_demo  # imported late: app imports this module's installer

        open_demo(self.window_, study)

    def open_recent(self, item: QListWidgetItem) -> None:
        """Open the recent study behind ``item`` (missing ones are disabled)."""
        path = item.data(Qt.ItemDataRole.UserRole)
        if path and item.flags() & Qt.ItemFlag.ItemIsEnabled:
            self.window_.open_path(path)


def install_welcome(window, open_demo: Callable[[str], None] | None = None) -> WelcomeScreen:
    """Give ``window`` a welcome screen, shown whenever no study is open; returns it."""
    screen = WelcomeScreen(window, open_demo)
    window.set_welcome_widget(screen)  # then ``window.welcome`` / ``window.welcome_widget``
    return screen


__all__ = ["DEMO_STUDIES", "IMAGE_FILE_FILTER", "WelcomeScreen", "install_welcome"]
