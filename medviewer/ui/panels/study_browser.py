"""Study browser: the series found by a scan, with thumbnail, description, modality and size.

Double-clicking a series asks the main window to load it (``series_activated``).
Thumbnails are set by the window once a series is loaded (``set_thumbnail``), or by
any code that can compute one.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from medviewer.core.study import SeriesInfo
from medviewer.core.volume import Volume
from medviewer.imaging.reslice import AXIAL, plane_of_single_slice, slice_mapping
from medviewer.imaging.window_level import window_level_to_uint8

THUMBNAIL_SIZE = 64
_COLUMNS = ("Series", "Modality", "Size", "Files")


def series_size_text(series: SeriesInfo) -> str:
    if series.geometry is None:
        return ""
    x, y, z = series.geometry.size
    return f"{x}x{y}" if z == 1 else f"{x}x{y}x{z}"


def volume_thumbnail(volume: Volume, size: int = THUMBNAIL_SIZE) -> QPixmap:
    """A small picture of a volume's middle slice (axial, or the plane of a 2D image), default window."""
    plane = plane_of_single_slice(volume.geometry) if volume.is_2d else AXIAL
    mapping = slice_mapping(volume.geometry, plane)
    image = mapping.slice_of(volume.array, mapping.slice_count // 2)
    step = max(1, int(np.ceil(max(image.shape) / (2 * size))))
    center, width = volume.default_window()
    grey = np.ascontiguousarray(window_level_to_uint8(image[::step, ::step], center, width, volume.metadata.display_inverted))
    qimage = QImage(grey.data, grey.shape[1], grey.shape[0], grey.strides[0], QImage.Format.Format_Grayscale8).copy()
    # Keep the physical aspect ratio in the thumbnail.
    aspect = (mapping.rows * mapping.row_spacing) / max(mapping.cols * mapping.col_spacing, 1e-9)
    target = QSize(size, max(1, int(size * aspect))) if aspect <= 1 else QSize(max(1, int(size / aspect)), size)
    return QPixmap.fromImage(qimage.scaled(target, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation))


def grey_pixmap(grey: np.ndarray) -> QPixmap:
    """A pixmap of a 2D uint8 array."""
    grey = np.ascontiguousarray(grey, dtype=np.uint8)
    image = QImage(grey.data, grey.shape[1], grey.shape[0], grey.strides[0], QImage.Format.Format_Grayscale8)
    return QPixmap.fromImage(image.copy())


def placeholder_thumbnail(text: str, size: int = THUMBNAIL_SIZE) -> QPixmap:
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(40, 40, 48))
    painter = QPainter(pixmap)
    painter.setPen(QColor(170, 170, 180))
    painter.drawText(pixmap.rect(), Qt.AlignmentFlag.AlignCenter, text or "?")
    painter.end()
    return pixmap


class StudyBrowser(QWidget):
    """Lists series; double-click (or Enter) loads one."""

    series_activated = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(len(_COLUMNS))
        self.tree.setHeaderLabels(list(_COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setIconSize(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        self.tree.setAlternatingRowColors(True)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.itemActivated.connect(self._on_activated)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        self._series: list[SeriesInfo] = []

    @property
    def series(self) -> list[SeriesInfo]:
        return list(self._series)

    def set_series(self, series: list[SeriesInfo]) -> None:
        self._series = list(series)
        self.tree.clear()
        for info in self._series:
            title = info.description or info.uid or "(no description)"
            if info.number is not None:
                title = f"{info.number}: {title}"
            item = QTreeWidgetItem([title, info.modality, series_size_text(info), str(len(info.files))])
            item.setIcon(0, QIcon(placeholder_thumbnail(info.modality)))
            tooltip = [info.source_path or "", *info.warnings]
            item.setToolTip(0, "\n".join(t for t in tooltip if t))
            self.tree.addTopLevelItem(item)
        for column in range(1, len(_COLUMNS)):
            self.tree.resizeColumnToContents(column)

    def set_thumbnail(self, series: SeriesInfo, pixmap: QPixmap) -> None:
        index = self._index_of(series)
        if index is not None:
            self.tree.topLevelItem(index).setIcon(0, QIcon(pixmap))

    def mark_loaded(self, series: SeriesInfo | None) -> None:
        """Show which series is open (bold)."""
        loaded = self._index_of(series) if series is not None else None
        for row in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(row)
            font = item.font(0)
            font.setBold(row == loaded)
            item.setFont(0, font)

    def _index_of(self, series: SeriesInfo | None) -> int | None:
        for row, info in enumerate(self._series):
            if info is series or (series is not None and info.uid == series.uid and info.files == series.files):
                return row
        return None

    def _on_activated(self, item: QTreeWidgetItem, _column: int) -> None:
        row = self.tree.indexOfTopLevelItem(item)
        if 0 <= row < len(self._series):
            self.series_activated.emit(self._series[row])
