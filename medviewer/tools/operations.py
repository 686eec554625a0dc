"""One-shot label operations: fill between slices, grow from seeds, islands, smoothing,
and label table edits (add, rename, recolour, show/hide, merge, delete, change value).

Each function is one undo step on the session's active label map, works on the
bounding block of the labels involved (never more of the volume than needed) and
returns the command it pushed (None when nothing changed). Voxel changes go through
the session (``EditSession.apply_block``, i.e. ``Document.edit_labels``) or, combined
with a table change, as a ``LabelEdit`` the history applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from medviewer.core.document import Region
from medviewer.core.jobs import NO_PROGRESS, CancelToken, JobFunction, ProgressCallback
from medviewer.core.labels import LabelMap, LabelTable
from medviewer.core.undo import CompoundEdit, LabelEdit, LabelTableEdit, UndoCommand, tight_region
from medviewer.imaging import interpolation, morphology, region_growing
from medviewer.imaging.brush import array_axis
from medviewer.tools.session import EditSession


def _values_or_all(label_map: LabelMap, values: Iterable[int] | int | None) -> list[int]:
    if values is None:
        return label_map.present_values()
    if isinstance(values, (int, np.integer)):
        return [int(values)]
    return [int(v) for v in values]


def _padded(region: Region, pad_zyx: Sequence[int], shape: Sequence[int]) -> Region:
    return tuple(
        slice(max(0, r.start - int(p)), min(int(n), r.stop + int(p))) for r, p, n in zip(region, pad_zyx, shape)
    )  # type: ignore[return-value]


def labels_region(label_map: LabelMap, values: Sequence[int] | None = None) -> Region | None:
    """Tight (z, y, x) box of the voxels holding any of ``values`` (any label when None)."""
    mask = label_map.array != 0 if values is None else np.isin(label_map.array, list(values))
    return tight_region(mask)


# ---------------------------------------------------------------------------- long operations as jobs
@dataclass
class BlockChange:
    """A computed new content for one block of the label map, applied later on the UI thread.

    ``before`` is the block as it was when the computation started; only voxels the
    computation changed and nobody edited meanwhile are applied, so edits made while
    it ran always survive.
    """

    region: Region
    before: np.ndarray
    after: np.ndarray
    text: str

    @property
    def changed_voxels(self) -> int:
        return int(np.count_nonzero(self.before != self.after))


def apply_block_change(session: EditSession, change: BlockChange | None) -> LabelEdit | None:
    """Apply a computed change as one undo step (with the overwrite rule)."""
    if change is None:
        return None
    label_map = session.ensure_label_map()
    current = label_map.array[change.region]
    untouched_and_changed = (change.after != change.before) & (current == change.before)
    merged = current.copy()
    merged[untouched_and_changed] = change.after[untouched_and_changed]
    return session.apply_block(change.region, merged, change.text)


def fill_between_slices_job(
    session: EditSession, view_axis: int = 2, values: Iterable[int] | int | None = None
) -> JobFunction:
    """``fn(progress, cancel) -> BlockChange | None`` interpolating labels across slices (see below).

    The block is copied now (call on the thread that owns the document); the
    returned function only reads that copy, so it may run on a worker thread.
    """
    label_map = session.ensure_label_map()
    chosen = _values_or_all(label_map, values)
    region = labels_region(label_map, chosen) if chosen else None
    if region is None:
        return lambda progress=NO_PROGRESS, cancel=None: None
    block = label_map.array[region].copy()
    spacing_zyx = session.document.geometry.spacing[::-1]

    def run(progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None) -> BlockChange:
        filled = interpolation.fill_between_slices(block, array_axis(view_axis), spacing_zyx, chosen, progress, cancel)
        return BlockChange(region, block, filled, "Fill between slices")

    return run


def fill_between_slices(
    session: EditSession,
    view_axis: int = 2,
    values: Iterable[int] | int | None = None,
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
) -> LabelEdit | None:
    """Interpolate the labels drawn on some slices (normal to ``view_axis``) across the slices between them.

    Fills background voxels only (``medviewer.imaging.interpolation``). ``values``
    defaults to every label present.
    """
    return apply_block_change(session, fill_between_slices_job(session, view_axis, values)(progress, cancel))


def grow_from_seeds_job(
    session: EditSession,
    region: Region | None = None,
    margin_mm: float = 10.0,
    intensity_range: tuple[float, float] | None = None,
) -> JobFunction:
    """``fn(progress, cancel) -> BlockChange`` growing the painted seeds (see :func:`grow_from_seeds`)."""
    label_map = session.ensure_label_map()
    shape = label_map.array.shape
    if region is None:
        seeds_box = labels_region(label_map)
        if seeds_box is None:
            raise ValueError("grow from seeds needs painted seeds of at least two labels")
        spacing_zyx = session.document.geometry.spacing[::-1]
        region = _padded(seeds_box, [int(np.ceil(margin_mm / s)) for s in spacing_zyx], shape)
    seeds = label_map.array[region].copy()
    if len(np.unique(seeds[seeds != 0])) < 2:
        raise ValueError("grow from seeds needs seeds of at least two labels (the structure and its surroundings)")
    image = session.image[region]
    spacing = session.document.geometry.spacing

    def run(progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None) -> BlockChange:
        progress(0.0, "Growing from seeds")
        mask = None
        if intensity_range is not None:
            mask = ((image >= intensity_range[0]) & (image <= intensity_range[1])) | (seeds != 0)
        if cancel is not None:
            cancel.raise_if_cancelled()
        grown = region_growing.grow_from_seeds(image, seeds, spacing, mask)
        progress(1.0, "Growing from seeds")
        return BlockChange(region, seeds, grown, "Grow from seeds")

    return run


def grow_from_seeds(
    session: EditSession,
    region: Region | None = None,
    margin_mm: float = 10.0,
    intensity_range: tuple[float, float] | None = None,
) -> LabelEdit | None:
    """Grow the painted seeds (at least two labels) until they fill the region (watershed).

    ``region`` defaults to the box around all labelled voxels plus ``margin_mm``.
    Seeds keep their values; only background voxels are labelled. With
    ``intensity_range``, voxels outside it stay background.
    """
    return apply_block_change(session, grow_from_seeds_job(session, region, margin_mm, intensity_range)())


# ---------------------------------------------------------------------------- islands and smoothing
def remove_small_islands(
    session: EditSession, min_voxels: int, values: Iterable[int] | int | None = None, fully_connected: bool = False
) -> LabelEdit | None:
    """Erase connected pieces of each label smaller than ``min_voxels`` (all labels by default)."""
    label_map = session.ensure_label_map()
    chosen = _values_or_all(label_map, values)
    region = labels_region(label_map, chosen) if chosen else None
    if region is None:
        return None
    return _erase_per_label(session, region, chosen, "Remove small islands",
                            lambda mask: mask & ~morphology.remove_small_islands(mask, min_voxels, fully_connected))


def keep_largest_component(
    session: EditSession, values: Iterable[int] | int | None = None, fully_connected: bool = False
) -> LabelEdit | None:
    """Keep only the largest connected piece of each label (the active label by default)."""
    label_map = session.ensure_label_map()
    chosen = _values_or_all(label_map, session.active_value if values is None else values)
    region = labels_region(label_map, chosen)
    if region is None:
        return None
    return _erase_per_label(session, region, chosen, "Keep largest component",
                            lambda mask: mask & ~morphology.keep_largest_component(mask, fully_connected))


def _erase_per_label(session: EditSession, region, chosen, text: str, drop) -> LabelEdit | None:
    """Erase, label by label inside ``region``, the voxels ``drop(mask)`` picks; one undo step."""
    block = session.ensure_label_map().array[region].copy()
    for value in chosen:
        mask = block == value
        if mask.any():
            block[drop(mask)] = 0
    return session.apply_block(region, block, text, respect_overwrite=False)


SMOOTHING_METHODS = ("median", "closing", "opening")


def smooth_label(
    session: EditSession,
    value: int | None = None,
    method: str = "median",
    radius_mm: float = 1.0,
    in_plane_of: int | None = None,
) -> LabelEdit | None:
    """Smooth one label (the active one by default) with a binary median, closing or opening.

    Voxels the smoothing removes become background; voxels it adds are taken only
    from background, never from another label. ``in_plane_of`` (an index axis)
    smooths slice by slice.
    """
    if method not in SMOOTHING_METHODS:
        raise ValueError(f"unknown smoothing method {method!r}; use one of {SMOOTHING_METHODS}")
    label_map = session.ensure_label_map()
    value = session.active_value if value is None else int(value)
    tight = labels_region(label_map, [value])
    if tight is None:
        return None
    spacing = session.document.geometry.spacing
    radius_xyz = morphology.radius_in_voxels(radius_mm, spacing, in_plane_of)
    region = _padded(tight, [r + 1 for r in radius_xyz[::-1]], label_map.array.shape)
    block = label_map.array[region]
    mask = block == value
    smoothed = {"median": morphology.median_smooth, "closing": morphology.closing, "opening": morphology.opening}[
        method
    ](mask, radius_xyz)
    result = block.copy()
    result[mask & ~smoothed] = 0
    result[smoothed & ~mask & (block == 0)] = value
    return session.apply_block(region, result, f"Smooth ({method})", respect_overwrite=False)


# ---------------------------------------------------------------------------- label table
def _table_command(session: EditSession, label_map: LabelMap, after: LabelTable, text: str) -> LabelTableEdit:
    return LabelTableEdit(label_map, label_map.table.copy(), after, session.document, text)


def _replace_values_command(
    session: EditSession, label_map: LabelMap, mapping: dict[int, int], text: str
) -> LabelEdit | None:
    region = labels_region(label_map, list(mapping))
    if region is None:
        return None
    before = label_map.array[region].copy()
    # Widening to uint16 happens when the command writes (LabelMap.write), not here.
    after = before.astype(np.uint16 if max(mapping.values(), default=0) > 255 else before.dtype, copy=True)
    for old, new in mapping.items():
        after[before == old] = new
    return LabelEdit.from_change(label_map, region, before, after, session.document, text)


def _push(session: EditSession, commands: list[UndoCommand | None], text: str) -> UndoCommand | None:
    commands = [c for c in commands if c is not None]
    if not commands:
        return None
    command = commands[0] if len(commands) == 1 else CompoundEdit(commands, text)
    session.push(command, apply=True)
    return command


def add_label(
    session: EditSession, name: str | None = None, color: tuple[int, int, int] | None = None, value: int | None = None
) -> int:
    """Add a label to the active map's table (next free value by default) and make it active."""
    label_map = session.ensure_label_map()
    value = label_map.table.next_free_value() if value is None else int(value)
    if value in label_map.table:
        raise ValueError(f"label {value} already exists ('{label_map.table[value].name}')")
    after = label_map.table.copy()
    after.add(value, name, color)
    _push(session, [_table_command(session, label_map, after, "Add label")], "Add label")
    session.active_value = value
    return value


