"""The editing state every tool shares: document, undo stack, active label and overwrite rule.

An ``EditSession`` binds one ``Document`` to one ``UndoStack`` (the document's
modified flag then follows the stack's clean point). Tools never write voxels
directly: they call :meth:`EditSession.paint` (inside a stroke recorded by
:meth:`begin_stroke`/:meth:`end_stroke`) or :meth:`EditSession.apply_block` /
:meth:`apply_mask` for one-shot operations; all of them go through the document's
one edit path (``Document.edit_labels`` / ``Document.begin_label_stroke``), which
applies the overwrite rule, pushes one undo step and emits one ``labels_changed``.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
from psygnal import Signal

from medviewer.core.document import Document, Region
from medviewer.core.edits import LabelStroke, OverwriteMode, OverwriteRule
from medviewer.core.labels import LabelMap
from medviewer.core.undo import LabelEdit, UndoCommand, UndoStack

__all__ = ["EditSession", "OverwriteMode"]


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
        if undo_stack is None:
            undo_stack = document.history if document.history is not None else UndoStack()
        self.undo_stack = undo_stack
        document.bind_history(undo_stack)
        self._active_value = 1
        self._overwrite = OverwriteMode.ANY
        self._overwritable: frozenset[int] = frozenset()
        self._stroke: LabelStroke | None = None

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
    @property
    def rule(self) -> OverwriteRule:
        """The overwrite rule as it stands now (mode, active label, overwritable labels)."""
        return OverwriteRule(self._overwrite, self._active_value, self._overwritable)

    def writable(self, current: np.ndarray, value: int) -> np.ndarray | None:
        """Boolean mask of the voxels of ``current`` that writing ``value`` may change (None = all)."""
        return self.rule.writable(current, value)

    def _prepare_value(self, label_map: LabelMap, value: int) -> None:
        # A new value gets a default table entry; it is part of the edit, not a change of its own.
        if value != 0 and value not in label_map.table:
            label_map.table.add(value)
            with self.document.recording():
                self.document.notify_label_table_changed(label_map)

    # ------------------------------------------------------------------ strokes
    @property
    def stroke_active(self) -> bool:
        return self._stroke is not None

    def begin_stroke(self, text: str = "Paint") -> LabelStroke:
        """Start recording a drag; everything painted until :meth:`end_stroke` is one undo step."""
        if self._stroke is not None:
            self.end_stroke()
        label_map = self.ensure_label_map()
        self._stroke = self.document.begin_label_stroke(label_map, text, self.rule)
        return self._stroke

    def paint(self, region: Region, mask: np.ndarray, value: int, notify: bool = True) -> Region | None:
        """Write ``value`` where ``mask`` (shape of ``region``) is True and the overwrite rule allows.

        Must be called inside a stroke. Returns the tight region changed (None: nothing
        changed). With ``notify=False`` the views hear of it at the next :meth:`notify_stroke`.
        """
        stroke = self._stroke
        if stroke is None:
            raise RuntimeError("paint() outside begin_stroke()/end_stroke()")
        self._prepare_value(stroke.label_map, value)
        return stroke.paint(region, mask, value, notify)

    def notify_stroke(self) -> Region | None:
        """One ``labels_changed`` for everything painted since the last notification."""
        return self._stroke.flush() if self._stroke is not None else None

    def end_stroke(self) -> LabelEdit | None:
        """Finish the drag and push its undo step (None when nothing changed)."""
        stroke, self._stroke = self._stroke, None
        return stroke.finish() if stroke is not None else None

    def abort_stroke(self) -> None:
        """Cancel the drag in progress and restore what it painted."""
        stroke, self._stroke = self._stroke, None
        if stroke is not None:
            stroke.abort()

    # ------------------------------------------------------------------ one-shot operations
    def apply_mask(self, region: Region, mask: np.ndarray, value: int, text: str) -> LabelEdit | None:
        """Write ``value`` where ``mask`` is True (with the overwrite rule) as one undo step."""
        label_map = self.ensure_label_map()
        self._prepare_value(label_map, int(value))
        return self.document.edit_labels(label_map, region, int(value), mask, self.rule, text)

    def apply_block(
        self, region: Region, new_values: np.ndarray, text: str, respect_overwrite: bool = True
    ) -> LabelEdit | None:
        """Replace a block's values as one undo step.

        With ``respect_overwrite`` each changed voxel must pass the overwrite rule for
        its new value (erasures for 0); voxels that may not change keep their value.
        """
        label_map = self.ensure_label_map()
        rule = self.rule if respect_overwrite else OverwriteRule()
        command = self.document.edit_labels(label_map, region, new_values, None, rule, text)
        if command is not None:
            for value in np.unique(label_map.array[command.region]):
                self._prepare_value(label_map, int(value))
        return command

    def push(self, command: UndoCommand | None, apply: bool = False) -> None:
        """Push a prepared command (e.g. a label table or detection edit)."""
        self.undo_stack.push(command, apply=apply)

    # ------------------------------------------------------------------ history
    def undo(self) -> bool:
        if self._stroke is not None:
            self.end_stroke()
        return self.undo_stack.undo()

    def redo(self) -> bool:
        if self._stroke is not None:
            self.end_stroke()
        return self.undo_stack.redo()
