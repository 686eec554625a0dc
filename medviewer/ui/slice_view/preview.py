"""The active tool's preview (``ToolPreview``): a translucent mask and outlines, on its own slice only."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QPainterPath
from PySide6.QtWidgets import QGraphicsPathItem

from medviewer.imaging.reslice import SliceMapping
from medviewer.imaging.window_level import argb32
from medviewer.tools.base import ToolPreview
from medviewer.ui.slice_view.items import Z_PREVIEW, ArgbImageItem, cosmetic_pen, pixel_transform


class PreviewLayer:
    """A mask image and a path, hidden when the preview belongs to another slice or view."""

    def __init__(self, view_box: pg.ViewBox) -> None:
        self.mask_item = ArgbImageItem()
        self.mask_item.setZValue(Z_PREVIEW)
        self.mask_item.hide()
        view_box.addItem(self.mask_item)
        self.path_item = QGraphicsPathItem()
        self.path_item.setZValue(Z_PREVIEW + 1)
        self.path_item.hide()
        view_box.addItem(self.path_item)

    def clear(self) -> None:
        self.mask_item.hide()
        self.path_item.hide()

    def draw(self, preview: ToolPreview | None, mapping: SliceMapping | None, slice_index: int) -> None:
        m = mapping
        if preview is None or m is None or preview.view_axis != m.normal_axis or int(preview.slice_index) != slice_index:
            self.clear()
            return
        if preview.mask is not None and np.asarray(preview.mask).size:
            mask = np.asarray(preview.mask, dtype=bool)
            row0, col0, _rows, _cols = m.plane_block_to_display(tuple(preview.mask_origin), mask.shape)
            colors = argb32(np.array([[0, 0, 0], preview.color], dtype=np.uint8), np.array([0, 128]))
            self.mask_item.set_pixels(colors[m.orient_plane(mask).astype(np.uint8)])
            self.mask_item.setTransform(pixel_transform(m, row0, col0))
            self.mask_item.show()
        else:
            self.mask_item.hide()
        if preview.polylines:
            path = QPainterPath()
            for line in preview.polylines:
                points = m.index_to_display(np.asarray(line, float).reshape(-1, 3))
                if len(points) == 0:
                    continue
                path.moveTo(points[0, 0] * m.col_spacing, points[0, 1] * m.row_spacing)
                for col, row, _ in points[1:]:
                    path.lineTo(col * m.col_spacing, row * m.row_spacing)
                if preview.closed and len(points) > 2:
                    path.closeSubpath()
            self.path_item.setPath(path)
            self.path_item.setPen(cosmetic_pen(preview.color, 1.5))
            self.path_item.show()
        else:
            self.path_item.hide()
