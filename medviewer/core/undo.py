"""Undo/redo of label and detection edits, bounded in memory.

Every edit is a command pushed on an :class:`UndoStack`. Voxel edits store only the
changed sub-block of the label map, before and after, zlib-compressed
(:class:`LabelEdit`); a mouse drag records all of its dabs into one command with a
:class:`LabelEditRecorder`, so one drag is one undo step. The history is capped by
total compressed bytes as well as by the number of steps; the oldest steps are
dropped first.

Commands are Qt-free. They change voxels through ``Document.write_labels`` (the
write half of the one edit path, ``medviewer.core.edits``), which emits
``labels_changed`` with the tight region they touched, so views redraw only what
changed. A document bound to a stack (``Document.bind_history``) is modified
exactly when the stack is away from its clean point (or a change that is not in
the history was made since the last save).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np
from psygnal import Signal

from medviewer.core.detection import Detection
from medviewer.core.labels import LabelMap, LabelTable
from medviewer.core.regions import (  # noqa: F401  (re-exported: the undo API has always offered them)
    Region,
    clip_region,
    offset_region,
    region_shape,
    region_union,
    relative_region,
    tight_region,
)

if TYPE_CHECKING:
    from medviewer.core.document import Document

#: zlib level: 1 is several times faster than the default and compresses masks almost as well.
_ZLIB_LEVEL = 1


@dataclass(frozen=True)
class _PackedBlock:
    """A zlib-compressed array block."""

    data: bytes
    shape: tuple[int, ...]
    dtype: str

    @classmethod
    def pack(cls, array: np.ndarray) -> "_PackedBlock":
        array = np.ascontiguousarray(array)
        return cls(zlib.compress(array.tobytes(), _ZLIB_LEVEL), tuple(array.shape), array.dtype.str)

    def unpack(self) -> np.ndarray:
        return np.frombuffer(zlib.decompress(self.data), dtype=np.dtype(self.dtype)).reshape(self.shape)

    @property
    def nbytes(self) -> int:
        return len(self.data)


# ---------------------------------------------------------------------------- commands
class UndoCommand:
    """One undoable step. ``redo`` applies it, ``undo`` reverts it."""

    text: str = ""

    def undo(self) -> None:
        raise NotImplementedError

    def redo(self) -> None:
        raise NotImplementedError

    @property
    def nbytes(self) -> int:
        """Memory the command holds (counts against the stack's byte cap)."""
        return 256


class _BeforeAfterEdit(UndoCommand):
    """A step that keeps the whole state before and after (``_before``, ``_after``) and puts one back."""

    #: Bookkeeping bytes counted per stored entry.
    entry_bytes = 64
    _before: Any
    _after: Any

    def _apply(self, state: Any) -> None:
        raise NotImplementedError

    def undo(self) -> None:
        self._apply(self._before)

    def redo(self) -> None:
        self._apply(self._after)

    @property
    def nbytes(self) -> int:
        return self.entry_bytes * (len(self._before) + len(self._after)) + 256


class LabelEdit(_BeforeAfterEdit):
    """Voxel change of one label map inside ``region``: compressed before/after blocks.

    Parameters
    ----------
    label_map:
        The edited layer.
    region:
        (z, y, x) slices with explicit bounds; ideally the tight box of the change.
    before, after:
        The block's values before and after the edit (same shape as the region).
    document:
        Notified after undo/redo so views redraw the region (optional in tests).
    """

    def __init__(
        self,
        label_map: LabelMap,
        region: Region,
        before: np.ndarray,
        after: np.ndarray,
        document: Document | None = None,
        text: str = "Edit labels",
    ) -> None:
        if before.shape != after.shape or tuple(before.shape) != region_shape(region):
            raise ValueError(f"before {before.shape} / after {after.shape} do not fit region {region_shape(region)}")
        self.label_map = label_map
        self.region = region
        self.document = document
        self.text = text
        self._before = _PackedBlock.pack(before)
        self._after = _PackedBlock.pack(after)
        self.changed_voxels = int(np.count_nonzero(before != after))

    @classmethod
    def from_change(
        cls,
        label_map: LabelMap,
        region: Region,
        before: np.ndarray,
        after: np.ndarray,
        document: Document | None = None,
        text: str = "Edit labels",
    ) -> "LabelEdit | None":
        """A command shrunk to the tight box of the voxels that differ; None if nothing changed."""
        changed = tight_region(before != after)
        if changed is None:
            return None
        absolute = tuple(slice(r.start + c.start, r.start + c.stop) for r, c in zip(region, changed))
        return cls(label_map, absolute, before[changed], after[changed], document, text)  # type: ignore[arg-type]

    def _apply(self, block: _PackedBlock) -> None:
        values = block.unpack()
        if self.document is not None:
            self.document.write_labels(self.label_map, self.region, values)
        else:
            self.label_map.write(self.region, values)

    @property
    def nbytes(self) -> int:
        return self._before.nbytes + self._after.nbytes + 256


class LabelTableEdit(_BeforeAfterEdit):
    """Names/colours/visibility change of a label map's table (stores both tables)."""

    def __init__(
        self,
        label_map: LabelMap,
        before: LabelTable,
        after: LabelTable,
        document: Document | None = None,
        text: str = "Edit label table",
    ) -> None:
        self.label_map = label_map
        self.document = document
        self.text = text
        self._before = before.to_dict()
        self._after = after.to_dict()

    def _apply(self, data: dict) -> None:
        # Keep the table object (panels hold it) and replace its entries.
        self.label_map.table.entries = LabelTable.from_dict(data).entries
        if self.document is not None:
            self.document.notify_label_table_changed(self.label_map)


class CompoundEdit(UndoCommand):
    """Several commands undone and redone as one step (e.g. merge = voxels + table)."""

    def __init__(self, commands: Iterable[UndoCommand], text: str = "Edit") -> None:
        self.commands = [c for c in commands if c is not None]
        self.text = text

    def undo(self) -> None:
        for command in reversed(self.commands):
            command.undo()

    def redo(self) -> None:
        for command in self.commands:
            command.redo()

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.commands) + 64


