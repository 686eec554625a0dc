"""Measurement tools: ruler, ellipse ROI and rectangle ROI.

They follow the editing-tool contract (``medviewer.tools.base.Tool``): the slice
view hands them pointer events; a left drag defines the two points; on release a
``Measurement`` is added to the window's ``MeasurementList``. While dragging,
``preview()`` returns the outline being drawn. They hold no Qt objects.
"""

from __future__ import annotations

import numpy as np

from medviewer.imaging import measurements as measure
from medviewer.tools.base import PointerEvent, Tool, ToolPreview

_MINIMUM_DRAG_VOXELS = 0.5
_ELLIPSE_SEGMENTS = 64


class MeasurementTool(Tool):
    """Drag from one point to another to add a measurement of ``kind``."""

    kind = measure.RULER

    def __init__(self, measurements_provider) -> None:
        """``measurements_provider()`` returns the MeasurementList to add to (it changes with the document)."""
        self._provider = measurements_provider
        self._start: PointerEvent | None = None
        self._end: np.ndarray | None = None

    def press(self, event: PointerEvent) -> bool:
        if event.button != "left":
            return False
        self._start = event
        self._end = event.index.copy()
        return True

    def move(self, event: PointerEvent) -> bool:
        if self._start is None or event.button != "left":
            return False
        if event.view_axis != self._start.view_axis or event.slice_index != self._start.slice_index:
            return True
        self._end = event.index.copy()
        return True

    def release(self, event: PointerEvent) -> bool:
        if self._start is None:
            return False
        start = self._start
        if event.view_axis == start.view_axis and event.slice_index == start.slice_index:
            self._end = event.index.copy()
        end = self._end
        self._start, self._end = None, None
        in_plane = [a for a in range(3) if a != start.view_axis]
        if np.max(np.abs((end - start.index)[in_plane])) < _MINIMUM_DRAG_VOXELS:
            return True  # a click is not a measurement
        measurements = self._provider()
        if measurements is not None:
            measurements.add(measure.Measurement(self.kind, start.view_axis, start.slice_index, start.index, end))
        return True

    def cancel(self) -> None:
        self._start, self._end = None, None

    def preview(self) -> ToolPreview | None:
        if self._start is None or self._end is None:
            return None
        start = self._start
        return ToolPreview(
            view_axis=start.view_axis,
            slice_index=start.slice_index,
            polylines=[self._outline(start.index.astype(float), self._end.astype(float), start.view_axis)],
            closed=self.kind != measure.RULER,
            color=(0, 230, 255),
        )

    def _outline(self, start: np.ndarray, end: np.ndarray, view_axis: int) -> np.ndarray:
        return np.stack([start, end])


class RulerTool(MeasurementTool):
    name = "ruler"
    title = "Ruler"
    shortcut = "M"
    kind = measure.RULER


class RectangleRoiTool(MeasurementTool):
    name = "rectangle_roi"
    title = "Rectangle ROI"
    shortcut = ""
    kind = measure.RECTANGLE

    def _outline(self, start: np.ndarray, end: np.ndarray, view_axis: int) -> np.ndarray:
        a, b = [axis for axis in range(3) if axis != view_axis]
        corners = []
        for ua, ub in ((start[a], start[b]), (end[a], start[b]), (end[a], end[b]), (start[a], end[b])):
            point = start.copy()
            point[a], point[b] = ua, ub
            corners.append(point)
        return np.stack(corners)


class EllipseRoiTool(MeasurementTool):
    name = "ellipse_roi"
    title = "Ellipse ROI"
    shortcut = ""
    kind = measure.ELLIPSE

    def _outline(self, start: np.ndarray, end: np.ndarray, view_axis: int) -> np.ndarray:
        a, b = [axis for axis in range(3) if axis != view_axis]
        center = (start + end) / 2.0
        radii = np.abs(end - start) / 2.0
        angles = np.linspace(0.0, 2.0 * np.pi, _ELLIPSE_SEGMENTS, endpoint=False)
        points = np.repeat(center[None, :], _ELLIPSE_SEGMENTS, axis=0)
        points[:, a] = center[a] + radii[a] * np.cos(angles)
        points[:, b] = center[b] + radii[b] * np.sin(angles)
        return points
