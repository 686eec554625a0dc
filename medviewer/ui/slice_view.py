"""SliceView: one anatomical plane of the open document (pyqtgraph).

What it shows: the image slice through the linked cursor (window/level and colour
map from ``DisplaySettings``), label maps (RGBA lookup table, fill or outline),
detection boxes where they cross the slice, measurements, the crosshair, the
active tool's preview, orientation letters and slice/window text.

Screen space: the view's coordinates are millimetres, ``x = col * col_spacing``
and ``y = row * row_spacing`` with display pixel centres at integer (col, row)
(``medviewer.imaging.reslice``), so the physical aspect ratio is kept by locking
the ViewBox aspect to 1.

Mouse and keys (when no tool consumes the event):

* left click/drag: move the crosshair (crosshair mode), window/level (W/L mode or
  Shift+drag), pan or zoom (pan/zoom modes); a click on a detection box selects it;
* middle drag or Space+left drag: pan; right drag or Ctrl+wheel: zoom;
* wheel, Page Up/Down, arrow keys: change slice; R: reset view; Escape: cancel tool.

Tools: with ``set_tool(tool)``, left press/drag/release, double clicks and hover
moves over the image become ``medviewer.tools.base.PointerEvent`` passed to
``tool.handle``; if it returns True the view does nothing else with the event.
After each event the view draws ``tool.preview()`` (a ``ToolPreview``) if it
belongs to the displayed slice.

Redraws follow the document's psygnal events: ``cursor_moved`` (slice change:
image, labels, boxes, measurements; otherwise only the crosshair),
``labels_changed(label_map, region)`` (only the current slice, only when the region
contains it), ``detections_changed``, ``selection_changed``, ``label_maps_changed``,
``label_table_changed``. Slices are NumPy views of the volume; window/level is a
lookup on the 2D slice only. Callers must change the document on the UI thread.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPainterPath, QPen, QPixmap, QTransform
from PySide6.QtWidgets import (
    QFrame,
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsLineItem,
    QGraphicsPathItem,
    QGraphicsRectItem,
    QGraphicsSimpleTextItem,
    QWidget,
)

from medviewer.core.detection import Detection, DetectionStatus
from medviewer.core.document import Document
from medviewer.core.labels import LabelMap
from medviewer.imaging import measurements as measure
from medviewer.imaging.overlays import LabelBounds, label_argb_table, label_outline
from medviewer.imaging.reslice import (
    PLANES,
    SlabSliceReader,
    SliceMapping,
    is_projection_image,
    projection_letters,
    slice_mapping,
    slice_position_text,
)
from medviewer.imaging.window_level import SliceWindowing, Window, argb32, colormap_lookup_table, window_after_drag
from medviewer.services.workspace import DisplaySettings
from medviewer.tools.base import PointerAction, PointerEvent, Tool, ToolPreview

pg.setConfigOptions(imageAxisOrder="row-major")

#: Colours of the three planes (as 3D Slicer: axial red, coronal green, sagittal yellow).
PLANE_COLORS = {"axial": (230, 70, 70), "coronal": (90, 200, 90), "sagittal": (235, 210, 70)}
#: Which plane a vertical / horizontal crosshair line belongs to, per view plane.
_CROSSHAIR_PLANES = {"axial": ("sagittal", "coronal"), "coronal": ("sagittal", "axial"), "sagittal": ("coronal", "axial")}
#: Box colours by review status.
STATUS_COLORS = {
    DetectionStatus.PROPOSED: (255, 200, 0),
    DetectionStatus.ACCEPTED: (40, 220, 60),
    DetectionStatus.REJECTED: (235, 50, 50),
    DetectionStatus.EDITED: (0, 200, 255),
}
MEASUREMENT_COLOR = (0, 230, 255)
INTERACTION_MODES = ("crosshair", "window_level", "pan", "zoom")

_Z_IMAGE, _Z_LABELS, _Z_PREVIEW, _Z_SHAPES, _Z_CROSSHAIR = 0, 10, 30, 40, 50


@dataclass
class HoverInfo:
    """What is under the mouse, for the status bar."""

    plane: str
    voxel: np.ndarray  # nearest integer index (i, j, k)
    world: np.ndarray  # LPS mm
    inside: bool
    value: float | None
    units: str
    label: str
    slice_index: int
    slice_count: int
    zoom: float


def _qcolor(rgb: tuple[int, int, int], alpha: int = 255) -> QColor:
    return QColor(int(rgb[0]), int(rgb[1]), int(rgb[2]), int(alpha))


def _cosmetic_pen(rgb: tuple[int, int, int], width: float = 1.5, style=Qt.PenStyle.SolidLine, alpha: int = 255) -> QPen:
    pen = QPen(_qcolor(rgb, alpha))
    pen.setWidthF(width)
    pen.setCosmetic(True)
    pen.setStyle(style)
    return pen


def _modifier_names(modifiers) -> frozenset[str]:
    names = set()
    if modifiers & Qt.KeyboardModifier.ShiftModifier:
        names.add("shift")
    if modifiers & Qt.KeyboardModifier.ControlModifier:
        names.add("ctrl")
    if modifiers & Qt.KeyboardModifier.AltModifier:
        names.add("alt")
    return frozenset(names)


def _label_text_item() -> QGraphicsSimpleTextItem:
    """Text drawn at a fixed screen size next to a shape (cheaper than rich-text items)."""
    item = QGraphicsSimpleTextItem()
    item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
    font = QFont()
    font.setPointSize(9)
    item.setFont(font)
    return item


def _set_label_text(item: QGraphicsSimpleTextItem, text: str, rgb: tuple[int, int, int], above: bool) -> None:
    item.setText(text)
    item.setBrush(_qcolor(rgb))
    # Ignoring the view's transform, the item's own transform is in screen pixels.
    item.setTransform(QTransform.fromTranslate(1, -item.boundingRect().height() if above else 1))


_BUTTON_NAMES = {
    Qt.MouseButton.LeftButton: "left",
    Qt.MouseButton.RightButton: "right",
    Qt.MouseButton.MiddleButton: "middle",
}


_BOUNDS: "weakref.WeakKeyDictionary[LabelMap, LabelBounds]" = weakref.WeakKeyDictionary()


def _label_bounds(label_map: LabelMap) -> LabelBounds:
    """The running bounding box of a label map's voxels, shared by all views."""
    bounds = _BOUNDS.get(label_map)
    if bounds is None:
        bounds = _BOUNDS[label_map] = LabelBounds()
    return bounds


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


