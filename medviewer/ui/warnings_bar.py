"""What the reader had to assume about the open study, shown without getting in the way.

The readers put everything they corrected or invented into the volume's warnings
(NaN voxels, a voxel size or orientation the header did not give, a series without
SeriesInstanceUID, pixel values widened to another type). A radiologist must see them
before trusting a distance, yet a dialog on every open would be clicked away: like 3D
Slicer's notices, a yellow bar above the views says it in one line (invented geometry
first), "Details" lists every warning in the bar, and the bar can be hidden. A
warning icon in the status bar stays while the study is open and brings the bar back.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from medviewer.core.document import Document
from medviewer.services.load_warnings import invented_geometry

_STYLE = """
QFrame#load_warnings_bar { background: #fff1b8; border-bottom: 1px solid #d9b84a; }
QFrame#load_warnings_bar QLabel { color: #3a2c00; background: transparent; }
QFrame#load_warnings_bar QToolButton { color: #3a2c00; background: transparent; border: 1px solid #c9a83a;
                                       border-radius: 3px; padding: 1px 6px; }
QFrame#load_warnings_bar QToolButton:checked { background: #f3dc85; }
"""


def document_warnings(document: Document | None) -> list[str]:
    """Scan-time and load-time warnings of the open study, each once, in the order found."""
    if document is None:
        return []
    found = list(document.series.warnings) if document.series is not None else []
    return list(dict.fromkeys(found + list(document.volume.metadata.warnings)))


class LoadWarningsBar(QFrame):
    """A non-blocking notice of the open study's load warnings (see the module docstring).

    ``status_button`` belongs in the window's status bar; the window calls
    :meth:`show_for` whenever another document is shown.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("load_warnings_bar")
        self.setStyleSheet(_STYLE)
        self.warnings: list[str] = []
        self.invented: list[str] = []
        #: the one-line notice in full (the label shows it elided to the bar's width)
        self.summary_text = ""

        icon = QLabel()
        icon.setPixmap(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(16, 16))
        self.summary = QLabel()
        # A long warning must not widen the window: the bar takes the width it is given.
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.details_button = QToolButton()
        self.details_button.setText("Details")
        self.details_button.setCheckable(True)
        self.details_button.toggled.connect(self._show_details)
        self.hide_button = QToolButton()
        self.hide_button.setText("Hide")
        self.hide_button.setToolTip("Hide this notice; the warning icon in the status bar shows it again")
        self.hide_button.clicked.connect(self.hide)
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.details.hide()

        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(icon)
        row.addWidget(self.summary, 1)
        row.addWidget(self.details_button)
        row.addWidget(self.hide_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.setSpacing(3)
        layout.addLayout(row)
        layout.addWidget(self.details)

        self.status_button = QToolButton()
        self.status_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning))
        self.status_button.setAutoRaise(True)
        self.status_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.status_button.clicked.connect(self.reveal)
        self.status_button.hide()
        self.hide()

    def show_for(self, document: Document | None) -> None:
        """Show the warnings of ``document`` (hidden when it has none, or when None)."""
        name = ""
        if document is not None:
            source = document.volume.metadata.source_path or (document.series.source_path if document.series else "")
            name = Path(source).name if source else (document.volume.name or "the image")
        warnings = document_warnings(document)
        self.invented = [w for w in warnings if w in set(invented_geometry(document.volume))] if document else []
        # Invented geometry first: it is what makes a measurement wrong.
        self.warnings = self.invented + [w for w in warnings if w not in self.invented]
        self.details_button.setChecked(False)
        if not self.warnings:
            self.hide()
            self.status_button.hide()
            return
        count = len(self.warnings)
        counted = f"{count} warning{'s' if count != 1 else ''}"
        if self.invented:
            lead = f"{name}: geometry assumed by the reader, so distances, volumes and AI results may be wrong: "
        else:
            lead = f"{name} opened with {counted}: "
        more = f" (+{count - 1} more)" if count > 1 else ""
        self.summary_text = lead + self.warnings[0] + more
        self._elide()
        listing = "\n".join(f"\u2022 {w}" for w in self.warnings)
        self.details.setText(listing)
        self.summary.setToolTip(listing)
        self.status_button.setText(counted)
        self.status_button.setToolTip(f"{name} was opened with {counted} (click to show them):\n{listing}")
        self.status_button.show()
        self.show()

    def reveal(self) -> None:
        """Show the bar with every warning listed (the status-bar icon's click)."""
        if self.warnings:
            self.show()
            self.details_button.setChecked(True)

    def _show_details(self, shown: bool) -> None:
        self.details.setVisible(shown)

    def _elide(self) -> None:
        width = max(self.summary.width(), 50)
        self.summary.setText(self.summary.fontMetrics().elidedText(self.summary_text, Qt.TextElideMode.ElideRight, width))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._elide()
