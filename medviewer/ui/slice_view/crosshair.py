"""The crosshair: the other two planes' lines through the linked cursor, each in its plane's colour."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QGraphicsLineItem

from medviewer.imaging.reslice import SliceMapping
from medviewer.ui.overlay_colors import PLANE_COLORS
from medviewer.ui.slice_view.items import Z_CROSSHAIR, cosmetic_pen

#: Which plane a vertical / horizontal crosshair line belongs to, per view plane.
CROSSHAIR_PLANES = {"axial": ("sagittal", "coronal"), "coronal": ("sagittal", "axial"), "sagittal": ("coronal", "axial")}


class CrosshairLayer:
    """A vertical and a horizontal line across the whole slice."""

    def __init__(self, view_box: pg.ViewBox, plane: str) -> None:
        vertical_plane, horizontal_plane = CROSSHAIR_PLANES[plane]
        self.vertical = QGraphicsLineItem()
        self.horizontal = QGraphicsLineItem()
        for line, other in ((self.vertical, vertical_plane), (self.horizontal, horizontal_plane)):
            line.setPen(cosmetic_pen(PLANE_COLORS[other], 1.0, alpha=200))
            line.setZValue(Z_CROSSHAIR)
            view_box.addItem(line)

    def update(self, visible: bool, mapping: SliceMapping | None = None, cursor_index: np.ndarray | None = None) -> None:
        """Show the lines through ``cursor_index`` (i, j, k), or hide them."""
        self.vertical.setVisible(visible)
        self.horizontal.setVisible(visible)
        if not visible:
            return
        m = mapping
        col, row, _ = m.index_to_display(cursor_index)
        x, y = col * m.col_spacing, row * m.row_spacing
        width, height = m.cols * m.col_spacing, m.rows * m.row_spacing
        left, top = -0.5 * m.col_spacing, -0.5 * m.row_spacing
        self.vertical.setLine(x, top, x, top + height)
        self.horizontal.setLine(left, y, left + width, y)

    def crossing(self, mapping: SliceMapping) -> tuple[float, float] | None:
        """Display (col, row) where the lines cross as drawn, or None when hidden."""
        if not self.vertical.isVisible():
            return None
        return self.vertical.line().x1() / mapping.col_spacing, self.horizontal.line().y1() / mapping.row_spacing
