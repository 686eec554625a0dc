"""Qt drawing primitives the slice view's layers share: the ARGB image item, pens, shape labels, placement."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPen, QTransform
from PySide6.QtWidgets import QGraphicsItem, QGraphicsSimpleTextItem

from medviewer.imaging.reslice import SlabSliceReader, SliceMapping

#: Stacking order of the layers in the view box (label maps add 0.01 per layer).
Z_IMAGE, Z_LABELS, Z_PREVIEW, Z_SHAPES, Z_CROSSHAIR = 0, 10, 30, 40, 50


def qcolor(rgb: tuple[int, int, int], alpha: int = 255) -> QColor:
    return QColor(int(rgb[0]), int(rgb[1]), int(rgb[2]), int(alpha))


def cosmetic_pen(rgb: tuple[int, int, int], width: float = 1.5, style=Qt.PenStyle.SolidLine, alpha: int = 255) -> QPen:
    """A pen of constant screen width, whatever the zoom."""
    pen = QPen(qcolor(rgb, alpha))
    pen.setWidthF(width)
    pen.setCosmetic(True)
    pen.setStyle(style)
    return pen


def label_text_item() -> QGraphicsSimpleTextItem:
    """Text drawn at a fixed screen size next to a shape (cheaper than rich-text items)."""
    item = QGraphicsSimpleTextItem()
    item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
    font = QFont()
    font.setPointSize(9)
    item.setFont(font)
    return item


def set_label_text(item: QGraphicsSimpleTextItem, text: str, rgb: tuple[int, int, int], above: bool) -> None:
    item.setText(text)
    item.setBrush(qcolor(rgb))
    # Ignoring the view's transform, the item's own transform is in screen pixels.
    item.setTransform(QTransform.fromTranslate(1, -item.boundingRect().height() if above else 1))


def pixel_transform(mapping: SliceMapping, row0: float, col0: float) -> QTransform:
    """Item transform placing image pixel (0, 0) of a block at display (col0, row0)."""
    transform = QTransform()
    transform.scale(mapping.col_spacing, mapping.row_spacing)
    transform.translate(col0 - 0.5, row0 - 0.5)
    return transform


def read_plane(mapping: SliceMapping, reader: SlabSliceReader, array: np.ndarray, slice_index: int, box=None) -> np.ndarray:
    """The displayed slice of a (z, y, x) array in display order, or of its ``box`` block only."""
    axis = mapping.array_axis(mapping.normal_axis)
    block = None if box is None else tuple(box[a] for a in range(3) if a != axis)
    return mapping.orient_plane(reader.plane(array, axis, slice_index, block))


class ArgbImageItem(QGraphicsItem):
    """Draws a (rows, cols) uint32 premultiplied-ARGB array, one unit per pixel, without copying it.

    Premultiplied ARGB32 is what Qt's raster engine draws without conversion; indexed
    or RGBA images would be converted on every repaint.
    """

    def __init__(self) -> None:
        super().__init__()
        self._array: np.ndarray | None = None
        self._qimage: QImage | None = None
        self._rect = QRectF()

    @property
    def array(self) -> np.ndarray | None:
        return self._array

    def set_pixels(self, argb: np.ndarray | None) -> None:
        if argb is None:
            self._array, self._qimage = None, None
        else:
            argb = np.ascontiguousarray(argb, dtype=np.uint32)
            rows, cols = argb.shape
            self._array = argb  # the QImage below points into this buffer
            self._qimage = QImage(argb.data, cols, rows, cols * 4, QImage.Format.Format_ARGB32_Premultiplied)
            rect = QRectF(0, 0, cols, rows)
            if rect != self._rect:
                self.prepareGeometryChange()
                self._rect = rect
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        return self._rect

    def paint(self, painter, option, widget=None) -> None:
        if self._qimage is not None:
            painter.drawImage(self._rect, self._qimage)
