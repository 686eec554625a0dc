"""Paint brush, eraser and threshold paint: continuous strokes in millimetres.

The brush is a disc in the view plane (or a 3D ball) of a radius in mm, centred on
the voxel under the pointer; spacing is respected, so the brush is round in mm on
anisotropic grids. Between two pointer positions of a drag, dabs are placed along
the segment at most half a brush radius apart, so a fast drag leaves a connected
band. One drag (press -> release) is one undo step. Each dab writes only its own
sub-block; each pointer event notifies views once, with the tight box it changed.

The right button erases with the paint brush (ITK-SNAP convention).
"""

from __future__ import annotations

import numpy as np

from medviewer.core.document import Region
from medviewer.imaging.brush import (
    array_axis,
    brush_kernel,
    kernel_step,
    place_kernel,
    plane_array_axes,
    slice_region,
    stroke_centers,
)
from medviewer.tools.base import PointerEvent, Tool, ToolPreview
from medviewer.tools.session import EditSession

#: Colour of outlines drawn while hovering.
PREVIEW_COLOR = (255, 255, 0)


def circle_outline(center_index: np.ndarray, radius_mm: float, spacing_xyz, view_axis: int, points: int = 48) -> np.ndarray:
    """(N, 3) continuous indices of a circle of ``radius_mm`` around a voxel, in the view plane."""
    angles = np.linspace(0.0, 2 * np.pi, points, endpoint=False)
    in_plane = [a for a in range(3) if a != view_axis]
    outline = np.repeat(np.asarray(center_index, float)[None], points, axis=0)
    outline[:, in_plane[0]] += np.cos(angles) * radius_mm / spacing_xyz[in_plane[0]]
    outline[:, in_plane[1]] += np.sin(angles) * radius_mm / spacing_xyz[in_plane[1]]
    return outline


class PaintBrushTool(Tool):
    """Paint the active label with a round brush (2D disc or 3D ball)."""

    name = "paint"
    title = "Paint brush"
    shortcut = "B"

    def __init__(self, session: EditSession, radius_mm: float = 5.0, sphere: bool = False) -> None:
        self.session = session
        self.radius_mm = float(radius_mm)
        self.sphere = bool(sphere)
        self._last_index: np.ndarray | None = None
        self._view_axis = 2
        self._slice_index = 0
        self._value = 0
        self._hover: PointerEvent | None = None

    # ------------------------------------------------------------------ what gets written
    def paint_value(self, event: PointerEvent) -> int:
        """Label written by this event: the active label, or 0 (erase) with the right button."""
        return 0 if event.button == "right" else self.session.active_value

    def extra_mask(self, region: Region) -> np.ndarray | None:
        """Further restriction of a dab (threshold paint overrides it)."""
        return None

    def kernel(self, view_axis: int) -> np.ndarray:
        spacing = self.session.document.geometry.spacing
        return brush_kernel(self.radius_mm, spacing, None if self.sphere else view_axis)

    # ------------------------------------------------------------------ painting
    def _dab_centres(self, event: PointerEvent) -> np.ndarray:
        index = np.asarray(event.index, float).copy()
        if not self.sphere:
            index[event.view_axis] = event.slice_index
        if self._last_index is None:
            return np.rint(index)[None].astype(np.int64)
        kernel = self.kernel(event.view_axis)
        return stroke_centers(self._last_index, index, kernel_step(kernel))

    def paint_at(self, centers_ijk: np.ndarray, view_axis: int, value: int) -> Region | None:
        """Dab at each voxel centre (i, j, k); returns the union of the regions written."""
        label_map = self.session.ensure_label_map()
        kernel = self.kernel(view_axis)
        for i, j, k in np.atleast_2d(centers_ijk):
            placed = place_kernel(kernel, (k, j, i), label_map.array.shape)
            if placed is None:
                continue
            region, mask = placed
            extra = self.extra_mask(region)
            if extra is not None:
                mask = mask & extra
            self.session.paint(region, mask, value, notify=False)
        # One event per pointer event, over the tight box of the voxels its dabs changed.
        return self.session.notify_stroke()

    def press(self, event: PointerEvent) -> bool:
        if event.button not in ("left", "right"):
            return False
        self._view_axis, self._slice_index = event.view_axis, event.slice_index
        self._value = self.paint_value(event)
        self.session.begin_stroke("Erase" if self._value == 0 else self.title)
        self._last_index = None
        centres = self._dab_centres(event)
        self.paint_at(centres, event.view_axis, self._value)
        self._last_index = centres[-1].astype(float)
        self._hover = event
        return True

    def move(self, event: PointerEvent) -> bool:
        self._hover = event
        if self._last_index is None or not self.session.stroke_active:
            return False
        centres = self._dab_centres(event)
        if len(centres):
            self.paint_at(centres, self._view_axis, self._value)
            self._last_index = centres[-1].astype(float)
        return True

    def release(self, event: PointerEvent) -> bool:
        if self._last_index is None:
            return False
        self._last_index = None
        self.session.end_stroke()
        return True

    def cancel(self) -> None:
        self._last_index = None
        self.session.abort_stroke()

    # ------------------------------------------------------------------ preview
    def preview(self) -> ToolPreview | None:
        """The brush footprint under the pointer (mask and outline) on the hovered slice."""
        event = self._hover
        if event is None:
            return None
        shape = self.session.document.volume.array.shape
        center = np.rint(np.asarray(event.index, float)).astype(np.int64)
        center[event.view_axis] = event.slice_index
        kernel = brush_kernel(self.radius_mm, self.session.document.geometry.spacing, event.view_axis)
        placed = place_kernel(kernel, (center[2], center[1], center[0]), shape)
        if placed is None:
            return None
        region, mask = placed
        plane_mask = np.squeeze(mask, axis=array_axis(event.view_axis))
        rows, cols = plane_array_axes(event.view_axis)
        extra = self.extra_mask(region)
        if extra is not None:
            plane_mask = plane_mask & np.squeeze(extra, axis=array_axis(event.view_axis))
        outline = circle_outline(center, self.radius_mm, self.session.document.geometry.spacing, event.view_axis)
        return ToolPreview(
            event.view_axis,
            event.slice_index,
            mask=plane_mask,
            mask_origin=(region[rows].start, region[cols].start),
            polylines=[outline],
            closed=True,
            color=PREVIEW_COLOR,
        )


