"""The one path by which voxels of a label layer change.

``Document.edit_labels`` (one-shot edits) and ``Document.begin_label_stroke`` (a
mouse drag) are the entry points: region + values or mask + overwrite rule in;
the guarded write, one undo record and one ``labels_changed`` event with the tight
region of the change out. Tools, label operations, model results and undo/redo all
end here, so a path that forgets to record or to notify cannot exist: the label
array is read-only everywhere else (``LabelMap.writing``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

import numpy as np

from medviewer.core.labels import LabelMap
from medviewer.core.regions import Region, clip_region, offset_region, region_union, relative_region
from medviewer.core.undo import LabelEdit, LabelEditRecorder

if TYPE_CHECKING:
    from medviewer.core.document import Document


class OverwriteMode(str, Enum):
    """Which existing voxels painting may change (ITK-SNAP's "Draw over", Slicer's "Modify other segments")."""

    #: Paint over every label.
    ANY = "any"
    #: Paint only where the map is background (0). Erasing then removes only the active label.
    BACKGROUND = "background"
    #: Paint only over background and the labels in ``overwritable``; erase only those labels.
    SELECTED = "selected"


@dataclass(frozen=True)
class OverwriteRule:
    """The overwrite mode with the state it depends on (the active label, the overwritable labels)."""

    mode: OverwriteMode = OverwriteMode.ANY
    active_value: int = 1
    overwritable: frozenset[int] = frozenset()

    def writable(self, current: np.ndarray, value: int) -> np.ndarray | None:
        """Boolean mask of the voxels of ``current`` that writing ``value`` may change (None = all)."""
        mode = self.mode
        if mode is OverwriteMode.ANY:
            return None
        if value == 0:  # erasing
            if mode is OverwriteMode.BACKGROUND:
                return current == self.active_value
            return np.isin(current, list(self.overwritable))
        if mode is OverwriteMode.BACKGROUND:
            return current == 0
        return np.isin(current, [0, *self.overwritable])

    def restrict(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """``after`` with every change the rule forbids (judged per new value) put back to ``before``."""
        if self.mode is OverwriteMode.ANY:
            return after
        after = after.copy()
        changed = after != before
        for value in np.unique(after[changed]):
            target = changed & (after == value)
            allowed = self.writable(before, int(value))
            if allowed is not None:
                after[target & ~allowed] = before[target & ~allowed]
        return after


ANY = OverwriteRule()


def _new_block(
    label_map: LabelMap, region: Region, clipped: Region, values: np.ndarray | int, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(before, after) of the clipped block for ``values`` given over ``region``."""
    inner = relative_region(clipped, region)
    before = label_map.array[clipped].copy()
    dtype = np.uint16 if label_map.array.dtype == np.uint16 else None
    if np.ndim(values) == 0:
        if int(values) > 255:
            dtype = np.uint16
        after = before.astype(dtype or before.dtype, copy=True)
        if mask is None:
            after[...] = int(values)
        else:
            after[np.asarray(mask, bool)[inner]] = int(values)
    else:
        block = np.asarray(values)[inner]
        if block.size and int(block.max()) > 255:
            dtype = np.uint16
        after = before.astype(dtype or before.dtype, copy=True)
        if mask is None:
            after[...] = block
        else:
            keep = np.asarray(mask, bool)[inner]
            after[keep] = block[keep]
    return before, after


def edit_labels(
    document: Document | None,
    label_map: LabelMap,
    region: Region,
    values: np.ndarray | int,
    mask: np.ndarray | None = None,
    rule: OverwriteRule = ANY,
    text: str = "Edit labels",
) -> LabelEdit | None:
    """See :meth:`Document.edit_labels` (``document`` None: write and return the command, no events)."""
    if min(np.min(values), 0) < 0 or np.max(values) > 65535:
        raise ValueError(f"label values must be 0..65535, got {np.min(values)}..{np.max(values)}")
    shape = label_map.array.shape
    region = tuple(  # open ends (``np.s_[:, :, :]``) mean the whole axis
        slice(0 if s.start is None else int(s.start), n if s.stop is None else int(s.stop)) for s, n in zip(region, shape)
    )  # type: ignore[assignment]
    clipped = clip_region(region, shape)
    if clipped is None:
        return None
    before, after = _new_block(label_map, region, clipped, values, mask)
    after = rule.restrict(before.astype(after.dtype, copy=False), after)
    command = LabelEdit.from_change(label_map, clipped, before.astype(after.dtype, copy=False), after,
                                    document, text)
    if command is None:
        return None
    # Write the block we hold rather than let the command unpack its compressed copy.
    changed = after[relative_region(command.region, clipped)]
    if document is None:
        label_map.write(command.region, changed)
    else:
        document.write_labels(label_map, command.region, changed)
        document.record(command, applied=True)
    return command


def _tight_box(mask: np.ndarray) -> Region | None:
    """``tight_region`` in two passes over the block instead of four (this runs for every dab)."""
    slices = mask.any(axis=(1, 2))
    first = int(slices.argmax())
    if not slices[first]:
        return None
    plane = mask.any(axis=0)
    rows, cols = plane.any(axis=1), plane.any(axis=0)
    return (
        slice(first, slices.size - int(slices[::-1].argmax())),
        slice(int(rows.argmax()), rows.size - int(rows[::-1].argmax())),
        slice(int(cols.argmax()), cols.size - int(cols[::-1].argmax())),
    )


class LabelStroke:
    """A drag in progress: many writes, one undo record, one event per :meth:`flush`.

    Obtained from ``Document.begin_label_stroke``. :meth:`paint` writes a dab (with the
    overwrite rule) and returns the tight region it changed; :meth:`flush` tells the
    views everything changed since the last flush as one ``labels_changed`` event;
    :meth:`finish` records the whole drag as one undo step; :meth:`abort` restores it.
    """

    def __init__(self, document: Document | None, label_map: LabelMap, text: str, rule: OverwriteRule = ANY) -> None:
        self.document = document
        self.label_map = label_map
        self.text = text
        self.rule = rule
        self._recorder = LabelEditRecorder(label_map, document, text)
        self._pending: Region | None = None

    @property
    def region(self) -> Region | None:
        """Box of everything the stroke may have changed so far (None before the first change)."""
        return self._recorder.region

    def paint(self, region: Region, mask: np.ndarray, value: int, notify: bool = True) -> Region | None:
        """Write ``value`` where ``mask`` (``region``'s shape, inside the array) is True and the rule allows."""
        label_map = self.label_map
        value = int(value)
        block = label_map.array[region]
        changed = block != value
        changed &= mask
        allowed = self.rule.writable(block, value)
        if allowed is not None:
            changed &= allowed
        inner = _tight_box(changed)
        if inner is None:
            return None
        tight = offset_region(inner, region)
        self._recorder.prepare(tight)
        label_map.write(tight, value, changed[inner])
        self._pending = region_union(self._pending, tight)
        if notify:
            self.flush()
        return tight

    def flush(self) -> Region | None:
        """Emit one ``labels_changed`` for what was painted since the last flush (returns that region)."""
        region, self._pending = self._pending, None
        if region is not None and self.document is not None:
            self.document.labels_written(self.label_map, region, recorded=True)
        return region

    def finish(self) -> LabelEdit | None:
        """End the drag: one undo record for all of it (None when nothing changed)."""
        self.flush()
        command = self._recorder.finish()
        if command is not None and self.document is not None:
            self.document.record(command, applied=True)
        return command

    def abort(self) -> None:
        """Cancel the drag and put back what it painted."""
        self._pending = None
        self._recorder.abort()
