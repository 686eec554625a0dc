"""Detections list: class, score, status and slices of every box; sortable; click to jump.

Selecting a row selects the detection in the document and moves the linked cursor
to its centre, so every view shows it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from medviewer.core.detection import Detection
from medviewer.core.document import Document

_COLUMNS = ("Class", "Score", "Status", "Slices")


class _NumberItem(QTableWidgetItem):
    """Sorts by its numeric value rather than its text."""

    def __init__(self, value: float, text: str) -> None:
        super().__init__(text)
        self.value = value

    def __lt__(self, other) -> bool:
        if isinstance(other, _NumberItem):
            return self.value < other.value
        return super().__lt__(other)


class DetectionsPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document: Document | None = None
        self.table = QTableWidget(0, len(_COLUMNS), self)
        self.table.setHorizontalHeaderLabels(list(_COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(1, Qt.SortOrder.DescendingOrder)
        self.table.itemSelectionChanged.connect(self._on_selection)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        self._updating = False

    def set_document(self, document: Document | None) -> None:
        if self.document is not None:
            self.document.detections_changed.disconnect(self.rebuild)
            self.document.selection_changed.disconnect(self._on_document_selection)
        self.document = document
        if document is not None:
            document.detections_changed.connect(self.rebuild)
            document.selection_changed.connect(self._on_document_selection)
        self.rebuild()

    def rebuild(self) -> None:
        from medviewer.ui.slice_view import STATUS_COLORS

        self._updating = True
        self.table.setSortingEnabled(False)
        self.table.setRowCount(0)
        doc = self.document
        detections = doc.detections if doc is not None else []
        self.table.setRowCount(len(detections))
        for row, detection in enumerate(detections):
            low, high = detection.voxel_box(doc.geometry)
            label = QTableWidgetItem(detection.label)
            label.setData(Qt.ItemDataRole.UserRole, detection.id)
            score = _NumberItem(detection.score, f"{detection.score:.2f}")
            status = QTableWidgetItem(detection.status.value)
            status.setForeground(QColor(*STATUS_COLORS[detection.status]))
            slices = _NumberItem(float(low[2]), f"{low[2] + 1}-{high[2] + 1}")
            for column, item in enumerate((label, score, status, slices)):
                self.table.setItem(row, column, item)
        self.table.setSortingEnabled(True)
        self._updating = False
        self._on_document_selection(doc.selected_detection if doc is not None else None)

    def detection_at_row(self, row: int) -> Detection | None:
        item = self.table.item(row, 0)
        if item is None or self.document is None:
            return None
        wanted = item.data(Qt.ItemDataRole.UserRole)
        return next((d for d in self.document.detections if d.id == wanted), None)

    def select_row(self, row: int) -> None:
        """Select a row as a user would (moves the cursor to that detection)."""
        self.table.selectRow(row)

    def _on_selection(self) -> None:
        if self._updating or self.document is None:
            return
        rows = self.table.selectionModel().selectedRows()
        if rows:
            detection = self.detection_at_row(rows[0].row())
            if detection is not None:
                self.document.select_detection(detection, move_cursor=True)

    def _on_document_selection(self, detection: Detection | None) -> None:
        self._updating = True
        self.table.clearSelection()
        if detection is not None:
            for row in range(self.table.rowCount()):
                if self.table.item(row, 0).data(Qt.ItemDataRole.UserRole) == detection.id:
                    self.table.selectRow(row)
                    break
        self._updating = False