def rename_label(session: EditSession, value: int, name: str) -> UndoCommand | None:
    label_map = session.ensure_label_map()
    name = name.strip()
    if not name:
        raise ValueError("a label name cannot be empty")
    after = label_map.table.copy()
    if value not in after:
        after.add(value)
    after[value].name = name
    return _push(session, [_table_command(session, label_map, after, "Rename label")], "Rename label")


def recolor_label(session: EditSession, value: int, color: tuple[int, int, int]) -> UndoCommand | None:
    label_map = session.ensure_label_map()
    after = label_map.table.copy()
    if value not in after:
        after.add(value)
    after[value].color = tuple(int(c) for c in color)  # type: ignore[assignment]
    return _push(session, [_table_command(session, label_map, after, "Recolour label")], "Recolour label")


def set_label_visible(session: EditSession, value: int, visible: bool) -> UndoCommand | None:
    label_map = session.ensure_label_map()
    after = label_map.table.copy()
    if value not in after:
        return None
    after[value].visible = bool(visible)
    return _push(session, [_table_command(session, label_map, after, "Show/hide label")], "Show/hide label")


def merge_labels(session: EditSession, sources: Iterable[int], target: int) -> UndoCommand | None:
    """Relabel the voxels of ``sources`` as ``target`` and drop the sources from the table."""
    label_map = session.ensure_label_map()
    target = int(target)
    sources = [int(v) for v in sources if int(v) != target]
    if not sources:
        return None
    after = label_map.table.copy()
    if target not in after:
        after.add(target)
    for value in sources:
        after.remove(value)
    voxels = _replace_values_command(session, label_map, {v: target for v in sources}, "Merge labels")
    return _push(session, [voxels, _table_command(session, label_map, after, "Merge labels")], "Merge labels")


