"""The open study: one image volume with its label maps and detections.

The document is the truth; views subscribe to its psygnal signals and redraw only
what changed. Editing code changes arrays in place and then calls
``notify_labels_changed`` with the region it touched.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
from psygnal import Signal

from medviewer.core.detection import Detection
from medviewer.core.errors import GeometryMismatchError
from medviewer.core.labels import LabelMap
from medviewer.core.study import SeriesInfo
from medviewer.core.volume import Volume

#: A block of a (z, y, x) array: three slices. ``None`` means "everything".
Region = tuple[slice, slice, slice]


def full_region(shape: tuple[int, int, int]) -> Region:
    return (slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2]))


class Document:
    """One open series and the layers drawn over it."""

    #: label map layers were added, removed or reordered
    label_maps_changed = Signal()
    #: voxels of a label map changed: (label_map, region or None for all)
    labels_changed = Signal(object, object)
    #: names/colours/visibility of a label map's table changed: (label_map)
    label_table_changed = Signal(object)
    #: the active (edited) label map changed: (label_map or None)
    active_label_map_changed = Signal(object)
    #: detections were added, removed or edited
    detections_changed = Signal()
    #: the selected detection changed: (detection or None)
    selection_changed = Signal(object)
    #: the linked cursor moved: (world LPS mm position, np.ndarray of 3)
    cursor_moved = Signal(object)
    #: unsaved-changes flag changed: (bool)
    modified_changed = Signal(bool)

    def __init__(self, volume: Volume, series: SeriesInfo | None = None) -> None:
        self.volume = volume
        self.series = series
        self.label_maps: list[LabelMap] = []
        self.active_label_map: LabelMap | None = None
        self.detections: list[Detection] = []
        self.selected_detection: Detection | None = None
        self._modified = False
        centre_index = (np.asarray(volume.geometry.size) - 1) / 2.0
        self._cursor = volume.geometry.index_to_world(np.floor(centre_index + 0.5))

    @property
    def geometry(self):
        return self.volume.geometry

    # ------------------------------------------------------------------ label maps
    def add_label_map(self, label_map: LabelMap, make_active: bool = True) -> LabelMap:
        """Add a layer; refused with ``GeometryMismatchError`` unless it has the image's grid."""
        if label_map.array.shape != self.volume.array.shape:
            raise GeometryMismatchError(
                f"label map '{label_map.name}' has shape {label_map.array.shape}, the image {self.volume.array.shape}"
            )
        self.geometry.require_match(label_map.geometry, f"label map '{label_map.name}'")
        self.label_maps.append(label_map)
        self.label_maps_changed.emit()
        if make_active or self.active_label_map is None:
            self.set_active_label_map(label_map)
        return label_map

    def remove_label_map(self, label_map: LabelMap) -> None:
        self.label_maps.remove(label_map)
        self.label_maps_changed.emit()
        if self.active_label_map is label_map:
            self.set_active_label_map(self.label_maps[-1] if self.label_maps else None)
        self.mark_modified()

    def replace_label_map(self, old: LabelMap, new: LabelMap) -> None:
        """Put ``new`` in ``old``'s place (e.g. a model re-run replacing its result)."""
        self.geometry.require_match(new.geometry, f"label map '{new.name}'")
        index = self.label_maps.index(old)
        self.label_maps[index] = new
        self.label_maps_changed.emit()
        if self.active_label_map is old:
            self.set_active_label_map(new)

    def set_active_label_map(self, label_map: LabelMap | None) -> None:
        if label_map is not None and label_map not in self.label_maps:
            raise ValueError("the label map is not part of this document")
        if label_map is not self.active_label_map:
            self.active_label_map = label_map
            self.active_label_map_changed.emit(label_map)

    def find_label_map(self, name: str) -> LabelMap | None:
        return next((lm for lm in self.label_maps if lm.name == name), None)

    def notify_labels_changed(self, label_map: LabelMap, region: Region | None = None, modified: bool = True) -> None:
        """Tell views that voxels in ``region`` of ``label_map`` changed."""
        self.labels_changed.emit(label_map, region)
        if modified:
            self.mark_modified()

    def notify_label_table_changed(self, label_map: LabelMap) -> None:
        self.label_table_changed.emit(label_map)
        self.mark_modified()

    # ------------------------------------------------------------------ detections
    def add_detections(self, detections: Iterable[Detection]) -> None:
        self.detections.extend(detections)
        self.detections_changed.emit()
        self.mark_modified()

    def set_detections(self, detections: Iterable[Detection]) -> None:
        self.detections = list(detections)
        if self.selected_detection not in self.detections:
            self.select_detection(None)
        self.detections_changed.emit()
        self.mark_modified()

    def remove_detection(self, detection: Detection) -> None:
        self.detections.remove(detection)
        if self.selected_detection is detection:
            self.select_detection(None)
        self.detections_changed.emit()
        self.mark_modified()

    def notify_detections_changed(self) -> None:
        self.detections_changed.emit()
        self.mark_modified()

    def select_detection(self, detection: Detection | None, move_cursor: bool = False) -> None:
        if detection is not self.selected_detection:
            self.selected_detection = detection
            self.selection_changed.emit(detection)
        if detection is not None and move_cursor:
            self.set_cursor(detection.center)

    # ------------------------------------------------------------------ cursor
    @property
    def cursor(self) -> np.ndarray:
        """Linked cursor position in world LPS mm (a copy)."""
        return self._cursor.copy()

    @property
    def cursor_index(self) -> np.ndarray:
        """Cursor as the nearest voxel index (i, j, k), clipped to the grid."""
        index = self.geometry.world_to_voxel(self._cursor)
        return np.clip(index, 0, np.asarray(self.geometry.size) - 1)

    def set_cursor(self, world: Iterable[float]) -> None:
        world = np.asarray(list(world), dtype=float)
        if not np.allclose(world, self._cursor, atol=1e-9):
            self._cursor = world
            self.cursor_moved.emit(world.copy())

    def set_cursor_index(self, index: Iterable[float]) -> None:
        self.set_cursor(self.geometry.index_to_world(np.asarray(list(index), dtype=float)))

    # ------------------------------------------------------------------ modified flag
    @property
    def modified(self) -> bool:
        return self._modified

    def mark_modified(self, modified: bool = True) -> None:
        if modified != self._modified:
            self._modified = modified
            self.modified_changed.emit(modified)

    def mark_saved(self) -> None:
        self.mark_modified(False)
