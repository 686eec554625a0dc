"""Detection (box) editing: operations and the box tool.

Every operation is one undo step (``DetectionsEdit``). Boxes are kept on voxel
boundaries (edges at half-integer indices) so that the voxels a box covers are
unambiguous. Editing the geometry of a model's proposal marks it ``edited``.

Box tool, in a slice view: drag on empty space draws a new box on that slice
(one slice deep; change its extent across slices with :func:`set_slice_extent`);
drag inside a box moves it; drag a corner or edge handle resizes it. The
release ends the one undo step of the drag.
"""

from __future__ import annotations

import numpy as np

from medviewer.core.detection import Detection, DetectionStatus
from medviewer.core.geometry import Geometry
from medviewer.core.undo import DetectionsEdit, capture_detections
from medviewer.tools.base import PointerEvent, Tool, ToolPreview
from medviewer.tools.session import EditSession


# ---------------------------------------------------------------------------- geometry helpers
def snap_edge(value: float) -> float:
    """Nearest voxel boundary (half-integer index)."""
    return float(np.floor(value) + 0.5)


def set_index_bounds(detection: Detection, geometry: Geometry, low, high) -> None:
    """Set a box's centre and size from continuous index edges (i, j, k) (in place, no undo)."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    low, high = np.minimum(low, high), np.maximum(low, high)
    detection.center = tuple(float(v) for v in geometry.index_to_world((low + high) / 2.0))
    detection.size = tuple(float(v) for v in (high - low) * np.asarray(geometry.spacing))


def _mark_edited(detection: Detection) -> None:
    if detection.status is DetectionStatus.PROPOSED:
        detection.status = DetectionStatus.EDITED


class _DetectionChange:
    """Context manager: snapshot before, push one DetectionsEdit after (if anything changed)."""

    def __init__(self, session: EditSession, text: str) -> None:
        self.session, self.text = session, text

    def __enter__(self) -> "_DetectionChange":
        self.before = capture_detections(self.session.document)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        document = self.session.document
        with document.recording():  # the DetectionsEdit pushed here holds the change
            if exc_type is not None:
                DetectionsEdit(document, self.before, text=self.text).undo()
                return
            command = DetectionsEdit(document, self.before, text=self.text)
            if not command.is_noop:
                self.session.push(command)
            document.notify_detections_changed()
        self.command = command


# ---------------------------------------------------------------------------- operations
def add_detection(session: EditSession, detection: Detection, select: bool = True) -> Detection:
    with _DetectionChange(session, "Add box"):
        session.document.detections.append(detection)
    if select:
        session.document.select_detection(detection)
    return detection


def delete_detection(session: EditSession, detection: Detection) -> None:
    with _DetectionChange(session, "Delete box"):
        session.document.detections.remove(detection)
    if session.document.selected_detection is detection:
        session.document.select_detection(None)


def set_status(session: EditSession, detection: Detection, status: DetectionStatus | str) -> None:
    """Accept or reject (or reset) a box."""
    with _DetectionChange(session, f"Mark box {DetectionStatus(status).value}"):
        detection.status = DetectionStatus(status)


def accept_detection(session: EditSession, detection: Detection) -> None:
    set_status(session, detection, DetectionStatus.ACCEPTED)


def reject_detection(session: EditSession, detection: Detection) -> None:
    set_status(session, detection, DetectionStatus.REJECTED)


def set_class(session: EditSession, detection: Detection, label: str) -> None:
    """Change a box's class name."""
    label = label.strip()
    if not label:
        raise ValueError("a box class cannot be empty")
    with _DetectionChange(session, "Change box class"):
        detection.label = label
        _mark_edited(detection)


def set_box_bounds(session: EditSession, detection: Detection, low, high) -> None:
    """Move/resize a box to continuous index edges (i, j, k)."""
    with _DetectionChange(session, "Resize box"):
        set_index_bounds(detection, session.document.geometry, low, high)
        _mark_edited(detection)