def delete_label(session: EditSession, value: int) -> UndoCommand | None:
    """Erase every voxel of ``value`` and remove it from the table."""
    label_map = session.ensure_label_map()
    after = label_map.table.copy()
    after.remove(int(value))
    voxels = _replace_values_command(session, label_map, {int(value): 0}, "Delete label")
    return _push(session, [voxels, _table_command(session, label_map, after, "Delete label")], "Delete label")


def change_label_value(session: EditSession, old: int, new: int) -> UndoCommand | None:
    """Give label ``old`` the value ``new`` (voxels and table entry); refused if ``new`` is in use."""
    label_map = session.ensure_label_map()
    old, new = int(old), int(new)
    if old == new:
        return None
    if not 1 <= new <= 65535:
        raise ValueError(f"label values must be 1..65535, got {new}")
    if new in label_map.table or np.any(label_map.array == new):
        raise ValueError(f"label {new} is already in use; merge the labels instead")
    after = label_map.table.copy()
    info = after.entries.pop(old, None)
    after.add(new, info.name if info else None, info.color if info else None)
    if info is not None:
        after[new].visible = info.visible
    voxels = _replace_values_command(session, label_map, {old: new}, "Change label value")
    command = _push(session, [voxels, _table_command(session, label_map, after, "Change label value")], "Change label value")
    if session.active_value == old:
        session.active_value = new
    return command
