"""Rulers, ellipses and rectangles on the displayed slice, each with its text (length, mean, area...)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsLineItem, QGraphicsRectItem

from medviewer.core.volume import Volume
from medviewer.imaging import measurements as measure
from medviewer.imaging.reslice import SliceMapping
from medviewer.ui.overlay_colors import MEASUREMENT_COLOR
from medviewer.ui.slice_view.items import Z_SHAPES, cosmetic_pen, label_text_item, set_label_text


class MeasurementLayer:
    """The measurement shapes of one slice; texts are computed once per measurement."""

    def __init__(self, view_box: pg.ViewBox) -> None:
        self._view_box = view_box
        #: the graphics items drawn now: a shape and its text per measurement
        self.items: list = []
        self._text_cache: dict[str, str] = {}

    def forget_texts(self) -> None:
        """Another document: its measurements describe other voxels."""
        self._text_cache.clear()

    def _text(self, item: measure.Measurement, volume: Volume) -> str:
        text = self._text_cache.get(item.id)
        if text is None:
            text = measure.describe(item, volume.array, volume.geometry, volume.metadata.calibrated, volume.metadata.units)
            self._text_cache[item.id] = text
        return text

    def update(
        self, volume: Volume | None, measurements: measure.MeasurementList | None, mapping: SliceMapping | None, slice_index: int
    ) -> None:
        for graphics in self.items:
            self._view_box.removeItem(graphics)
        self.items = []
        if volume is None or measurements is None or mapping is None:
            return
        m = mapping
        pen = cosmetic_pen(MEASUREMENT_COLOR, 1.5)
        for item in measurements.on_slice(m.normal_axis, slice_index):
            ends = m.index_to_display(np.stack([item.start, item.end]))
            xs, ys = ends[:, 0] * m.col_spacing, ends[:, 1] * m.row_spacing
            if item.kind == measure.RULER:
                shape = QGraphicsLineItem(xs[0], ys[0], xs[1], ys[1])
                anchor_x, anchor_y = xs[1], ys[1]
            else:
                rect = QRectF(min(xs), min(ys), abs(xs[1] - xs[0]), abs(ys[1] - ys[0]))
                shape = QGraphicsEllipseItem(rect) if item.kind == measure.ELLIPSE else QGraphicsRectItem(rect)
                anchor_x, anchor_y = rect.right(), rect.bottom()
            shape.setPen(pen)
            shape.setZValue(Z_SHAPES)
            text = label_text_item()
            set_label_text(text, self._text(item, volume), MEASUREMENT_COLOR, above=False)
            text.setPos(anchor_x, anchor_y)
            text.setZValue(Z_SHAPES + 1)
            for graphics in (shape, text):
                self._view_box.addItem(graphics)
                self.items.append(graphics)