def move_detection(session: EditSession, detection: Detection, delta_index) -> None:
    """Shift a box by ``delta_index`` voxels (i, j, k)."""
    low, high = detection.index_bounds(session.document.geometry)
    delta = np.asarray(delta_index, float)
    with _DetectionChange(session, "Move box"):
        set_index_bounds(detection, session.document.geometry, low + delta, high + delta)
        _mark_edited(detection)


def set_slice_extent(session: EditSession, detection: Detection, axis: int, first: int, last: int) -> None:
    """Make a box cover slices ``first..last`` (inclusive) along index ``axis`` (2 = axial slices)."""
    geometry = session.document.geometry
    first, last = sorted((int(first), int(last)))
    first, last = max(first, 0), min(last, geometry.size[axis] - 1)
    low, high = detection.index_bounds(geometry)
    low[axis], high[axis] = first - 0.5, last + 0.5
    with _DetectionChange(session, "Change box extent"):
        set_index_bounds(detection, geometry, low, high)
        _mark_edited(detection)


def step_detection(session: EditSession, forward: bool = True, move_cursor: bool = True) -> Detection | None:
    """Select the next (or previous) box in list order and move the cursor to it."""
    detections = session.document.detections
    if not detections:
        return None
    current = session.document.selected_detection
    if current not in detections:
        index = 0 if forward else len(detections) - 1
    else:
        index = (detections.index(current) + (1 if forward else -1)) % len(detections)
    detection = detections[index]
    session.document.select_detection(detection, move_cursor=move_cursor)
    return detection