#: Fields of a Detection that edits may change (identity ``id`` stays).
_DETECTION_FIELDS = ("center", "size", "label", "score", "status", "source")


def capture_detections(document: Document) -> list[tuple[Detection, dict[str, Any]]]:
    """The document's detections in order, each with a copy of its editable fields."""
    return [(d, {f: getattr(d, f) for f in _DETECTION_FIELDS}) for d in document.detections]


class DetectionsEdit(_BeforeAfterEdit):
    """Any change to the document's detections: the list and each box's fields, before and after.

    Detection objects keep their identity across undo/redo, so selections and views
    that hold them stay valid.
    """

    def __init__(
        self,
        document: Document,
        before: list[tuple[Detection, dict[str, Any]]],
        after: list[tuple[Detection, dict[str, Any]]] | None = None,
        text: str = "Edit detections",
    ) -> None:
        self.document = document
        self._before = before
        self._after = after if after is not None else capture_detections(document)
        self.text = text

    entry_bytes = 512

    @property
    def before(self) -> list[tuple[Detection, dict[str, Any]]]:
        return self._before

    @property
    def after(self) -> list[tuple[Detection, dict[str, Any]]]:
        return self._after

    @property
    def is_noop(self) -> bool:
        if [d for d, _ in self.before] != [d for d, _ in self.after]:
            return False
        return all(b == a for (_, b), (_, a) in zip(self.before, self.after))

    def _apply(self, state: list[tuple[Detection, dict[str, Any]]]) -> None:
        for detection, fields in state:
            for name, value in fields.items():
                setattr(detection, name, value)
        selected = self.document.selected_detection
        self.document.set_detections([d for d, _ in state])
        if selected is not None and selected in self.document.detections:
            self.document.select_detection(selected)


class CallbackEdit(UndoCommand):
    """A small step given as two callables (e.g. adding a label map layer)."""

    def __init__(self, undo: Callable[[], None], redo: Callable[[], None], text: str = "Edit") -> None:
        self._undo, self._redo, self.text = undo, redo, text

    def undo(self) -> None:
        self._undo()

    def redo(self) -> None:
        self._redo()


