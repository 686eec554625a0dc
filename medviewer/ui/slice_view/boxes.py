"""Detection boxes where they cross the slice, coloured by review status, the selected one thicker."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtWidgets import QGraphicsRectItem

from medviewer.core.detection import Detection, DetectionStatus
from medviewer.core.document import Document
from medviewer.imaging.reslice import SliceMapping
from medviewer.ui.overlay_colors import STATUS_COLORS
from medviewer.ui.slice_view.items import Z_SHAPES, cosmetic_pen, label_text_item, set_label_text


class BoxLayer:
    """Rectangles and their "label score" texts, reused from slice to slice."""

    def __init__(self, view_box: pg.ViewBox) -> None:
        self._view_box = view_box
        self._items: list[list] = []  # [rect item, text item, state drawn]
        #: the boxes on the displayed slice and their rectangles in view (mm) coordinates
        self.drawn: list[tuple[Detection, QRectF]] = []
        self._cache: tuple[list[Detection], np.ndarray, np.ndarray] | None = None

    def invalidate(self) -> None:
        """The detections (or the document) changed: recompute the boxes on the next update."""
        self._cache = None

    def _boxes(self, document: Document, mapping: SliceMapping) -> tuple[list[Detection], np.ndarray, np.ndarray]:
        """Every detection's box in display coordinates (col, row, slice): low and high corners.

        Computed once per ``detections_changed``, so a slice change only compares numbers.
        """
        if self._cache is None:
            detections = list(document.detections)
            low = high = np.zeros((0, 3))
            if detections:
                bounds = np.array([np.stack(d.index_bounds(document.geometry)) for d in detections])
                display = mapping.index_to_display(bounds.reshape(-1, 3)).reshape(-1, 2, 3)
                low, high = display.min(axis=1), display.max(axis=1)
            self._cache = (detections, low, high)
        return self._cache

    def update(self, document: Document | None, mapping: SliceMapping | None, slice_index: int, visible: bool) -> None:
        self.drawn = []
        if document is not None and mapping is not None and visible:
            detections, low, high = self._boxes(document, mapping)
            m, s = mapping, slice_index
            crossing = np.flatnonzero((low[:, 2] < s + 0.5) & (high[:, 2] > s - 0.5))
            for index in crossing:
                x0, y0 = low[index, 0] * m.col_spacing, low[index, 1] * m.row_spacing
                x1, y1 = high[index, 0] * m.col_spacing, high[index, 1] * m.row_spacing
                self.drawn.append((detections[index], QRectF(x0, y0, x1 - x0, y1 - y0)))
        while len(self._items) < len(self.drawn):
            rect_item = QGraphicsRectItem()
            rect_item.setZValue(Z_SHAPES)
            text_item = label_text_item()
            text_item.setZValue(Z_SHAPES + 1)
            self._view_box.addItem(rect_item)
            self._view_box.addItem(text_item)
            self._items.append([rect_item, text_item, None])
        selected = document.selected_detection if document is not None else None
        for index, entry in enumerate(self._items):
            rect_item, text_item, drawn_state = entry
            if index >= len(self.drawn):
                if drawn_state is not None:
                    rect_item.hide()
                    text_item.hide()
                    entry[2] = None
                continue
            detection, rect = self.drawn[index]
            state = (detection.status, detection is selected, detection.label, detection.score, rect.getRect())
            if state == drawn_state:
                continue  # unchanged since the last slice: no Qt calls
            color = STATUS_COLORS[detection.status]
            style = Qt.PenStyle.DashLine if detection.status == DetectionStatus.REJECTED else Qt.PenStyle.SolidLine
            rect_item.setPen(cosmetic_pen(color, 3.0 if detection is selected else 1.5, style))
            rect_item.setRect(rect)
            set_label_text(text_item, f"{detection.label} {detection.score:.2f}", color, above=True)
            text_item.setPos(rect.left(), rect.top())
            rect_item.show()
            text_item.show()
            entry[2] = state

    def at(self, point: QPointF, tolerance: float) -> Detection | None:
        """The drawn box around a view (mm) point, within ``tolerance`` mm (smallest first), or None."""
        hits = [
            (rect.width() * rect.height(), detection)
            for detection, rect in self.drawn
            if rect.adjusted(-tolerance, -tolerance, tolerance, tolerance).contains(point)
        ]
        return min(hits, key=lambda hit: hit[0])[1] if hits else None