# ---------------------------------------------------------------------------- the tool
class BoxTool(Tool):
    """Draw, move and resize detection boxes on a slice."""

    name = "box"
    title = "Boxes"
    shortcut = "D"

    def __init__(self, session: EditSession, label: str = "lesion", handle_tolerance_voxels: float = 2.0) -> None:
        self.session = session
        self.label = label
        self.handle_tolerance = float(handle_tolerance_voxels)
        self._drag: dict | None = None
        self._before = None

    # ------------------------------------------------------------------ hit testing
    def _plane_axes(self, view_axis: int) -> list[int]:
        return [a for a in range(3) if a != view_axis]

    def hit(self, event: PointerEvent) -> tuple[Detection, np.ndarray] | None:
        """The box under the pointer on this slice and which edges a drag moves.

        Returns ``(detection, edges)`` where ``edges[a]`` is -1 (low edge), +1 (high
        edge) or 0 for each index axis; all zeros means "move the whole box".
        Handles of the selected box win over other boxes.
        """
        geometry = self.session.document.geometry
        point = np.asarray(event.index, float)
        axes = self._plane_axes(event.view_axis)
        candidates = list(self.session.document.detections)
        selected = self.session.document.selected_detection
        if selected in candidates:
            candidates.remove(selected)
            candidates.insert(0, selected)
        for detection in candidates:
            low, high = detection.index_bounds(geometry)
            if not low[event.view_axis] <= event.slice_index <= high[event.view_axis]:
                continue
            edges = np.zeros(3, int)
            near = True
            for a in axes:
                if abs(point[a] - low[a]) <= self.handle_tolerance:
                    edges[a] = -1
                elif abs(point[a] - high[a]) <= self.handle_tolerance:
                    edges[a] = 1
                elif not low[a] <= point[a] <= high[a]:
                    near = False
            if not near:
                continue
            inside = all(low[a] <= point[a] <= high[a] for a in axes)
            if edges.any() or inside:
                return detection, edges
        return None

    # ------------------------------------------------------------------ events
    def press(self, event: PointerEvent) -> bool:
        if event.button != "left":
            return False
        geometry = self.session.document.geometry
        self._before = capture_detections(self.session.document)
        point = np.asarray(event.index, float)
        found = self.hit(event)
        if found is not None:
            detection, edges = found
            low, high = detection.index_bounds(geometry)
            mode = "resize" if edges.any() else "move"
            self._drag = {"mode": mode, "detection": detection, "edges": edges, "start": point,
                          "low": low, "high": high, "new": False}
        else:
            anchor = np.rint(point)
            anchor[event.view_axis] = event.slice_index
            low, high = anchor - 0.5, anchor + 0.5
            detection = Detection.from_index_bounds(geometry, low, high, label=self.label, source="manual",
                                                    status=DetectionStatus.ACCEPTED)
            self.session.document.detections.append(detection)
            self._drag = {"mode": "draw", "detection": detection, "start": point, "low": low, "high": high,
                          "edges": np.zeros(3, int), "new": True, "anchor": anchor}
        self._drag["view_axis"], self._drag["slice_index"] = event.view_axis, event.slice_index
        self.session.document.select_detection(self._drag["detection"])
        with self.session.document.recording():  # release pushes the drag's DetectionsEdit
            self.session.document.notify_detections_changed()
        return True

    def move(self, event: PointerEvent) -> bool:
        drag = self._drag
        if drag is None:
            return False
        geometry = self.session.document.geometry
        point = np.asarray(event.index, float)
        low, high = drag["low"].copy(), drag["high"].copy()
        if drag["mode"] == "move":
            delta = np.rint(point - drag["start"])
            delta[event.view_axis] = 0
            low, high = low + delta, high + delta
        elif drag["mode"] == "draw":
            # the box spans the voxels from the anchor to the one under the pointer
            anchor = drag["anchor"]
            for a in self._plane_axes(drag["view_axis"]):
                voxel = np.rint(point[a])
                low[a], high[a] = min(anchor[a], voxel) - 0.5, max(anchor[a], voxel) + 0.5
        else:
            for a in range(3):
                if drag["edges"][a] < 0:
                    low[a] = snap_edge(point[a])
                elif drag["edges"][a] > 0:
                    high[a] = snap_edge(point[a])
            for a in range(3):  # never collapse to nothing
                if high[a] - low[a] < 1.0:
                    if drag["edges"][a] < 0:
                        low[a] = high[a] - 1.0
                    else:
                        high[a] = low[a] + 1.0
        set_index_bounds(drag["detection"], geometry, low, high)
        if not drag["new"]:
            _mark_edited(drag["detection"])
        with self.session.document.recording():  # release pushes the drag's DetectionsEdit
            self.session.document.notify_detections_changed()
        return True

    def release(self, event: PointerEvent) -> bool:
        drag, self._drag = self._drag, None
        if drag is None:
            return False
        text = {"draw": "Draw box", "move": "Move box", "resize": "Resize box"}[drag["mode"]]
        command = DetectionsEdit(self.session.document, self._before, text=text)
        if not command.is_noop:
            self.session.push(command)
        return True

    def cancel(self) -> None:
        if self._drag is not None and self._before is not None:
            with self.session.document.recording():  # back to where the history is
                DetectionsEdit(self.session.document, self._before).undo()
        self._drag = None

    # ------------------------------------------------------------------ preview
    def preview(self) -> ToolPreview | None:
        """Outline and handles of the box being drawn or edited."""
        drag = self._drag
        if drag is None:
            return None
        low, high = drag["detection"].index_bounds(self.session.document.geometry)
        view_axis, slice_index = drag["view_axis"], drag["slice_index"]
        a, b = self._plane_axes(view_axis)
        corners = []
        for u, v in ((low[a], low[b]), (high[a], low[b]), (high[a], high[b]), (low[a], high[b])):
            point = np.zeros(3)
            point[a], point[b], point[view_axis] = u, v, slice_index
            corners.append(point)
        return ToolPreview(view_axis, slice_index, polylines=[np.asarray(corners)], closed=True, color=(255, 128, 0))