class _OverlayText:
    """A line of text drawn over the image (letters, slice info) by the view's ``drawForeground``.

    Rendered once into a pixmap when it changes (with a dark shadow for contrast on
    bright images) and blitted on every repaint: much cheaper than child QLabels, which
    Qt would repaint as separate widgets whenever the image changes.
    """

    def __init__(self, view: "SliceView", color: str = "#e8e8e8", bold: bool = False, size: int = 10) -> None:
        self._view = view
        self._text = ""
        self._color = QColor(color)
        self._font = QFont()
        self._font.setPointSize(size)
        self._font.setBold(bold)
        self._pixmap: QPixmap | None = None
        self._rect = QRect(0, 0, 0, 0)

    def text(self) -> str:
        return self._text

    def set_text(self, text: str) -> bool:
        """Change the text; True when its size changed (the overlays must be placed again)."""
        if text == self._text:
            return False
        old = QRect(self._rect)
        self._text = text
        self._render()
        self._view.viewport().update(old.united(self._rect))
        return old.size() != self._rect.size()

    def _render(self) -> None:
        if not self._text:
            self._pixmap = None
            self._rect.setSize(QSize(0, 0))
            return
        metrics = QFontMetrics(self._font)
        size = QSize(metrics.horizontalAdvance(self._text) + 2, metrics.height() + 1)
        ratio = self._view.devicePixelRatioF()
        pixmap = QPixmap(size * ratio)
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setFont(self._font)
        baseline = metrics.ascent()
        painter.setPen(QColor(0, 0, 0, 200))
        painter.drawText(1, baseline + 1, self._text)
        painter.setPen(self._color)
        painter.drawText(0, baseline, self._text)
        painter.end()
        self._pixmap = pixmap
        self._rect.setSize(size)

    def move(self, x: int, y: int) -> None:
        if (x, y) != (self._rect.x(), self._rect.y()):
            old = QRect(self._rect)
            self._rect.moveTo(int(x), int(y))
            self._view.viewport().update(old.united(self._rect))

    def x(self) -> int:
        return self._rect.x()

    def y(self) -> int:
        return self._rect.y()

    def width(self) -> int:
        return self._rect.width()

    def height(self) -> int:
        return self._rect.height() if self._text else QFontMetrics(self._font).height() + 1

    def geometry(self) -> QRect:
        return QRect(self._rect)

    def paint(self, painter: QPainter) -> None:
        if self._pixmap is not None:
            painter.drawPixmap(self._rect.topLeft(), self._pixmap)