class EraserTool(PaintBrushTool):
    """Erase (set to background) with a round brush; the overwrite rule limits what is erased."""

    name = "erase"
    title = "Eraser"
    shortcut = "E"

    def paint_value(self, event: PointerEvent) -> int:
        return 0


class ThresholdPaintTool(PaintBrushTool):
    """Paint only voxels whose intensity lies in ``[lower, upper]``; previews the in-range voxels of the slice."""

    name = "threshold_paint"
    title = "Threshold paint"
    shortcut = "T"

    def __init__(
        self,
        session: EditSession,
        lower: float = -100.0,
        upper: float = 300.0,
        radius_mm: float = 5.0,
        sphere: bool = False,
    ) -> None:
        super().__init__(session, radius_mm, sphere)
        self.lower = float(lower)
        self.upper = float(upper)
        self._range_cache: tuple[tuple, np.ndarray] | None = None

    def extra_mask(self, region: Region) -> np.ndarray:
        block = self.session.image[region]
        return (block >= self.lower) & (block <= self.upper)

    def in_range_slice(self, view_axis: int, slice_index: int) -> np.ndarray:
        """Boolean array-order plane of the voxels of one slice within the range (cached)."""
        key = (view_axis, slice_index, self.lower, self.upper, id(self.session.image))
        if self._range_cache is None or self._range_cache[0] != key:
            region = slice_region(self.session.image.shape, view_axis, slice_index)
            plane = np.squeeze(self.extra_mask(region), axis=array_axis(view_axis))
            self._range_cache = (key, plane)
        return self._range_cache[1]

    def preview(self) -> ToolPreview | None:
        """Live threshold preview: every in-range voxel of the hovered slice, plus the brush outline."""
        event = self._hover
        if event is None:
            return None
        brush = super().preview()
        return ToolPreview(
            event.view_axis,
            event.slice_index,
            mask=self.in_range_slice(event.view_axis, event.slice_index),
            mask_origin=(0, 0),
            polylines=brush.polylines if brush is not None else [],
            closed=True,
            color=(0, 200, 255),
        )