# ---------------------------------------------------------------------------- recorder
class LabelEditRecorder:
    """Collects the original values of every block a drag touches, then makes one LabelEdit.

    Call :meth:`prepare` with a region *before* writing into it; the recorder keeps a
    copy of the original values over the union of all prepared regions (grown with
    some slack so long strokes copy rarely). :meth:`finish` compares with the
    current values and returns one command shrunk to the voxels that changed.
    """

    #: Extra voxels added around a grown box so that a stroke does not re-copy at every dab.
    GROW_SLACK = 16

    def __init__(self, label_map: LabelMap, document: Document | None = None, text: str = "Edit labels") -> None:
        self.label_map = label_map
        self.document = document
        self.text = text
        self.region: Region | None = None
        self._before: np.ndarray | None = None

    def prepare(self, region: Region) -> None:
        """Remember the original values of ``region`` (call before writing there)."""
        shape = self.label_map.array.shape
        region = clip_region(region, shape)
        if region is None:
            return
        if self.region is not None and all(
            r.start <= s.start and s.stop <= r.stop for r, s in zip(self.region, region)
        ):
            return
        if self.region is not None:
            # Grow with slack; the area outside the old box has not been written yet.
            grown = region_union(self.region, region)
            slack = self.GROW_SLACK
            grown = tuple(
                slice(
                    max(0, g.start - (slack if g.start < old.start else 0)),
                    min(n, g.stop + (slack if g.stop > old.stop else 0)),
                )
                for g, old, n in zip(grown, self.region, shape)
            )
        else:
            grown = region
        block = self.label_map.array[grown].copy()
        if self._before is not None and self.region is not None:
            block[relative_region(self.region, grown)] = self._before.astype(block.dtype, copy=False)
        self.region, self._before = grown, block  # type: ignore[assignment]

    def finish(self) -> LabelEdit | None:
        """The command for everything written since the first ``prepare`` (None if nothing changed)."""
        if self.region is None or self._before is None:
            return None
        after = self.label_map.array[self.region]
        before = self._before.astype(after.dtype, copy=False)
        command = LabelEdit.from_change(self.label_map, self.region, before, after, self.document, self.text)
        self.region, self._before = None, None
        return command

    def abort(self) -> None:
        """Put the original values back (an interaction was cancelled)."""
        if self.region is not None and self._before is not None:
            if self.document is not None:
                self.document.write_labels(self.label_map, self.region, self._before)
            else:
                self.label_map.write(self.region, self._before)
        self.region, self._before = None, None


# ---------------------------------------------------------------------------- stack
#: The undo history keeps this many bytes of compressed edits; the oldest steps go first.
DEFAULT_HISTORY_BYTES = 256 * 1024 * 1024
#: What users are told about the history's limit (Edit menu tooltip, README).
HISTORY_LIMIT_TEXT = (
    "The undo history keeps up to 256 MB of compressed edits (a brush stroke takes a few hundred bytes "
    "to a few kB, so tens of thousands of steps); beyond that the oldest steps are dropped first. "
    "There is no limit on the number of steps."
)


