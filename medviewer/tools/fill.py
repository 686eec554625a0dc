"""Click tools that fill a region: 2D flood fill, polygon/lasso fill and region growing.

Each click (or closed polygon) is one undo step and goes through the session's
overwrite rule.
"""

from __future__ import annotations

import numpy as np
from skimage.draw import polygon2mask

from medviewer.core.document import Region
from medviewer.core.undo import LabelEdit
from medviewer.imaging import region_growing
from medviewer.imaging.brush import array_axis, index_to_plane, slice_region
from medviewer.tools.base import PointerEvent, Tool, ToolPreview
from medviewer.tools.session import EditSession


def _plane(block: np.ndarray, view_axis: int) -> np.ndarray:
    return np.squeeze(block, axis=array_axis(view_axis))


def _voxel_in_plane(event: PointerEvent) -> tuple[int, int]:
    voxel = np.asarray(event.voxel).copy()
    voxel[event.view_axis] = event.slice_index
    row, col = index_to_plane(voxel[None], event.view_axis)[0]
    return int(row), int(col)


def _inside(event: PointerEvent, shape: tuple[int, int, int]) -> bool:
    voxel = np.asarray(event.voxel)
    size = (shape[2], shape[1], shape[0])
    return bool(np.all(voxel >= 0) and np.all(voxel < np.asarray(size)))


class FloodFill2DTool(Tool):
    """Fill the 4-connected region of the clicked label value on the slice with the active label.

    With ``intensity_range`` set, the fill also stops where the image leaves the range
    (e.g. fill the empty lung on a slice: range -1000..-400 HU).
    """

    name = "fill"
    title = "Fill (2D)"
    shortcut = "F"

    def __init__(self, session: EditSession, intensity_range: tuple[float, float] | None = None) -> None:
        self.session = session
        self.intensity_range = intensity_range

    def fill(self, event: PointerEvent) -> LabelEdit | None:
        label_map = self.session.ensure_label_map()
        if not _inside(event, label_map.array.shape):
            return None
        region = slice_region(label_map.array.shape, event.view_axis, event.slice_index)
        labels = _plane(label_map.array[region], event.view_axis)
        intensity = _plane(self.session.image[region], event.view_axis) if self.intensity_range else None
        mask = region_growing.flood_fill_2d(labels, _voxel_in_plane(event), intensity, self.intensity_range)
        mask3d = np.expand_dims(mask, array_axis(event.view_axis))
        return self.session.apply_mask(region, mask3d, self.session.active_value, self.title)

    def press(self, event: PointerEvent) -> bool:
        if event.button != "left":
            return False
        self.fill(event)
        return True


class PolygonTool(Tool):
    """Polygon (click vertices) or lasso (drag) fill on the slice.

    Left clicks add vertices; a double click or a right click closes the polygon
    and fills it. Pressing and dragging draws a freehand lasso that fills on
    release. Escape (``cancel``) discards the outline. Pixels whose centres lie
    inside the outline are filled.
    """

    name = "polygon"
    title = "Polygon / lasso"
    shortcut = "P"

    #: Lasso points closer than this (voxels) to the previous one are skipped.
    MIN_POINT_DISTANCE = 0.5

    def __init__(self, session: EditSession) -> None:
        self.session = session
        self.vertices: list[np.ndarray] = []
        self._view_axis = 2
        self._slice_index = 0
        self._pressed = False
        self._dragged = False
        self._hover: np.ndarray | None = None

    @property
    def drawing(self) -> bool:
        return bool(self.vertices)

    def _point(self, event: PointerEvent) -> np.ndarray:
        point = np.asarray(event.index, float).copy()
        point[event.view_axis] = event.slice_index
        return point

    def press(self, event: PointerEvent) -> bool:
        if event.button == "right":
            if self.drawing:
                self.close_and_fill()
                return True
            return False
        if event.button != "left":
            return False
        if self.drawing and (event.view_axis != self._view_axis or event.slice_index != self._slice_index):
            self.cancel()  # another slice: start over there
        if not self.drawing:
            self._view_axis, self._slice_index = event.view_axis, event.slice_index
        self.vertices.append(self._point(event))
        self._pressed, self._dragged = True, False
        return True

    def move(self, event: PointerEvent) -> bool:
        if not self.drawing or event.view_axis != self._view_axis:
            return False
        point = self._point(event)
        self._hover = point
        if self._pressed:
            if np.max(np.abs(point - self.vertices[-1])) >= self.MIN_POINT_DISTANCE:
                self.vertices.append(point)
                self._dragged = True
            return True
        return False

    def release(self, event: PointerEvent) -> bool:
        if not self._pressed:
            return False
        self._pressed = False
        if self._dragged and len(self.vertices) >= 3:
            self.close_and_fill()
        return True

    def double_click(self, event: PointerEvent) -> bool:
        if self.drawing:
            self.close_and_fill()
            return True
        return False

    def cancel(self) -> None:
        self.vertices = []
        self._pressed = self._dragged = False
        self._hover = None

    def polygon_mask(self) -> tuple[Region, np.ndarray] | None:
        """The slice region and (3D, one-thick) mask of the closed outline, or None."""
        points = _dedupe(self.vertices)
        if len(points) < 3:
            return None
        shape = self.session.document.volume.array.shape
        region = slice_region(shape, self._view_axis, self._slice_index)
        plane_shape = _plane(np.empty(tuple(s.stop - s.start for s in region), bool), self._view_axis).shape
        mask = polygon2mask(plane_shape, index_to_plane(np.asarray(points), self._view_axis))
        return region, np.expand_dims(mask, array_axis(self._view_axis))

    def close_and_fill(self) -> LabelEdit | None:
        """Fill the outline drawn so far with the active label (one undo step)."""
        result = self.polygon_mask()
        self.cancel()
        if result is None:
            return None
        region, mask = result
        return self.session.apply_mask(region, mask, self.session.active_value, self.title)

    def preview(self) -> ToolPreview | None:
        if not self.drawing:
            return None
        points = list(self.vertices)
        if self._hover is not None and not self._pressed:
            points.append(self._hover)
        return ToolPreview(
            self._view_axis, self._slice_index, polylines=[np.asarray(points)], closed=len(points) >= 3, color=(255, 255, 0)
        )


