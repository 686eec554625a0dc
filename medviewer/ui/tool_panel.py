"""Tool panel: options of the editing tools and buttons for the one-shot label operations.

Values live in the Qt-free tools (``EditingController.tools``); the widgets only
read and write them, so keyboard shortcuts (brush size, 2D/3D) and the panel stay
in step through ``EditingController.brush_changed``.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from medviewer.services.editing import MAX_BRUSH_MM, MIN_BRUSH_MM, EditingController
from medviewer.tools.operations import SMOOTHING_METHODS


def _spin(low: float, high: float, value: float, step: float = 1.0, decimals: int = 1, suffix: str = "") -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setDecimals(decimals)
    spin.setSingleStep(step)
    spin.setValue(value)
    if suffix:
        spin.setSuffix(suffix)
    return spin


class ToolPanel(QWidget):
    """Brush, threshold, fill, region growing and box options, plus label operations."""

    def __init__(self, run_operation, parent: QWidget | None = None) -> None:
        """``run_operation(name, **options)`` performs a one-shot operation (the edit actions do it)."""
        super().__init__(parent)
        self.controller: EditingController | None = None
        self.run_operation = run_operation
        self._syncing = False

        # brush
        self.radius_spin = _spin(MIN_BRUSH_MM, MAX_BRUSH_MM, 5.0, 0.5, 2, " mm")
        self.radius_spin.valueChanged.connect(self._on_radius)
        self.sphere_check = QCheckBox("3D ball (Shift+B)")
        self.sphere_check.toggled.connect(self._on_sphere)
        brush_box = QGroupBox("Brush (B / E; [ and ] change the size)")
        brush_form = QFormLayout(brush_box)
        brush_form.addRow("Radius", self.radius_spin)
        brush_form.addRow(self.sphere_check)

        # threshold paint and fill bounds
        self.lower_spin = _spin(-100000, 100000, -100.0, 10.0, 1)
        self.upper_spin = _spin(-100000, 100000, 300.0, 10.0, 1)
        self.lower_spin.valueChanged.connect(self._on_threshold)
        self.upper_spin.valueChanged.connect(self._on_threshold)
        self.fill_bounded = QCheckBox("Fill (F) only within the range")
        self.fill_bounded.toggled.connect(self._on_threshold)
        threshold_box = QGroupBox("Intensity range (threshold paint T, bounded fill)")
        threshold_form = QFormLayout(threshold_box)
        threshold_form.addRow("From", self.lower_spin)
        threshold_form.addRow("To", self.upper_spin)
        threshold_form.addRow(self.fill_bounded)

        # region growing
        self.grow_method = QComboBox()
        self.grow_method.addItem("Connected threshold (seed +- tolerance)", "connected")
        self.grow_method.addItem("Confidence connected (statistics)", "confidence")
        self.grow_method.currentIndexChanged.connect(self._on_grow)
        self.grow_tolerance = _spin(0, 100000, 100.0, 10.0, 1)
        self.grow_tolerance.valueChanged.connect(self._on_grow)
        self.grow_roi = _spin(5, 1000, 60.0, 5.0, 0, " mm")
        self.grow_roi.valueChanged.connect(self._on_grow)
        self.grow_2d = QCheckBox("On the clicked slice only")
        self.grow_2d.toggled.connect(self._on_grow)
        grow_box = QGroupBox("Region growing (G)")
        grow_form = QFormLayout(grow_box)
        grow_form.addRow("Method", self.grow_method)
        grow_form.addRow("Tolerance", self.grow_tolerance)
        grow_form.addRow("Search radius", self.grow_roi)
        grow_form.addRow(self.grow_2d)

        # boxes
        self.box_class = QLineEdit("lesion")
        self.box_class.editingFinished.connect(self._on_box_class)
        box_box = QGroupBox("Boxes (D; N / Shift+N step, A accept, X reject, Del delete)")
        QFormLayout(box_box).addRow("New box class", self.box_class)

        # one-shot operations
        ops_box = QGroupBox("Label operations (active label)")
        ops = QVBoxLayout(ops_box)
        self.fill_between_button = QPushButton("Fill between slices (I)")
        self.fill_between_button.clicked.connect(lambda: self.run_operation("fill_between_slices"))
        self.seeds_button = QPushButton("Grow from seeds (Shift+G)")
        self.seeds_button.clicked.connect(lambda: self.run_operation("grow_from_seeds"))
        self.islands_size = QSpinBox()
        self.islands_size.setRange(1, 10_000_000)
        self.islands_size.setValue(100)
        self.islands_size.setSuffix(" voxels")
        self.islands_button = QPushButton("Remove islands (Shift+I)")
        self.islands_button.clicked.connect(
            lambda: self.run_operation("remove_small_islands", min_voxels=self.islands_size.value())
        )
        self.largest_button = QPushButton("Keep largest (Shift+L)")
        self.largest_button.clicked.connect(lambda: self.run_operation("keep_largest_component"))
        self.smooth_method = QComboBox()
        self.smooth_method.addItems(list(SMOOTHING_METHODS))
        self.smooth_radius = _spin(0.1, 50, 1.0, 0.5, 1, " mm")
        self.smooth_button = QPushButton("Smooth (Shift+S)")
        self.smooth_button.clicked.connect(
            lambda: self.run_operation("smooth", method=self.smooth_method.currentText(), radius_mm=self.smooth_radius.value())
        )
        ops.addWidget(self.fill_between_button)
        ops.addWidget(self.seeds_button)
        row = QHBoxLayout()
        row.addWidget(self.islands_button)
        row.addWidget(self.islands_size)
        ops.addLayout(row)
        ops.addWidget(self.largest_button)
        row = QHBoxLayout()
        row.addWidget(self.smooth_button)
        row.addWidget(self.smooth_method)
        row.addWidget(self.smooth_radius)
        ops.addLayout(row)

        layout = QVBoxLayout(self)
        for box in (brush_box, threshold_box, grow_box, box_box, ops_box):
            layout.addWidget(box)
        layout.addStretch(1)
        self.set_controller(None)

    # ------------------------------------------------------------------ binding
    def set_controller(self, controller: EditingController | None) -> None:
        if self.controller is not None:
            self.controller.brush_changed.disconnect(self.sync_from_tools)
        self.controller = controller
        if controller is not None:
            controller.brush_changed.connect(self.sync_from_tools)
        self.setEnabled(controller is not None)
        self.sync_from_tools()

    def sync_from_tools(self) -> None:
        """Show the tools' current settings."""
        controller = self.controller
        if controller is None:
            return
        self._syncing = True
        try:
            self.radius_spin.setValue(controller.brush_radius_mm)
            self.sphere_check.setChecked(controller.brush_sphere)
            threshold = controller.tool("threshold_paint")
            self.lower_spin.setValue(threshold.lower)
            self.upper_spin.setValue(threshold.upper)
            self.fill_bounded.setChecked(controller.tool("fill").intensity_range is not None)
            grow = controller.tool("grow")
            self.grow_method.setCurrentIndex(self.grow_method.findData(grow.method))
            self.grow_tolerance.setValue(grow.tolerance)
            self.grow_roi.setValue(grow.roi_radius_mm or 1000)
            self.grow_2d.setChecked(grow.in_plane)
            self.box_class.setText(controller.tool("box").label)
        finally:
            self._syncing = False

    # ------------------------------------------------------------------ edits of tool options
    def _on_radius(self, value: float) -> None:
        if not self._syncing and self.controller is not None:
            self.controller.set_brush_radius(value)

    def _on_sphere(self, checked: bool) -> None:
        if not self._syncing and self.controller is not None:
            self.controller.set_brush_sphere(checked)

    def _on_threshold(self, *_args) -> None:
        if self._syncing or self.controller is None:
            return
        lower, upper = sorted((self.lower_spin.value(), self.upper_spin.value()))
        threshold = self.controller.tool("threshold_paint")
        threshold.lower, threshold.upper = lower, upper
        self.controller.tool("fill").intensity_range = (lower, upper) if self.fill_bounded.isChecked() else None

    def _on_grow(self, *_args) -> None:
        if self._syncing or self.controller is None:
            return
        grow = self.controller.tool("grow")
        grow.method = self.grow_method.currentData()
        grow.tolerance = self.grow_tolerance.value()
        grow.roi_radius_mm = self.grow_roi.value()
        grow.in_plane = self.grow_2d.isChecked()

    def _on_box_class(self) -> None:
        if not self._syncing and self.controller is not None and self.box_class.text().strip():
            self.controller.tool("box").label = self.box_class.text().strip()