class SliceView(pg.GraphicsView):
    """One linked slice view (axial, coronal or sagittal) of a ``Document``."""

    #: the mouse moved over the view: a HoverInfo, or None when it left the image
    hover_changed = Signal(object)
    #: zoom changed: screen pixels per image pixel
    zoom_changed = Signal(float)
    #: the user clicked in this view (it becomes the active view)
    activated = Signal(object)

    def __init__(self, plane: str, display: DisplaySettings | None = None, parent: QWidget | None = None) -> None:
        if plane not in PLANES:
            raise ValueError(f"unknown plane '{plane}'")
        super().__init__(parent, background="k")
        self.plane = plane
        self.display = display or DisplaySettings()
        self.document: Document | None = None
        self.measurements: measure.MeasurementList | None = None
        self.mapping: SliceMapping | None = None
        self.slice_index = 0
        self.tool: Tool | None = None
        self.interaction_mode = "crosshair"
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(40, 40)
        self.viewport().setCursor(Qt.CursorShape.CrossCursor)
        self.setAcceptDrops(False)  # file drops go to the main window

        self.view_box = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False, defaultPadding=0.0)
        self.view_box.setMouseEnabled(False, False)
        self.view_box.disableAutoRange()
        self.setCentralItem(self.view_box)
        self.view_box.sigRangeChanged.connect(self._on_range_changed)

        self.image_item = ArgbImageItem()
        self.image_item.setZValue(_Z_IMAGE)
        self.view_box.addItem(self.image_item)
        self._windowing = SliceWindowing()
        # Slices across the array's x axis (sagittal) are read a slab of neighbours at a time.
        self._image_reader = SlabSliceReader()
        self._colors_key: tuple | None = None
        self._colors: np.ndarray | None = None

        self._label_items: "weakref.WeakKeyDictionary[LabelMap, ArgbImageItem]" = weakref.WeakKeyDictionary()
        self._label_tables: "weakref.WeakKeyDictionary[LabelMap, tuple]" = weakref.WeakKeyDictionary()
        self._label_readers: "weakref.WeakKeyDictionary[LabelMap, SlabSliceReader]" = weakref.WeakKeyDictionary()

        self._preview_item = ArgbImageItem()
        self._preview_item.setZValue(_Z_PREVIEW)
        self._preview_item.hide()
        self.view_box.addItem(self._preview_item)
        self._preview_path = QGraphicsPathItem()
        self._preview_path.setZValue(_Z_PREVIEW + 1)
        self._preview_path.hide()
        self.view_box.addItem(self._preview_path)

        vertical_plane, horizontal_plane = _CROSSHAIR_PLANES[plane]
        self._crosshair_v = QGraphicsLineItem()
        self._crosshair_h = QGraphicsLineItem()
        for line, other in ((self._crosshair_v, vertical_plane), (self._crosshair_h, horizontal_plane)):
            line.setPen(_cosmetic_pen(PLANE_COLORS[other], 1.0, alpha=200))
            line.setZValue(_Z_CROSSHAIR)
            self.view_box.addItem(line)

        self._box_items: list[list] = []  # [rect item, text item, state drawn]
        self._drawn_boxes: list[tuple[Detection, QRectF]] = []
        self._box_cache: tuple[list[Detection], np.ndarray, np.ndarray] | None = None
        self._measurement_items: list = []
        self._measurement_text_cache: dict[str, str] = {}

        self._letters = {edge: _OverlayText(self, "#ffb000", bold=True, size=12) for edge in ("left", "right", "top", "bottom")}
        self._title = _OverlayText(self, "#%02x%02x%02x" % PLANE_COLORS[plane], bold=True)
        self._info_slice = _OverlayText(self)
        self._info_position = _OverlayText(self)
        self._info_bottom_left = _OverlayText(self)
        self._info_bottom_right = _OverlayText(self)
        self._info_top_right = _OverlayText(self, "#ff8040", bold=True)
        self._overlay_texts = [
            self._title,
            self._info_slice,
            self._info_position,
            self._info_bottom_left,
            self._info_bottom_right,
            self._info_top_right,
            *self._letters.values(),
        ]

        # interaction state
        self._drag: str | None = None
        self._drag_start = QPointF()
        self._drag_last = QPointF()
        self._drag_window: Window | None = None
        self._space_down = False
        self._wheel_remainder = 0.0
        self._value_span: float | None = None
        self._zoom = 1.0

        self.display.window_changed.connect(self._on_window_changed)
        self.display.overlays_changed.connect(self._on_overlays_changed)
        self.display.label_display_changed.connect(self._on_label_display_changed)
        self._update_texts()

    # ================================================================== public API
    def set_document(self, document: Document | None, measurements: measure.MeasurementList | None = None) -> None:
        """Show ``document`` (or nothing); resets the view to fit the slice."""
        self._disconnect_document()
        self.document = document
        self.measurements = measurements
        for item in list(self._label_items.values()):
            self.view_box.removeItem(item)
        self._label_items = weakref.WeakKeyDictionary()
        self._label_readers = weakref.WeakKeyDictionary()
        self._image_reader.clear()
        self._measurement_text_cache.clear()
        self._box_cache = None
        self._value_span = None
        self._clear_preview()
        if document is None:
            self.mapping = None
            self.image_item.set_pixels(None)
            self._update_crosshair()
            self._update_detections()
            self._update_measurements()
            self._update_texts()
            return
        self.mapping = slice_mapping(document.geometry, self.plane)
        transform = self._pixel_transform(0, 0)
        self.image_item.setTransform(transform)
        document.cursor_moved.connect(self._on_cursor_moved)
        document.labels_changed.connect(self._on_labels_changed)
        document.label_maps_changed.connect(self._on_label_maps_changed)
        document.label_table_changed.connect(self._on_label_table_changed)
        document.detections_changed.connect(self._on_detections_changed)
        document.selection_changed.connect(self._on_selection_changed)
        if measurements is not None:
            measurements.changed.connect(self._on_measurements_changed)
        self.slice_index = self._slice_from_cursor()
        self._on_label_maps_changed()
        self._refresh_slice()
        self.reset_view()

    def set_tool(self, tool: Tool | None) -> None:
        """Route left-button and hover events to ``tool`` (None: back to the crosshair)."""
        if tool is not self.tool:
            self.tool = tool
            self._clear_preview()

    def set_interaction_mode(self, mode: str) -> None:
        """What left-drag does without a tool: "crosshair", "window_level", "pan" or "zoom"."""
        if mode not in INTERACTION_MODES:
            raise ValueError(f"unknown interaction mode '{mode}'")
        self.interaction_mode = mode

    def set_slice(self, slice_index: int) -> None:
        """Show another slice by moving the linked cursor along this view's normal."""
        if self.document is None or self.mapping is None:
            return
        slice_index = self.mapping.clamp_slice(slice_index)
        index = self.document.geometry.world_to_index(self.document.cursor)
        index[self.mapping.normal_axis] = slice_index
        self.document.set_cursor(self.document.geometry.index_to_world(index))

    def step_slice(self, delta: int) -> None:
        self.set_slice(self.slice_index + int(delta))

    def reset_view(self) -> None:
        """Fit the whole slice in the view."""
        if self.mapping is None:
            return
        m = self.mapping
        self.view_box.setRange(
            xRange=(-0.5 * m.col_spacing, (m.cols - 0.5) * m.col_spacing),
            yRange=(-0.5 * m.row_spacing, (m.rows - 0.5) * m.row_spacing),
            padding=0.02,
        )

    def zoom_by(self, factor: float, center_widget: QPointF | None = None) -> None:
        """Zoom in (factor > 1) or out around a widget position (default: the centre)."""
        center = None
        if center_widget is not None:
            center = self._to_view(center_widget)
        self.view_box.scaleBy((1.0 / factor, 1.0 / factor), center=center)

    @property
    def zoom(self) -> float:
        """Screen pixels per image pixel (1.0 = one screen pixel per voxel along columns)."""
        return self._zoom

    def crosshair_world(self) -> np.ndarray | None:
        """World LPS mm of the crosshair as drawn: its lines' crossing on the displayed slice."""
        if self.document is None or not self._crosshair_v.isVisible():
            return None
        m = self.mapping
        col = self._crosshair_v.line().x1() / m.col_spacing
        row = self._crosshair_h.line().y1() / m.row_spacing
        return self.document.geometry.index_to_world(m.display_to_index(col, row, self.slice_index))

    @property
    def letters(self) -> dict[str, str]:
        """Orientation letters shown at the edges ({} without a document)."""
        return {edge: label.text() for edge, label in self._letters.items()} if self.mapping else {}

    def overlay_text(self) -> dict[str, str]:
        """The texts drawn over the view (for tests and screenshots)."""
        return {
            "top_left": f"{self._title.text()} {self._info_slice.text()}\n{self._info_position.text()}",
            "top_right": self._info_top_right.text(),
            "bottom_left": self._info_bottom_left.text(),
            "bottom_right": self._info_bottom_right.text(),
            **{f"letter_{edge}": label.text() for edge, label in self._letters.items()},
        }

    # ------------------------------------------------------------------ coordinates
    def _to_view(self, pos: QPointF) -> QPointF:
        """View (mm) coordinates of a viewport position, with sub-pixel precision."""
        scene = self.viewportTransform().inverted()[0].map(QPointF(pos))
        return self.view_box.mapSceneToView(scene)

    def _from_view(self, point: QPointF) -> QPointF:
        return self.viewportTransform().map(self.view_box.mapViewToScene(point))

    def widget_to_display(self, pos: QPointF) -> tuple[float, float]:
        """Continuous display (col, row) under a viewport position."""
        view = self._to_view(pos)
        return view.x() / self.mapping.col_spacing, view.y() / self.mapping.row_spacing

    def widget_to_index(self, pos: QPointF) -> np.ndarray:
        """Continuous voxel index (i, j, k) under a viewport position, on the displayed slice."""
        col, row = self.widget_to_display(pos)
        return self.mapping.display_to_index(col, row, self.slice_index)

    def index_to_widget(self, index) -> QPointF:
        """Viewport position of a continuous voxel index (i, j, k) (its in-plane part)."""
        col, row, _ = self.mapping.index_to_display(np.asarray(index, float))
        return self._from_view(QPointF(col * self.mapping.col_spacing, row * self.mapping.row_spacing))

    def world_to_widget(self, world) -> QPointF:
        return self.index_to_widget(self.document.geometry.world_to_index(np.asarray(world, float)))

    # ================================================================== document events
    def _disconnect_document(self) -> None:
        doc = self.document
        if doc is not None:
            for signal, slot in (
                (doc.cursor_moved, self._on_cursor_moved),
                (doc.labels_changed, self._on_labels_changed),
                (doc.label_maps_changed, self._on_label_maps_changed),
                (doc.label_table_changed, self._on_label_table_changed),
                (doc.detections_changed, self._on_detections_changed),
                (doc.selection_changed, self._on_selection_changed),
            ):
                signal.disconnect(slot)
        if self.measurements is not None:
            self.measurements.changed.disconnect(self._on_measurements_changed)

    def _slice_from_cursor(self) -> int:
        index = self.document.geometry.world_to_index(self.document.cursor)
        return self.mapping.slice_index_of(index)

    def _on_cursor_moved(self, _world=None) -> None:
        if self.document is None:
            return
        new_slice = self._slice_from_cursor()
        if new_slice != self.slice_index:
            self.slice_index = new_slice
            self._refresh_slice()
        else:
            self._update_crosshair()
            self._update_texts()

    def _refresh_slice(self) -> None:
        """Everything that depends on the slice index."""
        self._render_image()
        for label_map in self.document.label_maps:
            self._render_labels(label_map)
        self._update_detections()
        self._update_measurements()
        self._refresh_preview()
        self._update_crosshair()
        self._update_texts()

    def _on_labels_changed(self, label_map: LabelMap, region) -> None:
        _label_bounds(label_map).grow(region)
        reader = self._label_readers.get(label_map)
        if reader is not None:
            reader.update(region)
        if self.mapping is not None and self.mapping.region_hits_slice(region, self.slice_index):
            self._render_labels(label_map)

    def _on_label_maps_changed(self) -> None:
        if self.document is None:
            return
        present = set(self.document.label_maps)
        for label_map in list(self._label_items.keys()):
            if label_map not in present:
                self.view_box.removeItem(self._label_items.pop(label_map))
        for order, label_map in enumerate(self.document.label_maps):
            item = self._label_items.get(label_map)
            if item is None:
                item = ArgbImageItem()
                item.setTransform(self._pixel_transform(0, 0))
                self.view_box.addItem(item)
                self._label_items[label_map] = item
                item.setZValue(_Z_LABELS + order * 0.01)
                self._render_labels(label_map)
            item.setZValue(_Z_LABELS + order * 0.01)

    def _on_label_table_changed(self, label_map: LabelMap) -> None:
        self._label_tables.pop(label_map, None)  # names/colours/visibility changed
        self._render_labels(label_map)

    def _on_label_display_changed(self, label_map: LabelMap) -> None:
        if label_map in self._label_items:
            self._render_labels(label_map)

    def _on_selection_changed(self, _detection=None) -> None:
        self._update_detections()

    def _on_measurements_changed(self) -> None:
        self._update_measurements()

    def _on_window_changed(self, *_args) -> None:
        self._render_image()
        self._update_texts()

    def _on_overlays_changed(self) -> None:
        self._update_crosshair()
        self._update_detections()

    # ================================================================== drawing
    def _pixel_transform(self, row0: float, col0: float) -> QTransform:
        """Item transform placing image pixel (0, 0) of a block at display (col0, row0)."""
        m = self.mapping
        transform = QTransform()
        transform.scale(m.col_spacing, m.row_spacing)
        transform.translate(col0 - 0.5, row0 - 0.5)
        return transform

    def _plane(self, reader: SlabSliceReader, array: np.ndarray, box=None) -> np.ndarray:
        """The displayed slice of a (z, y, x) array in display order, or of its ``box`` block only."""
        m = self.mapping
        axis = m.array_axis(m.normal_axis)
        block = None if box is None else tuple(box[a] for a in range(3) if a != axis)
        return m.orient_plane(reader.plane(array, axis, self.slice_index, block))

    def _render_image(self) -> None:
        if self.document is None or self.mapping is None:
            return
        display = self.display
        colors_key = (display.colormap, display.invert)
        if colors_key != self._colors_key:
            self._colors = argb32(colormap_lookup_table(display.colormap, display.invert))
            self._colors_key = colors_key
        plane = self._plane(self._image_reader, self.document.volume.array)
        self.image_item.set_pixels(self._windowing.apply_argb(plane, display.window.center, display.window.width, self._colors))

    def _render_labels(self, label_map: LabelMap) -> None:
        item = self._label_items.get(label_map)
        if item is None or self.mapping is None:
            return
        settings = self.display.label_display(label_map)
        if not settings.visible:
            item.hide()
            return
        # Read only the labelled block of the slice (the label map's running bounding box),
        # then draw only the box of the labelled pixels in it: most slices hold small regions.
        box = _label_bounds(label_map).box(label_map.array)
        if box is None or not self.mapping.region_hits_slice(box, self.slice_index):
            item.hide()
            return
        block_row, block_col, _rows, _cols = self.mapping.region_display_rect(box)
        reader = self._label_readers.get(label_map)
        if reader is None:
            reader = self._label_readers[label_map] = SlabSliceReader()
        plane = self._plane(reader, label_map.array, box)
        rows = np.flatnonzero(plane.any(axis=1))
        if rows.size == 0:
            item.hide()
            return
        cols = np.flatnonzero(plane[rows[0] : rows[-1] + 1].any(axis=0))
        row0, col0 = block_row + int(rows[0]), block_col + int(cols[0])
        plane = plane[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        if settings.outline:
            plane = label_outline(np.pad(plane, 1))[1:-1, 1:-1]
        # Keyed on the table's content: tools may add labels and only notify a voxel change.
        entries = tuple((value, info.color, info.visible) for value, info in label_map.table.entries.items())
        key = (entries, settings.opacity, plane.dtype.str)
        table = self._label_tables.get(label_map)
        if table is None or table[0] != key:
            table = (key, label_argb_table(label_map.table, settings.opacity, plane.dtype))
            self._label_tables[label_map] = table
        item.set_pixels(np.take(table[1], plane))
        item.setTransform(self._pixel_transform(row0, col0))
        item.show()

    def _update_crosshair(self) -> None:
        visible = self.document is not None and self.display.crosshair_visible
        self._crosshair_v.setVisible(visible)
        self._crosshair_h.setVisible(visible)
        if not visible:
            return
        m = self.mapping
        col, row, _ = m.index_to_display(self.document.geometry.world_to_index(self.document.cursor))
        x, y = col * m.col_spacing, row * m.row_spacing
        width, height = m.cols * m.col_spacing, m.rows * m.row_spacing
        left, top = -0.5 * m.col_spacing, -0.5 * m.row_spacing
        self._crosshair_v.setLine(x, top, x, top + height)
        self._crosshair_h.setLine(left, y, left + width, y)

    def _detection_boxes(self) -> tuple[list[Detection], np.ndarray, np.ndarray]:
        """Every detection's box in display coordinates (col, row, slice): low and high corners.

        Computed once per ``detections_changed``, so a slice change only compares numbers.
        """
        if self._box_cache is None:
            detections = list(self.document.detections)
            low = high = np.zeros((0, 3))
            if detections:
                bounds = np.array([np.stack(d.index_bounds(self.document.geometry)) for d in detections])
                display = self.mapping.index_to_display(bounds.reshape(-1, 3)).reshape(-1, 2, 3)
                low, high = display.min(axis=1), display.max(axis=1)
            self._box_cache = (detections, low, high)
        return self._box_cache

    def _on_detections_changed(self) -> None:
        self._box_cache = None
        self._update_detections()

    def _update_detections(self) -> None:
        self._drawn_boxes = []
        if self.document is not None and self.mapping is not None and self.display.detections_visible:
            detections, low, high = self._detection_boxes()
            m, s = self.mapping, self.slice_index
            crossing = np.flatnonzero((low[:, 2] < s + 0.5) & (high[:, 2] > s - 0.5))
            for index in crossing:
                x0, y0 = low[index, 0] * m.col_spacing, low[index, 1] * m.row_spacing
                x1, y1 = high[index, 0] * m.col_spacing, high[index, 1] * m.row_spacing
                self._drawn_boxes.append((detections[index], QRectF(x0, y0, x1 - x0, y1 - y0)))
        while len(self._box_items) < len(self._drawn_boxes):
            rect_item = QGraphicsRectItem()
            rect_item.setZValue(_Z_SHAPES)
            text_item = _label_text_item()
            text_item.setZValue(_Z_SHAPES + 1)
            self.view_box.addItem(rect_item)
            self.view_box.addItem(text_item)
            self._box_items.append([rect_item, text_item, None])
        selected = self.document.selected_detection if self.document is not None else None
        for index, entry in enumerate(self._box_items):
            rect_item, text_item, drawn_state = entry
            if index >= len(self._drawn_boxes):
                if drawn_state is not None:
                    rect_item.hide()
                    text_item.hide()
                    entry[2] = None
                continue
            detection, rect = self._drawn_boxes[index]
            state = (detection.status, detection is selected, detection.label, detection.score, rect.getRect())
            if state == drawn_state:
                continue  # unchanged since the last slice: no Qt calls
            color = STATUS_COLORS[detection.status]
            style = Qt.PenStyle.DashLine if detection.status == DetectionStatus.REJECTED else Qt.PenStyle.SolidLine
            rect_item.setPen(_cosmetic_pen(color, 3.0 if detection is selected else 1.5, style))
            rect_item.setRect(rect)
            _set_label_text(text_item, f"{detection.label} {detection.score:.2f}", color, above=True)
            text_item.setPos(rect.left(), rect.top())
            rect_item.show()
            text_item.show()
            entry[2] = state

    def detection_at(self, pos: QPointF) -> Detection | None:
        """The detection box drawn under a viewport position (smallest first), or None."""
        if not self._drawn_boxes:
            return None
        view = self._to_view(pos)
        tolerance = 3 * max(self.view_box.viewPixelSize())
        hits = [
            (rect.width() * rect.height(), detection)
            for detection, rect in self._drawn_boxes
            if rect.adjusted(-tolerance, -tolerance, tolerance, tolerance).contains(view)
        ]
        return min(hits, key=lambda hit: hit[0])[1] if hits else None

    def _measurement_text(self, item: measure.Measurement) -> str:
        text = self._measurement_text_cache.get(item.id)
        if text is None:
            volume = self.document.volume
            text = measure.describe(item, volume.array, volume.geometry, volume.metadata.calibrated, volume.metadata.units)
            self._measurement_text_cache[item.id] = text
        return text

    def _update_measurements(self) -> None:
        for graphics in self._measurement_items:
            self.view_box.removeItem(graphics)
        self._measurement_items = []
        if self.document is None or self.measurements is None or self.mapping is None:
            return
        m = self.mapping
        pen = _cosmetic_pen(MEASUREMENT_COLOR, 1.5)
        for item in self.measurements.on_slice(m.normal_axis, self.slice_index):
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
            shape.setZValue(_Z_SHAPES)
            text = _label_text_item()
            _set_label_text(text, self._measurement_text(item), MEASUREMENT_COLOR, above=False)
            text.setPos(anchor_x, anchor_y)
            text.setZValue(_Z_SHAPES + 1)
            for graphics in (shape, text):
                self.view_box.addItem(graphics)
                self._measurement_items.append(graphics)

    # ------------------------------------------------------------------ tool preview
    def _clear_preview(self) -> None:
        self._preview_item.hide()
        self._preview_path.hide()

    def _refresh_preview(self) -> None:
        self._draw_preview(self.tool.preview() if self.tool is not None else None)

    def _draw_preview(self, preview: ToolPreview | None) -> None:
        m = self.mapping
        if (
            preview is None
            or m is None
            or preview.view_axis != m.normal_axis
            or int(preview.slice_index) != self.slice_index
        ):
            self._clear_preview()
            return
        if preview.mask is not None and np.asarray(preview.mask).size:
            mask = np.asarray(preview.mask, dtype=bool)
            row0, col0, _rows, _cols = m.plane_block_to_display(tuple(preview.mask_origin), mask.shape)
            colors = argb32(np.array([[0, 0, 0], preview.color], dtype=np.uint8), np.array([0, 128]))
            self._preview_item.set_pixels(colors[m.orient_plane(mask).astype(np.uint8)])
            self._preview_item.setTransform(self._pixel_transform(row0, col0))
            self._preview_item.show()
        else:
            self._preview_item.hide()
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
            self._preview_path.setPath(path)
            self._preview_path.setPen(_cosmetic_pen(preview.color, 1.5))
            self._preview_path.show()
        else:
            self._preview_path.hide()

    # ------------------------------------------------------------------ texts
    def _update_texts(self) -> None:
        doc, m = self.document, self.mapping
        labels = (self._info_slice, self._info_position, self._info_bottom_left, self._info_bottom_right, self._info_top_right)
        moved = self._title.set_text(self.plane.capitalize())
        if doc is None or m is None:
            texts = ("", "", "", "", "")
            letters = {edge: "" for edge in self._letters}
        else:
            window = self.display.window
            inverted = " inv" if self.display.invert else ""
            projection = is_projection_image(doc.volume)
            texts = (
                f"{self.slice_index + 1} / {m.slice_count}" if not projection else doc.volume.modality,
                slice_position_text(doc.geometry, m, doc.cursor, self.slice_index) if not projection else "",
                f"W {window.width:.0f}  L {window.center:.0f}{inverted}",
                f"{self._zoom * 100:.0f}%",
                "oblique" if m.oblique and not projection else "",
            )
            letters = m.letters
            if projection:
                # A radiograph or photo is not an axial slice: name it plainly and take its
                # letters from DICOM PatientOrientation when the reader provides it.
                moved |= self._title.set_text("Image")
                letters = projection_letters(doc.volume.metadata.extra.get("patient_orientation"))
        for label, text in zip(labels, texts):
            moved |= label.set_text(text)
        for edge, label in self._letters.items():
            moved |= label.set_text(letters[edge])
        if moved:
            self._place_overlays()

    def _place_overlays(self) -> None:
        width, height, margin = self.width(), self.height(), 4
        self._title.move(margin, margin)
        self._info_slice.move(margin + self._title.width() + 6, margin)
        self._info_position.move(margin, margin + self._title.height())
        self._info_bottom_left.move(margin, height - self._info_bottom_left.height() - margin)
        self._info_bottom_right.move(width - self._info_bottom_right.width() - margin, height - self._info_bottom_right.height() - margin)
        self._info_top_right.move(width - self._info_top_right.width() - margin, margin)
        letters = self._letters
        letters["left"].move(margin, (height - letters["left"].height()) // 2)
        letters["right"].move(width - letters["right"].width() - margin, (height - letters["right"].height()) // 2)
        letters["top"].move((width - letters["top"].width()) // 2, margin)
        letters["bottom"].move((width - letters["bottom"].width()) // 2, height - letters["bottom"].height() - margin)
        # In narrow views the centred letters would sit on the corner texts: move them inwards.
        def overlaps(letter: _OverlayText, texts: list[_OverlayText]) -> bool:
            return any(text.text() and letter.geometry().intersects(text.geometry()) for text in texts)

        if overlaps(letters["top"], [self._title, self._info_slice, self._info_top_right]):
            letters["top"].move(letters["top"].x(), self._info_position.geometry().bottom() + 2)
        if overlaps(letters["bottom"], [self._info_bottom_left, self._info_bottom_right]):
            letters["bottom"].move(letters["bottom"].x(), self._info_bottom_left.y() - letters["bottom"].height() - 2)

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802 - Qt override
        """Draw the overlay texts in viewport pixels, above the scene."""
        super().drawForeground(painter, rect)
        painter.save()
        painter.resetTransform()
        for text in self._overlay_texts:
            text.paint(painter)
        painter.restore()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if hasattr(self, "_letters"):  # pyqtgraph calls this from its constructor
            self._place_overlays()

    def _on_range_changed(self, *_args) -> None:
        if self.mapping is None:
            return
        pixel_width = self.view_box.viewPixelSize()[0]
        zoom = self.mapping.col_spacing / pixel_width if pixel_width > 0 else 1.0
        if abs(zoom - self._zoom) > 1e-9:
            self._zoom = zoom
            if self._info_bottom_right.set_text(f"{zoom * 100:.0f}%"):
                self._place_overlays()
            self.zoom_changed.emit(zoom)

    # ================================================================== mouse and keys
    def _pointer_event(self, action: PointerAction, pos: QPointF, button: str, modifiers) -> PointerEvent:
        index = self.widget_to_index(pos)
        world = self.document.geometry.index_to_world(index)
        return PointerEvent(action, world, index, self.mapping.normal_axis, self.slice_index, button, _modifier_names(modifiers))

    def _send_to_tool(self, action: PointerAction, pos: QPointF, button: str, modifiers) -> bool:
        if self.tool is None or self.document is None:
            return False
        consumed = self.tool.handle(self._pointer_event(action, pos, button, modifiers))
        self._refresh_preview()
        return consumed

    def _move_cursor_to(self, pos: QPointF) -> None:
        """Put the linked cursor on the centre of the voxel under ``pos`` (clamped to the grid)."""
        index = self.widget_to_index(pos)
        last = np.asarray(self.document.geometry.size, float) - 1
        index = np.clip(np.rint(index), 0, last)
        self.document.set_cursor(self.document.geometry.index_to_world(index))

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        self.activated.emit(self)
        if self.document is None:
            return
        pos = event.position()
        button = event.button()
        self._drag_start = self._drag_last = pos
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and self._space_down):
            self._drag = "pan"
        elif button == Qt.MouseButton.RightButton:
            self._drag = "zoom"
        elif button == Qt.MouseButton.LeftButton:
            if self._send_to_tool(PointerAction.PRESS, pos, "left", event.modifiers()):
                self._drag = "tool"
            elif event.modifiers() & Qt.KeyboardModifier.ShiftModifier or self.interaction_mode == "window_level":
                self._drag = "window_level"
                self._drag_window = self.display.window
            elif self.interaction_mode in ("pan", "zoom"):
                self._drag = self.interaction_mode
            else:
                detection = self.detection_at(pos)
                if detection is not None:
                    self.document.select_detection(detection)
                    self._drag = None
                else:
                    self._drag = "crosshair"
                    self._move_cursor_to(pos)
        event.accept()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self.document is None:
            return
        pos = event.position()
        delta = pos - self._drag_last
        drag = self._drag
        if drag == "pan":
            scale = self.view_box.viewPixelSize()
            self.view_box.translateBy(x=-delta.x() * scale[0], y=-delta.y() * scale[1])
        elif drag == "zoom":
            factor = float(np.exp(-delta.y() * 0.01))
            center = self._to_view(self._drag_start)
            self.view_box.scaleBy((1.0 / factor, 1.0 / factor), center=center)
        elif drag == "window_level":
            total = pos - self._drag_start
            window = window_after_drag(self._drag_window, total.x(), total.y(), self._image_value_span())
            self.display.set_window(window.center, window.width)
        elif drag == "crosshair":
            self._move_cursor_to(pos)
        elif drag == "tool":
            self._send_to_tool(PointerAction.MOVE, pos, "left", event.modifiers())
        else:
            self._send_to_tool(PointerAction.MOVE, pos, "", event.modifiers())
        self._drag_last = pos
        self._emit_hover(pos)
        event.accept()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._drag == "tool" and event.button() == Qt.MouseButton.LeftButton:
            self._send_to_tool(PointerAction.RELEASE, event.position(), "left", event.modifiers())
        self._drag = None
        event.accept()

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self.document is None:
            return
        if event.button() == Qt.MouseButton.LeftButton and self._send_to_tool(
            PointerAction.DOUBLE_CLICK, event.position(), "left", event.modifiers()
        ):
            event.accept()
            return
        self.mousePressEvent(event)

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self.document is None:
            return
        steps = event.angleDelta().y() / 120.0
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(float(1.15**steps), event.position())
        else:
            self._wheel_remainder += steps
            whole = int(self._wheel_remainder)
            if whole:
                self._wheel_remainder -= whole
                self.step_slice(whole)
        event.accept()

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt override
        key = event.key()
        steps = {
            Qt.Key.Key_PageUp: 1,
            Qt.Key.Key_Up: 1,
            Qt.Key.Key_Right: 1,
            Qt.Key.Key_PageDown: -1,
            Qt.Key.Key_Down: -1,
            Qt.Key.Key_Left: -1,
        }
        if key in steps:
            self.step_slice(steps[key])
        elif key == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = True
        elif key == Qt.Key.Key_Escape and self.tool is not None:
            self.tool.cancel()
            self._refresh_preview()
        elif key == Qt.Key.Key_R and not event.modifiers():
            self.reset_view()
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def keyReleaseEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
        super().keyReleaseEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.hover_changed.emit(None)
        if self.tool is not None and self._drag != "tool":
            self._clear_preview()
        super().leaveEvent(event)

    # ------------------------------------------------------------------ hover
    def _image_value_span(self) -> float:
        if self._value_span is None:
            low, high = self.document.volume.value_range()
            self._value_span = high - low
        return self._value_span

    def hover_info(self, pos: QPointF) -> HoverInfo | None:
        """What lies under a viewport position (value, label, position)."""
        if self.document is None or self.mapping is None:
            return None
        doc = self.document
        index = self.widget_to_index(pos)
        voxel = np.rint(index).astype(np.int64)
        inside = bool(doc.geometry.contains_index(voxel))
        value = None
        label = ""
        if inside:
            i, j, k = (int(v) for v in voxel)
            value = float(doc.volume.array[k, j, i])
            for label_map in reversed(doc.label_maps):
                label_value = int(label_map.array[k, j, i])
                if label_value and self.display.label_display(label_map).visible:
                    info = label_map.table.entries.get(label_value)
                    label = f"{info.name if info else 'label'} ({label_value})"
                    break
        return HoverInfo(
            plane=self.plane,
            voxel=voxel,
            world=doc.geometry.index_to_world(index),
            inside=inside,
            value=value,
            units=doc.volume.metadata.units,
            label=label,
            slice_index=self.slice_index,
            slice_count=self.mapping.slice_count,
            zoom=self._zoom,
        )

    def _emit_hover(self, pos: QPointF) -> None:
        self.hover_changed.emit(self.hover_info(pos))
