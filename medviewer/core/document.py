"""The open study: one image volume with its label maps and detections.

The document is the truth; views subscribe to its psygnal signals and redraw only
what changed. Voxels change only through :meth:`Document.edit_labels` and
:meth:`Document.begin_label_stroke` (``medviewer.core.edits``): one undo record,
one ``labels_changed`` event with the region touched. The document is *modified*
when its bound undo history (:meth:`Document.bind_history`) is away from the
clean point, or when a change that is not in the history was made since the
last save.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import numpy as np
from psygnal import Signal

from medviewer.core import edits
from medviewer.core.detection import Detection
from medviewer.core.errors import GeometryMismatchError
from medviewer.core.labels import LabelMap
from medviewer.core.regions import Region, full_region  # noqa: F401  (re-exported)
from medviewer.core.study import SeriesInfo
from medviewer.core.undo import LabelEdit, UndoCommand, UndoStack
from medviewer.core.volume import Volume


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

    def __init__(self, volume: Volume, series: SeriesInfo | None = None, history: UndoStack | None = None) -> None:
        self.volume = volume
        self.series = series
        self.label_maps: list[LabelMap] = []
        self.active_label_map: LabelMap | None = None
        self.detections: list[Detection] = []
        self.selected_detection: Detection | None = None
        self._modified = False
        self._unrecorded = False  # a change the history cannot undo was made since the last save
        self._recording = 0
        self._history: UndoStack | None = None
        if history is not None:
            self.bind_history(history)
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

    # ------------------------------------------------------------------ the edit path
    def edit_labels(
        self,
        label_map: LabelMap,
        region: Region,
        values: np.ndarray | int,
        mask: np.ndarray | None = None,
        rule: edits.OverwriteRule = edits.ANY,
        text: str = "Edit labels",
    ) -> LabelEdit | None:
        """Change voxels of ``label_map`` as one step: the one entry point for one-shot edits.

        ``values`` is one label value or a block of ``region``'s shape; with ``mask``
        (``region``'s shape) only the True voxels change. ``region`` is clipped to the
        array; ``rule`` (the overwrite mode) may keep voxels from changing. The change
        is written, recorded on the bound history as one undo step (or marks the
        document modified when none is bound) and announced by one ``labels_changed``
        with the tight region of the voxels that changed. Returns the command, None
        when nothing changed.
        """
        return edits.edit_labels(self, label_map, region, values, mask, rule, text)

    def begin_label_stroke(
        self, label_map: LabelMap, text: str = "Paint", rule: edits.OverwriteRule = edits.ANY
    ) -> edits.LabelStroke:
        """Start a drag on ``label_map``: many dabs, one undo record (see ``LabelStroke``)."""
        return edits.LabelStroke(self, label_map, text, rule)

    def write_labels(
        self, label_map: LabelMap, region: Region, values: np.ndarray | int, mask: np.ndarray | None = None
    ) -> None:
        """The write half of the edit path, for replaying history (undo/redo) and cancelling a drag.

        Writes and emits ``labels_changed``; makes no undo record (the caller is one).
        """
        label_map.write(region, values, mask)
        self.labels_written(label_map, region, recorded=True)

    def labels_written(self, label_map: LabelMap, region: Region | None, recorded: bool) -> None:
        """Announce written voxels; ``recorded``: they are (or will be) in the bound history."""
        self.labels_changed.emit(label_map, region)
        if not recorded or self._history is None:
            self.mark_modified()

    def record(self, command: UndoCommand, applied: bool = False) -> None:
        """Put an undoable change on the bound history (running it first unless ``applied``).

        Without a bound history the change is made and the document marked modified.
        """
        if self._history is not None:
            self._history.push(command, apply=not applied)
            return
        if not applied:
            with self.recording():
                command.redo()
        self.mark_modified()

    def notify_labels_changed(self, label_map: LabelMap, region: Region | None = None, modified: bool = True) -> None:
        """Tell views that voxels in ``region`` of ``label_map`` changed (a change the history does not hold)."""
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
    def history(self) -> UndoStack | None:
        """The undo stack the modified flag follows (None: every change marks the document modified)."""
        return self._history

    def bind_history(self, stack: UndoStack | None) -> None:
        """Let ``stack``'s clean point decide the modified flag from now on.

        The document as it is now becomes the stack's clean point; whether it was
        modified before is kept as a change the history cannot undo. A stack follows
        one document: binding it here unbinds it from the previous one.
        """
        if stack is self._history:
            return
        unrecorded = self.modified
        if self._history is not None:
            self._history.changed.disconnect(self._update_modified)
            self._history.document = None
        self._history = stack
        self._unrecorded = unrecorded
        if stack is not None:
            if stack.document is not None and stack.document is not self:
                stack.document.bind_history(None)
            stack.document = self
            stack.set_clean()
            stack.changed.connect(self._update_modified)
        self._update_modified()

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Changes made inside are covered by an undo record the caller pushes: they do not mark modified."""
        self._recording += 1
        try:
            yield
        finally:
            self._recording -= 1

    @property
    def modified(self) -> bool:
        return self._modified

    def mark_modified(self, modified: bool = True) -> None:
        """``True``: a change was made that the history does not hold; ``False``: the document is saved."""
        if modified:
            if self._recording or (self._history is not None and self._history.busy):
                return  # the history holds this change
            self._unrecorded = True
        else:
            self._unrecorded = False
            if self._history is not None:
                self._history.set_clean()
        self._update_modified()

    def mark_saved(self) -> None:
        """The document as it is now is saved: the history's present point becomes its clean point."""
        self.mark_modified(False)

    def _update_modified(self) -> None:
        modified = self._unrecorded or (self._history is not None and not self._history.is_clean())
        if modified != self._modified:
            self._modified = modified
            self.modified_changed.emit(modified)
