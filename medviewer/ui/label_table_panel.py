"""Label table panel: the labels of the edited label map, the active label and the overwrite rule.

Rows show colour, value, name (editable in place), visibility and whether painting
may overwrite the label (used by the "selected labels" overwrite rule). Clicking a
row makes its label the one tools paint. Buttons add, recolour, merge, delete and
renumber labels; every change is one undo step through ``medviewer.tools.operations``.
The panel holds no state of its own: it rebuilds from the document's events.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QColorDialog,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medviewer.core.errors import MedviewerError
from medviewer.services.editing import EditingController
from medviewer.tools import operations
from medviewer.tools.session import OverwriteMode
from medviewer.ui import dialogs

COLUMNS = ("", "Value", "Name", "Visible", "Overwrite")
_COLOR, _VALUE, _NAME, _VISIBLE, _OVERWRITE = range(5)
OVERWRITE_TITLES = {
    OverwriteMode.ANY: "Paint over any label",
    OverwriteMode.BACKGROUND: "Paint over background only",
    OverwriteMode.SELECTED: "Paint over background and ticked labels",
}


class LabelTablePanel(QWidget):
    """Labels of the active label map of the current ``EditingController``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller: EditingController | None = None
        self._rebuilding = False
        self.title = QLabel("No label map")
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setStretchLastSection(False)
        self.table.setColumnWidth(_COLOR, 24)
        self.table.setColumnWidth(_VALUE, 48)
        self.table.setColumnWidth(_NAME, 140)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.currentCellChanged.connect(lambda row, *_: self._on_current_row(row))
        self.table.cellDoubleClicked.connect(self._on_double_click)

        self.overwrite_combo = QComboBox()
        for mode, title in OVERWRITE_TITLES.items():
            self.overwrite_combo.addItem(title, mode.value)
        self.overwrite_combo.currentIndexChanged.connect(self._on_overwrite_mode)

        self.add_button = QPushButton("Add")
        self.add_button.clicked.connect(lambda: self.add_label())
        self.recolor_button = QPushButton("Colour...")
        self.recolor_button.clicked.connect(lambda: self.recolor_current())
        self.merge_button = QPushButton("Merge into...")
        self.merge_button.clicked.connect(lambda: self.merge_current())
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(lambda: self.delete_current())
        self.value_button = QPushButton("Value...")
        self.value_button.clicked.connect(lambda: self.change_current_value())

        buttons = QHBoxLayout()
        for button in (self.add_button, self.recolor_button, self.merge_button, self.value_button, self.delete_button):
            buttons.addWidget(button)
        form = QFormLayout()
        form.addRow("Overwrite", self.overwrite_combo)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        layout.addLayout(form)
        self.set_controller(None)

    # ------------------------------------------------------------------ binding
    def set_controller(self, controller: EditingController | None) -> None:
        old = self.controller
        if old is not None:
            for signal, slot in self._connections(old):
                signal.disconnect(slot)
        self.controller = controller
        if controller is not None:
            for signal, slot in self._connections(controller):
                signal.connect(slot)
        self.setEnabled(controller is not None)
        self.rebuild()

    def _connections(self, controller: EditingController):
        document = controller.document
        return [
            (document.label_table_changed, self._on_table_changed),
            (document.active_label_map_changed, self._on_table_changed),
            (document.label_maps_changed, self.rebuild),
            (controller.session.active_value_changed, self._on_active_value),
            (controller.session.overwrite_changed, self._sync_overwrite),
        ]

    def _on_table_changed(self, *_args) -> None:
        self.rebuild()

    def _on_active_value(self, _value: int) -> None:
        self.rebuild()

    # ------------------------------------------------------------------ display
    def rebuild(self) -> None:
        """Refill the rows from the active label map's table."""
        self._rebuilding = True
        try:
            self.table.setRowCount(0)
            controller = self.controller
            label_map = controller.session.label_map if controller is not None else None
            self.title.setText(f"Labels of '{label_map.name}'" if label_map is not None else "No label map (painting creates one)")
            if controller is None:
                return
            session = controller.session
            values = list(label_map.table) if label_map is not None else []
            if session.active_value not in values:
                values = sorted([*values, session.active_value])
            for row, value in enumerate(values):
                info = label_map.table[value] if label_map is not None and value in label_map.table else None
                self.table.insertRow(row)
                swatch = QTableWidgetItem()
                color = info.color if info is not None else (200, 200, 200)
                swatch.setBackground(QColor(*color))
                swatch.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                swatch.setToolTip("Double-click to change the colour")
                self.table.setItem(row, _COLOR, swatch)
                value_item = QTableWidgetItem(str(value))
                value_item.setData(Qt.ItemDataRole.UserRole, value)
                value_item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                self.table.setItem(row, _VALUE, value_item)
                self.table.setItem(row, _NAME, QTableWidgetItem(info.name if info is not None else f"Label {value}"))
                for column, checked in ((_VISIBLE, info.visible if info else True), (_OVERWRITE, value in session.overwritable)):
                    item = QTableWidgetItem()
                    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsSelectable)
                    item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
                    self.table.setItem(row, column, item)
                if value == session.active_value:
                    self.table.selectRow(row)
                    self.table.setCurrentCell(row, _NAME)
            self._sync_overwrite()
        finally:
            self._rebuilding = False

    def _sync_overwrite(self) -> None:
        if self.controller is None:
            return
        index = self.overwrite_combo.findData(self.controller.session.overwrite.value)
        if index != self.overwrite_combo.currentIndex():
            self.overwrite_combo.blockSignals(True)
            self.overwrite_combo.setCurrentIndex(index)
            self.overwrite_combo.blockSignals(False)

    def current_value(self) -> int | None:
        row = self.table.currentRow()
        item = self.table.item(row, _VALUE) if row >= 0 else None
        return int(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None

    def row_of(self, value: int) -> int:
        for row in range(self.table.rowCount()):
            if int(self.table.item(row, _VALUE).data(Qt.ItemDataRole.UserRole)) == value:
                return row
        return -1

    # ------------------------------------------------------------------ edits
    def _run(self, title: str, action) -> None:
        try:
            action()
        except (MedviewerError, ValueError) as error:
            dialogs.show_error(self, title, str(error))

    def _on_current_row(self, row: int) -> None:
        if self._rebuilding or self.controller is None or row < 0:
            return
        value = self.current_value()
        if value is not None:
            self.controller.session.active_value = value

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._rebuilding or self.controller is None:
            return
        session = self.controller.session
        value = int(self.table.item(item.row(), _VALUE).data(Qt.ItemDataRole.UserRole))
        if item.column() == _NAME:
            self._run("Rename label", lambda: operations.rename_label(session, value, item.text()))
        elif item.column() == _VISIBLE:
            visible = item.checkState() == Qt.CheckState.Checked
            self._run("Show/hide label", lambda: operations.set_label_visible(session, value, visible))
        elif item.column() == _OVERWRITE:
            chosen = set(session.overwritable)
            if item.checkState() == Qt.CheckState.Checked:
                chosen.add(value)
            else:
                chosen.discard(value)
            session.overwritable = chosen

    def _on_overwrite_mode(self, index: int) -> None:
        if self.controller is not None and index >= 0:
            self.controller.session.overwrite = OverwriteMode(self.overwrite_combo.itemData(index))

    def _on_double_click(self, row: int, column: int) -> None:
        if column == _COLOR:
            self.recolor_current()

    def add_label(self, name: str | None = None) -> int | None:
        """Add a label with the next free value and make it active."""
        if self.controller is None:
            return None
        result: list[int] = []
        self._run("Add label", lambda: result.append(operations.add_label(self.controller.session, name or None)))
        return result[0] if result else None

    def recolor_current(self, color: tuple[int, int, int] | None = None) -> None:
        value = self.current_value()
        if self.controller is None or value is None:
            return
        if color is None:
            label_map = self.controller.session.label_map
            start = QColor(*label_map.table[value].color) if label_map is not None and value in label_map.table else QColor("yellow")
            chosen = QColorDialog.getColor(start, self, "Label colour")
            if not chosen.isValid():
                return
            color = (chosen.red(), chosen.green(), chosen.blue())
        self._run("Recolour label", lambda: operations.recolor_label(self.controller.session, value, color))

    def merge_current(self, target: int | None = None) -> None:
        value = self.current_value()
        if self.controller is None or value is None:
            return
        if target is None:
            others = [self.table.item(r, _VALUE).text() for r in range(self.table.rowCount()) if self.table.item(r, _VALUE).text() != str(value)]
            if not others:
                return
            text, ok = QInputDialog.getItem(self, "Merge label", f"Merge label {value} into:", others, 0, False)
            if not ok:
                return
            target = int(text)
        self._run("Merge labels", lambda: operations.merge_labels(self.controller.session, [value], target))

    def delete_current(self) -> None:
        value = self.current_value()
        if self.controller is not None and value is not None:
            self._run("Delete label", lambda: operations.delete_label(self.controller.session, value))

    def change_current_value(self, new_value: int | None = None) -> None:
        value = self.current_value()
        if self.controller is None or value is None:
            return
        if new_value is None:
            new_value, ok = QInputDialog.getInt(self, "Change label value", f"New value for label {value}:", value, 1, 65535)
            if not ok:
                return
        self._run("Change label value", lambda: operations.change_label_value(self.controller.session, value, new_value))
