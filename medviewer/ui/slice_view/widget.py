"""SliceView: the widget that composes the drawing layers of one plane and turns mouse and keys into actions.

Each layer (attributes ``image_layer``, ``label_layer``, ``crosshair``, ``boxes``,
``measurement_layer``, ``preview``, ``overlay_texts``, one module each) owns its graphics
items and is told what to draw; this module decides when, from the document's and the
display's events, and keeps the coordinates (viewport, view mm, display pixels, voxel index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QFrame, QWidget

from medviewer.core.detection import Detection
from medviewer.core.document import Document
from medviewer.core.labels import LabelMap
from medviewer.core.signal_links import SignalLinks
from medviewer.imaging import measurements as measure
from medviewer.imaging.reslice import PLANES, SliceMapping, slice_mapping
from medviewer.imaging.window_level import Window, window_after_drag
from medviewer.services.workspace import DisplaySettings
from medviewer.tools.base import PointerAction, PointerEvent, Tool, ToolPreview
from medviewer.ui.slice_view.boxes import BoxLayer
from medviewer.ui.slice_view.crosshair import CrosshairLayer
from medviewer.ui.slice_view.image_layer import ImageLayer
from medviewer.ui.slice_view.interaction import INTERACTION_MODES, DragMode, modifier_names
from medviewer.ui.slice_view.label_layer import LabelLayer
from medviewer.ui.slice_view.measurement_layer import MeasurementLayer
from medviewer.ui.slice_view.overlay_text import TextLayer
from medviewer.ui.slice_view.preview import PreviewLayer

pg.setConfigOptions(imageAxisOrder="row-major")

_DRAG_BUTTONS = (Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton, Qt.MouseButton.RightButton)


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
        self._document_links: SignalLinks | None = None
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

        # The drawing layers, bottom to top (their z values are in items.py).
        self.image_layer = ImageLayer(self.view_box)
        self.image_item = self.image_layer.item
        self.label_layer = LabelLayer(self.view_box)
        self.preview = PreviewLayer(self.view_box)
        self.crosshair = CrosshairLayer(self.view_box, plane)
        self.boxes = BoxLayer(self.view_box)
        self.measurement_layer = MeasurementLayer(self.view_box)
        self.overlay_texts = TextLayer(self, plane)

        # interaction state
        self._drag: DragMode | None = None
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
        self.label_layer.clear()
        self.measurement_layer.forget_texts()
        self.boxes.invalidate()
        self._value_span = None
        self.preview.clear()
        if document is None:
            self.mapping = None
            self.image_layer.set_mapping(None)
            self._update_crosshair()
            self._update_detections()
            self._update_measurements()
            self._update_texts()
            return
        self.mapping = slice_mapping(document.geometry, self.plane)
        self.image_layer.set_mapping(self.mapping)
        self._document_links = SignalLinks.follow(document, self)
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
            self.preview.clear()

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
        if self.document is None:
            return None
        crossing = self.crosshair.crossing(self.mapping)
        if crossing is None:
            return None
        return self.document.geometry.index_to_world(self.mapping.display_to_index(*crossing, self.slice_index))

    @property
    def letters(self) -> dict[str, str]:
        """Orientation letters shown at the edges ({} without a document)."""
        return {edge: label.text() for edge, label in self.overlay_texts.letters.items()} if self.mapping else {}

    def overlay_text(self) -> dict[str, str]:
        """The texts drawn over the view (for tests and screenshots)."""
        return self.overlay_texts.overlay_text()

    def slab_cache_nbytes(self) -> int:
        """Bytes the image's and label maps' slab readers hold (sagittal views read slabs of slices)."""
        return self.image_layer.reader.slab_nbytes + self.label_layer.slab_nbytes

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
        if self._document_links is not None:
            self._document_links.disconnect()
            self._document_links = None
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
            self.label_layer.render(label_map, self.mapping, self.slice_index, self.display)
        self._update_detections()
        self._update_measurements()
        self._refresh_preview()
        self._update_crosshair()
        self._update_texts()

    def _on_labels_changed(self, label_map: LabelMap, region) -> None:
        self.label_layer.labels_changed(label_map, region, self.mapping, self.slice_index, self.display)

    def _on_label_maps_changed(self) -> None:
        if self.document is None:
            return
        self.label_layer.sync(self.document.label_maps, self.mapping, self.slice_index, self.display)

    def _on_label_table_changed(self, label_map: LabelMap) -> None:
        self.label_layer.table_changed(label_map, self.mapping, self.slice_index, self.display)

    def _on_label_display_changed(self, label_map: LabelMap) -> None:
        if label_map in self.label_layer:
            self.label_layer.render(label_map, self.mapping, self.slice_index, self.display)

    def _on_selection_changed(self, _detection=None) -> None:
        self._update_detections()

    def _on_detections_changed(self) -> None:
        self.boxes.invalidate()
        self._update_detections()

    def _on_measurements_changed(self) -> None:
        self._update_measurements()

    def _on_window_changed(self, *_args) -> None:
        self._render_image()
        self._update_texts()

    def _on_overlays_changed(self) -> None:
        self._update_crosshair()
        self._update_detections()

    # ================================================================== drawing (by the layers)
    def _render_image(self) -> None:
        if self.document is None or self.mapping is None:
            return
        self.image_layer.render(self.mapping, self.slice_index, self.document.volume.array, self.display)

    def _update_crosshair(self) -> None:
        if self.document is None or not self.display.crosshair_visible:
            self.crosshair.update(False)
        else:
            self.crosshair.update(True, self.mapping, self.document.geometry.world_to_index(self.document.cursor))

    def _update_detections(self) -> None:
        self.boxes.update(self.document, self.mapping, self.slice_index, self.display.detections_visible)

    def _update_measurements(self) -> None:
        volume = self.document.volume if self.document is not None else None
        self.measurement_layer.update(volume, self.measurements, self.mapping, self.slice_index)

    def _refresh_preview(self) -> None:
        self._draw_preview(self.tool.preview() if self.tool is not None else None)

    def _draw_preview(self, preview: ToolPreview | None) -> None:
        self.preview.draw(preview, self.mapping, self.slice_index)

    def _update_texts(self) -> None:
        self.overlay_texts.update(self.document, self.mapping, self.slice_index, self.display, self._zoom)

    def detection_at(self, pos: QPointF) -> Detection | None:
        """The detection box drawn under a viewport position (smallest first), or None."""
        if not self.boxes.drawn:
            return None
        return self.boxes.at(self._to_view(pos), 3 * max(self.view_box.viewPixelSize()))

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802 - Qt override
        """Draw the overlay texts in viewport pixels, above the scene."""
        super().drawForeground(painter, rect)
        painter.save()
        painter.resetTransform()
        self.overlay_texts.paint(painter)
        painter.restore()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if hasattr(self, "overlay_texts"):  # pyqtgraph calls this from its constructor
            self.overlay_texts.place()

    def _on_range_changed(self, *_args) -> None:
        if self.mapping is None:
            return
        pixel_width = self.view_box.viewPixelSize()[0]
        zoom = self.mapping.col_spacing / pixel_width if pixel_width > 0 else 1.0
        if abs(zoom - self._zoom) > 1e-9:
            self._zoom = zoom
            self.overlay_texts.set_zoom(zoom)
            self.zoom_changed.emit(zoom)

    # ================================================================== mouse and keys
    def _pointer_event(self, action: PointerAction, pos: QPointF, button: str, modifiers) -> PointerEvent:
        index = self.widget_to_index(pos)
        world = self.document.geometry.index_to_world(index)
        return PointerEvent(action, world, index, self.mapping.normal_axis, self.slice_index, button, modifier_names(modifiers))

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

    def _drag_for_press(self, event) -> DragMode | None:
        """Which drag a left, middle or right press starts (None: a click that did its job, like selecting a box)."""
        button, pos = event.button(), event.position()
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and self._space_down):
            return DragMode.PAN
        if button == Qt.MouseButton.RightButton:
            return DragMode.ZOOM
        if self._send_to_tool(PointerAction.PRESS, pos, "left", event.modifiers()):
            return DragMode.TOOL
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier or self.interaction_mode == "window_level":
            self._drag_window = self.display.window
            return DragMode.WINDOW_LEVEL
        if self.interaction_mode in ("pan", "zoom"):
            return DragMode(self.interaction_mode)
        detection = self.detection_at(pos)
        if detection is not None:
            self.document.select_detection(detection)
            return None
        return DragMode.CROSSHAIR

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        self.activated.emit(self)
        if self.document is None:
            return
        self._drag_start = self._drag_last = event.position()
        if event.button() in _DRAG_BUTTONS:
            self._drag = self._drag_for_press(event)
            if self._drag is DragMode.CROSSHAIR:
                self._move_cursor_to(event.position())
        event.accept()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self.document is None:
            return
        pos = event.position()
        delta = pos - self._drag_last
        drag = self._drag
        if drag is DragMode.PAN:
            scale = self.view_box.viewPixelSize()
            self.view_box.translateBy(x=-delta.x() * scale[0], y=-delta.y() * scale[1])
        elif drag is DragMode.ZOOM:
            factor = float(np.exp(-delta.y() * 0.01))
            center = self._to_view(self._drag_start)
            self.view_box.scaleBy((1.0 / factor, 1.0 / factor), center=center)
        elif drag is DragMode.WINDOW_LEVEL:
            total = pos - self._drag_start
            window = window_after_drag(self._drag_window, total.x(), total.y(), self._image_value_span())
            self.display.set_window(window.center, window.width)
        elif drag is DragMode.CROSSHAIR:
            self._move_cursor_to(pos)
        elif drag is DragMode.TOOL:
            self._send_to_tool(PointerAction.MOVE, pos, "left", event.modifiers())
        else:
            self._send_to_tool(PointerAction.MOVE, pos, "", event.modifiers())
        self._drag_last = pos
        self._emit_hover(pos)
        event.accept()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._drag is DragMode.TOOL and event.button() == Qt.MouseButton.LeftButton:
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
        if self.tool is not None and self._drag is not DragMode.TOOL:
            self.preview.clear()
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
