"""The editing state every tool shares: document, undo stack, active label and overwrite rule.

An ``EditSession`` binds one ``Document`` to one ``UndoStack``. Tools never write
voxels directly: they call :meth:`EditSession.paint` (inside a stroke recorded by
:meth:`begin_stroke`/:meth:`end_stroke`) or :meth:`EditSession.apply_block` for
one-shot operations, which apply the overwrite rule, notify the document with the
region touched and push one undo step.
"""

from __future__ import annotations

from enum import Enum
from typing import Iterable

import numpy as np
from psygnal import Signal

from medviewer.core.document import Document, Region
from medviewer.core.labels import LabelMap
from medviewer.core.undo import LabelEdit, LabelEditRecorder, UndoCommand, UndoStack, clip_region


class OverwriteMode(str, Enum):
    """Which existing voxels painting may change (ITK-SNAP's "Draw over", Slicer's "Modify other segments")."""

    #: Paint over every label.
    ANY = "any"
    #: Paint only where the map is background (0). Erasing then removes only the active label.
    BACKGROUND = "background"
    #: Paint only over background and the labels in ``EditSession.overwritable``; erase only those labels.
    SELECTED = "selected"


class EditSession:
    """Shared editing state for one document.

    Parameters
    ----------
    document:
        The open study whose active label map and detections are edited.
    undo_stack:
        History to push edits on (a new one when omitted).
    """

    #: The active label value changed: (int)
    active_value_changed = Signal(int)
    #: The overwrite mode or the set of overwritable labels changed
    overwrite_changed = Signal()

    def __init__(self, document: Document, undo_stack: UndoStack | None = None) -> None:
        self.document = document
        self.undo_stack = undo_stack if undo_stack is not None else UndoStack()
        self._active_value = 1
        self._overwrite = OverwriteMode.ANY
        self._overwritable: frozenset[int] = frozenset()
        self._recorder: LabelEditRecorder | None = None

    # ------------------------------------------------------------------ state
    @property
    def image(self) -> np.ndarray:
        """The image voxels (z, y, x)."""
        return self.document.volume.array

    @property
    def label_map(self) -> LabelMap | None:
        return self.document.active_label_map

    def ensure_label_map(self) -> LabelMap:
        """The active label map, created empty (named "Labels") when the document has none."""
        if self.document.active_label_map is None:
            self.document.add_label_map(LabelMap.empty(self.document.geometry, name="Labels"))
        return self.document.active_label_map  # type: ignore[return-value]

    @property
    def active_value(self) -> int:
        """The label value painting writes (1..65535)."""
        return self._active_value

    @active_value.setter
    def active_value(self, value: int) -> None:
        value = int(value)
        if not 1 <= value <= 65535:
            raise ValueError(f"the active label must be 1..65535, got {value}")
        if value != self._active_value:
            self._active_value = value
            self.active_value_changed.emit(value)

    @property
    def overwrite(self) -> OverwriteMode:
        return self._overwrite

    @overwrite.setter
    def overwrite(self, mode: OverwriteMode | str) -> None:
        mode = OverwriteMode(mode)
        if mode != self._overwrite:
            self._overwrite = mode
            self.overwrite_changed.emit()

    @property
    def overwritable(self) -> frozenset[int]:
        """Labels that painting may replace in ``SELECTED`` mode (background always may be)."""
        return self._overwritable

    @overwritable.setter
    def overwritable(self, values: Iterable[int]) -> None:
        values = frozenset(int(v) for v in values)
        if values != self._overwritable:
            self._overwritable = values
            self.overwrite_changed.emit()

    # ------------------------------------------------------------------ the overwrite rule
    def writable(self, current: np.ndarray, value: int) -> np.ndarray | None:
        """Boolean mask of the voxels of ``current`` that writing ``value`` may change (None = all)."""
        mode = self._overwrite
        if mode is OverwriteMode.ANY:
            return None
        if value == 0:  # erasing
            if mode is OverwriteMode.BACKGROUND:
                return current == self._active_value
            return np.isin(current, list(self._overwritable))
        if mode is OverwriteMode.BACKGROUND:
            return current == 0
        return np.isin(current, [0, *self._overwritable])

    def _prepare_value(self, label_map: LabelMap, value: int) -> None:
        label_map.ensure_capacity(value)
        if value != 0 and value not in label_map.table:
            label_map.table.add(value)
            self.document.notify_label_table_changed(label_map)

    # ------------------------------------------------------------------ strokes
    @property
    def stroke_active(self) -> bool:
        return self._recorder is not None

    def begin_stroke(self, text: str = "Paint") -> LabelEditRecorder:
        """Start recording a drag; everything painted until :meth:`end_stroke` is one undo step."""
        if self._recorder is not None:
            self.end_stroke()
        label_map = self.ensure_label_map()
        self._recorder = LabelEditRecorder(label_map, self.document, text)
        return self._recorder

    def paint(self, region: Region, mask: np.ndarray, value: int, notify: bool = True) -> Region | None:
        """Write ``value`` where ``mask`` (shape of ``region``) is True and the overwrite rule allows.

        Must be called inside a stroke. Returns the region (for batching notifications).
        """
        recorder = self._recorder
        if recorder is None:
            raise RuntimeError("paint() outside begin_stroke()/end_stroke()")
        label_map = recorder.label_map
        self._prepare_value(label_map, value)
        recorder.prepare(region)
        block = label_map.array[region]
        allowed = self.writable(block, value)
        if allowed is not None:
            mask = mask & allowed
        block[mask] = value
        if notify:
            self.document.notify_labels_changed(label_map, region)
        return region

    def end_stroke(self) -> LabelEdit | None:
        """Finish the drag and push its undo step (None when nothing changed)."""
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return None
        command = recorder.finish()
        self.undo_stack.push(command)
        return command

    def abort_stroke(self) -> None:
        """Cancel the drag in progress and restore what it painted."""
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.abort()

    # ------------------------------------------------------------------ one-shot operations
    def apply_mask(self, region: Region, mask: np.ndarray, value: int, text: str) -> LabelEdit | None:
        """Write ``value`` where ``mask`` is True (with the overwrite rule) as one undo step."""
        self.begin_stroke(text)
        self.paint(region, mask, value)
        return self.end_stroke()

    def apply_block(
        self, region: Region, new_values: np.ndarray, text: str, respect_overwrite: bool = True
    ) -> LabelEdit | None:
        """Replace a block's values as one undo step.

        With ``respect_overwrite`` each changed voxel must pass the overwrite rule for
        its new value (erasures for 0); voxels that may not change keep their value.
        """
        label_map = self.ensure_label_map()
        region = clip_region(region, label_map.array.shape)
        if region is None:
            return None
        top = int(new_values.max()) if new_values.size else 0
        label_map.ensure_capacity(top)
        before = label_map.array[region].copy()
        after = new_values.astype(label_map.array.dtype, copy=True)
        if respect_overwrite and self._overwrite is not OverwriteMode.ANY:
            changed = after != before
            for value in np.unique(after[changed]):
                target = changed & (after == value)
                allowed = self.writable(before, int(value))
                if allowed is not None:
                    after[target & ~allowed] = before[target & ~allowed]
        command = LabelEdit.from_change(label_map, region, before, after, self.document, text)
        if command is None:
            return None
        for value in np.unique(after):
            if value != 0:
                self._prepare_value(label_map, int(value))
        label_map.array[command.region] = after[tuple(
            slice(c.start - r.start, c.stop - r.start) for c, r in zip(command.region, region)
        )]
        self.document.notify_labels_changed(label_map, command.region)
        self.undo_stack.push(command)
        return command

    def push(self, command: UndoCommand | None, apply: bool = False) -> None:
        """Push a prepared command (e.g. a label table or detection edit)."""
        self.undo_stack.push(command, apply=apply)

    # ------------------------------------------------------------------ history
    def undo(self) -> bool:
        if self._recorder is not None:
            self.end_stroke()
        return self.undo_stack.undo()

    def redo(self) -> bool:
        if self._recorder is not None:
            self.end_stroke()
        return self.undo_stack.redo()