class UndoStack:
    """Linear undo history capped by total command bytes (256 MB by default), not by step count.

    A step count cap silently dropped work (500 steps is an hour of brushing); the
    bytes a step holds are what costs memory. ``HISTORY_LIMIT_TEXT`` says it for users.

    Parameters
    ----------
    max_bytes:
        Total ``nbytes`` of kept commands; the oldest are dropped beyond it (the most
        recent step is always kept).
    max_count:
        Most steps kept (None: no limit on the count).
    """

    #: Undo became possible or impossible: (bool)
    can_undo_changed = Signal(bool)
    #: Redo became possible or impossible: (bool)
    can_redo_changed = Signal(bool)
    #: Anything in the history changed (push, undo, redo, clear, drop)
    changed = Signal()

    def __init__(self, max_bytes: int = DEFAULT_HISTORY_BYTES, max_count: int | None = None) -> None:
        self.max_bytes = int(max_bytes)
        self.max_count = int(max_count) if max_count is not None else None
        self._commands: list[UndoCommand] = []
        self._index = 0  # commands[:index] are applied
        self._nbytes = 0
        self._clean_index: int | None = 0
        self._busy = 0
        #: The document whose modified flag follows this stack (set by ``Document.bind_history``).
        self.document: Document | None = None

    # ------------------------------------------------------------------ queries
    @property
    def can_undo(self) -> bool:
        return self._index > 0

    @property
    def can_redo(self) -> bool:
        return self._index < len(self._commands)

    @property
    def undo_text(self) -> str:
        return self._commands[self._index - 1].text if self.can_undo else ""

    @property
    def redo_text(self) -> str:
        return self._commands[self._index].text if self.can_redo else ""

    @property
    def nbytes(self) -> int:
        """Memory held by the history (compressed blocks plus bookkeeping)."""
        return self._nbytes

    @property
    def count(self) -> int:
        return len(self._commands)

    @property
    def index(self) -> int:
        """How many steps are applied (undo moves it down)."""
        return self._index

    @property
    def busy(self) -> bool:
        """True while a command's undo or redo runs (its changes are the history's, not new ones)."""
        return self._busy > 0

    def _run(self, action: Callable[[], None]) -> None:
        self._busy += 1
        try:
            action()
        finally:
            self._busy -= 1

    def is_clean(self) -> bool:
        """True when the history is where :meth:`set_clean` was last called."""
        return self._clean_index == self._index

    def set_clean(self) -> None:
        """Mark the present point as the saved state (emits ``changed`` when that moves the clean point)."""
        if self._clean_index != self._index:
            self._clean_index = self._index
            self.changed.emit()

    # ------------------------------------------------------------------ changes
    def push(self, command: UndoCommand | None, apply: bool = False) -> None:
        """Add a step; ``apply=True`` runs ``command.redo()`` first (otherwise it is already done)."""
        if command is None:
            return
        before = (self.can_undo, self.can_redo)
        if apply:
            self._run(command.redo)
        for dropped in self._commands[self._index :]:
            self._nbytes -= dropped.nbytes
        del self._commands[self._index :]
        if self._clean_index is not None and self._clean_index > self._index:
            self._clean_index = None
        self._commands.append(command)
        self._nbytes += command.nbytes
        self._index = len(self._commands)
        self._enforce_limits()
        self._emit(before)

    def undo(self) -> bool:
        """Revert the last applied step; False when there is none."""
        if not self.can_undo:
            return False
        before = (self.can_undo, self.can_redo)
        self._index -= 1
        self._run(self._commands[self._index].undo)
        self._emit(before)
        return True

    def redo(self) -> bool:
        """Re-apply the next step; False when there is none."""
        if not self.can_redo:
            return False
        before = (self.can_undo, self.can_redo)
        self._run(self._commands[self._index].redo)
        self._index += 1
        self._emit(before)
        return True

    def clear(self) -> None:
        """Forget the history; when it was not at its clean point, the saved state is unreachable now."""
        before = (self.can_undo, self.can_redo)
        clean = self.is_clean()
        self._commands.clear()
        self._index = 0
        self._nbytes = 0
        self._clean_index = 0 if clean else None
        self._emit(before)

    def _enforce_limits(self) -> None:
        too_many = lambda: self.max_count is not None and len(self._commands) > self.max_count  # noqa: E731
        while len(self._commands) > 1 and (too_many() or self._nbytes > self.max_bytes):
            oldest = self._commands.pop(0)
            self._nbytes -= oldest.nbytes
            self._index -= 1
            if self._clean_index is not None:
                self._clean_index = self._clean_index - 1 if self._clean_index > 0 else None

    def _emit(self, before: tuple[bool, bool]) -> None:
        if before[0] != self.can_undo:
            self.can_undo_changed.emit(self.can_undo)
        if before[1] != self.can_redo:
            self.can_redo_changed.emit(self.can_redo)
        self.changed.emit()
