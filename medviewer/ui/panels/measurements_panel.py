"""Measurements list: kind, slice and result of each ruler/ROI; click to jump, Delete to remove."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medviewer.core.document import Document
from medviewer.imaging import measurements as measure

_COLUMNS = ("Kind", "Slice", "Result")
_AXIS_PLANE = {2: "axial", 1: "coronal", 0: "sagittal"}


class MeasurementsPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document: Document | None = None
        self.measurements: measure.MeasurementList | None = None
        self.table = QTableWidget(0, len(_COLUMNS), self)
        self.table.setHorizontalHeaderLabels(list(_COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self.delete_selected)
        self.clear_button = QPushButton("Delete all")
        self.clear_button.clicked.connect(lambda: self.measurements.clear() if self.measurements else None)
        QShortcut(QKeySequence(Qt.Key.Key_Delete), self.table, self.delete_selected, context=Qt.ShortcutContext.WidgetShortcut)
        buttons = QHBoxLayout()
        buttons.addWidget(self.delete_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        self._updating = False

    def set_measurements(self, document: Document | None, measurements: measure.MeasurementList | None) -> None:
        if self.measurements is not None:
            self.measurements.changed.disconnect(self.rebuild)
        self.document, self.measurements = document, measurements
        if measurements is not None:
            measurements.changed.connect(self.rebuild)
        self.rebuild()

    def rebuild(self) -> None:
        self._updating = True
        items = list(self.measurements) if self.measurements is not None else []
        self.table.setRowCount(len(items))
        volume = self.document.volume if self.document is not None else None
        for row, item in enumerate(items):
            result = measure.describe(item, volume.array, volume.geometry, volume.metadata.calibrated, volume.metadata.units) if volume else ""
            cells = (item.kind, f"{_AXIS_PLANE[item.view_axis]} {item.slice_index + 1}", result)
            for column, text in enumerate(cells):
                cell = QTableWidgetItem(text)
                cell.setToolTip(text)
                self.table.setItem(row, column, cell)
        self._updating = False

    def delete_selected(self) -> None:
        if self.measurements is None:
            return
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()}, reverse=True)
        items = list(self.measurements)
        for row in rows:
            self.measurements.remove(items[row])

    def _on_selection(self) -> None:
        if self._updating or self.measurements is None or self.document is None:
            return
        rows = self.table.selectionModel().selectedRows()
        if rows:
            item = list(self.measurements)[rows[0].row()]
            self.document.set_cursor_index(item.center_index)