def _dedupe(points: list[np.ndarray]) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for point in points:
        if not out or np.any(np.abs(point - out[-1]) > 1e-9):
            out.append(point)
    return out


class RegionGrowTool(Tool):
    """Grow a region from the clicked voxel and paint it with the active label.

    ``method="connected"``: voxels connected to the seed with intensity in
    ``[lower, upper]`` (when either is None: seed intensity -/+ ``tolerance``).
    ``method="confidence"``: SimpleITK ConfidenceConnected (mean +- ``multiplier``
    std, re-estimated ``iterations`` times). The search is limited to a cube of
    ``roi_radius_mm`` around the seed (None: the whole volume), in 3D or, with
    ``in_plane``, on the clicked slice only.
    """

    name = "grow"
    title = "Region growing"
    shortcut = "G"

    def __init__(
        self,
        session: EditSession,
        method: str = "connected",
        lower: float | None = None,
        upper: float | None = None,
        tolerance: float = 100.0,
        multiplier: float = 2.5,
        iterations: int = 3,
        initial_radius: int = 2,
        roi_radius_mm: float | None = 60.0,
        in_plane: bool = False,
    ) -> None:
        if method not in ("connected", "confidence"):
            raise ValueError(f"unknown region growing method {method!r}")
        self.session = session
        self.method = method
        self.lower, self.upper, self.tolerance = lower, upper, float(tolerance)
        self.multiplier, self.iterations, self.initial_radius = multiplier, iterations, initial_radius
        self.roi_radius_mm = roi_radius_mm
        self.in_plane = in_plane

    def search_region(self, voxel_ijk: np.ndarray, view_axis: int, slice_index: int) -> Region:
        """Block searched around the seed (array order)."""
        shape = self.session.image.shape
        geometry = self.session.document.geometry
        region = []
        for axis in range(3):  # array axis
            index_axis = 2 - axis
            center = int(voxel_ijk[index_axis])
            if self.in_plane and index_axis == view_axis:
                region.append(slice(slice_index, slice_index + 1))
            elif self.roi_radius_mm is None:
                region.append(slice(0, shape[axis]))
            else:
                half = int(np.ceil(self.roi_radius_mm / geometry.spacing[index_axis]))
                region.append(slice(max(0, center - half), min(shape[axis], center + half + 1)))
        return tuple(region)  # type: ignore[return-value]

    def grow_mask(self, event: PointerEvent) -> tuple[Region, np.ndarray] | None:
        if not _inside(event, self.session.image.shape):
            return None
        voxel = np.asarray(event.voxel).copy()
        voxel[event.view_axis] = event.slice_index
        region = self.search_region(voxel, event.view_axis, event.slice_index)
        block = self.session.image[region]
        seed = tuple(int(voxel[2 - a]) - region[a].start for a in range(3))
        if self.method == "connected":
            value = float(block[seed])
            lower = self.lower if self.lower is not None else value - self.tolerance
            upper = self.upper if self.upper is not None else value + self.tolerance
            mask = region_growing.connected_threshold(block, seed, lower, upper)
        else:
            mask = region_growing.confidence_connected(
                block, seed, self.multiplier, self.iterations, self.initial_radius
            )
        return region, mask

    def press(self, event: PointerEvent) -> bool:
        if event.button != "left":
            return False
        result = self.grow_mask(event)
        if result is not None:
            region, mask = result
            self.session.apply_mask(region, mask, self.session.active_value, self.title)
        return True
