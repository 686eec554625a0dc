"""Layer panel: the image, its label maps (visibility, opacity, fill/outline, active) and detections.

The panel edits ``DisplaySettings`` and the document; it keeps no state of its own
and rebuilds itself from their events.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medviewer.core.document import Document
from medviewer.core.labels import LabelMap
from medviewer.services.workspace import DisplaySettings

_IMAGE, _LABELS, _DETECTIONS = "image", "labels", "detections"


class LayerPanel(QWidget):
    """Tree of layers plus the display options of the selected label map."""

    def __init__(self, display: DisplaySettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.display = display
        self.document: Document | None = None
        self.tree = QTreeWidget(self)
        self.tree.setHeaderHidden(True)
        self.tree.setRootIsDecorated(False)
        self.tree.itemChanged.connect(self._on_item_changed)
        self.tree.currentItemChanged.connect(lambda *_: self._sync_controls())

        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.valueChanged.connect(self._on_opacity)
        self.style_combo = QComboBox()
        self.style_combo.addItems(["Fill", "Outline"])
        self.style_combo.currentIndexChanged.connect(self._on_style)
        self.active_button = QPushButton("Edit this label map")
        self.active_button.setToolTip("Make the selected label map the one editing tools change")
        self.active_button.clicked.connect(self._on_make_active)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self._on_remove)

        form = QFormLayout()
        form.addRow("Opacity", self.opacity_slider)
        form.addRow("Style", self.style_combo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.active_button)
        buttons.addWidget(self.remove_button)
        self.controls = QWidget()
        controls_layout = QVBoxLayout(self.controls)
        controls_layout.setContentsMargins(0, 0, 0, 0)
        controls_layout.addLayout(form)
        controls_layout.addLayout(buttons)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.controls)
        self.hint = QLabel("Open a study to see its layers.")
        self.hint.setWordWrap(True)
        layout.addWidget(self.hint)
        display.label_display_changed.connect(lambda _lm: self.rebuild())
        display.overlays_changed.connect(self.rebuild)
        self._updating = False
        self._applying_check = False
        self.rebuild()

    # ------------------------------------------------------------------ binding
    def set_document(self, document: Document | None) -> None:
        if self.document is not None:
            for signal in (self.document.label_maps_changed, self.document.detections_changed, self.document.active_label_map_changed):
                signal.disconnect(self.rebuild)
            self.document.label_table_changed.disconnect(self.rebuild)
        self.document = document
        if document is not None:
            document.label_maps_changed.connect(self.rebuild)
            document.detections_changed.connect(self.rebuild)
            document.active_label_map_changed.connect(self.rebuild)
            document.label_table_changed.connect(self.rebuild)
        self.rebuild()

    def rebuild(self, *_args) -> None:
        if self._applying_check:
            # A check box of the tree itself changed the display model: the item already shows it,
            # and clearing the tree from inside that item's own signal frees it while Qt still
            # uses it (a segmentation fault).
            return
        self._updating = True
        selected = self.selected_label_map()
        self.tree.clear()
        doc = self.document
        self.hint.setVisible(doc is None)
        if doc is not None:
            image = QTreeWidgetItem([f"Image: {doc.volume.name} ({doc.volume.modality or 'unknown'})"])
            image.setData(0, Qt.ItemDataRole.UserRole, (_IMAGE, None))
            self.tree.addTopLevelItem(image)
            for label_map in reversed(doc.label_maps):
                active = " [editing]" if label_map is doc.active_label_map else ""
                item = QTreeWidgetItem([f"Labels: {label_map.name}{active}"])
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                visible = self.display.label_display(label_map).visible
                item.setCheckState(0, Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked)
                item.setData(0, Qt.ItemDataRole.UserRole, (_LABELS, label_map))
                item.setToolTip(0, ", ".join(f"{v}: {i.name}" for v, i in label_map.table.items()) or "empty table")
                self.tree.addTopLevelItem(item)
                if label_map is selected:
                    self.tree.setCurrentItem(item)
            detections = QTreeWidgetItem([f"Detections ({len(doc.detections)})"])
            detections.setFlags(detections.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            detections.setCheckState(0, Qt.CheckState.Checked if self.display.detections_visible else Qt.CheckState.Unchecked)
            detections.setData(0, Qt.ItemDataRole.UserRole, (_DETECTIONS, None))
            self.tree.addTopLevelItem(detections)
            if self.tree.currentItem() is None and doc.label_maps:
                self.tree.setCurrentItem(self.tree.topLevelItem(1))
        self._updating = False
        self._sync_controls()

    # ------------------------------------------------------------------ helpers
    def selected_label_map(self) -> LabelMap | None:
        item = self.tree.currentItem()
        if item is None:
            return None
        kind, payload = item.data(0, Qt.ItemDataRole.UserRole)
        return payload if kind == _LABELS else None

    def _sync_controls(self) -> None:
        label_map = self.selected_label_map()
        self.controls.setEnabled(label_map is not None)
        if label_map is None:
            return
        settings = self.display.label_display(label_map)
        self._updating = True
        self.opacity_slider.setValue(int(round(settings.opacity * 100)))
        self.style_combo.setCurrentIndex(1 if settings.outline else 0)
        self._updating = False

    def _on_item_changed(self, item: QTreeWidgetItem, _column: int) -> None:
        if self._updating:
            return
        kind, payload = item.data(0, Qt.ItemDataRole.UserRole)
        checked = item.checkState(0) == Qt.CheckState.Checked
        self._applying_check = True
        try:
            if kind == _LABELS:
                self.display.set_label_display(payload, visible=checked)
            elif kind == _DETECTIONS:
                self.display.set_detections_visible(checked)
        finally:
            self._applying_check = False

    def _on_opacity(self, value: int) -> None:
        label_map = self.selected_label_map()
        if label_map is not None and not self._updating:
            self.display.set_label_display(label_map, opacity=value / 100.0)

    def _on_style(self, index: int) -> None:
        label_map = self.selected_label_map()
        if label_map is not None and not self._updating:
            self.display.set_label_display(label_map, outline=index == 1)

    def _on_make_active(self) -> None:
        label_map = self.selected_label_map()
        if label_map is not None and self.document is not None:
            self.document.set_active_label_map(label_map)

    def _on_remove(self) -> None:
        label_map = self.selected_label_map()
        if label_map is not None and self.document is not None:
            self.document.remove_label_map(label_map)
