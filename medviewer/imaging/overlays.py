"""Qt-free helpers for drawing label maps over a slice: lookup tables and outlines."""

from __future__ import annotations

import numpy as np

from medviewer.core.labels import LabelTable
from medviewer.imaging.window_level import argb32


def label_lookup_table(table: LabelTable, opacity: float, dtype: np.dtype) -> np.ndarray:
    """RGBA (N, 4) uint8 table for a label slice of ``dtype``.

    Covers every value the dtype can hold (256 entries for uint8, 65536 for uint16),
    so values missing from the table are transparent rather than out of range.
    Hidden labels and background are transparent; others get ``opacity`` (0..1).
    """
    size = 256 if np.dtype(dtype) == np.uint8 else 65536
    return table.lookup_table(size=size, opacity=int(round(min(max(opacity, 0.0), 1.0) * 255)))


def label_argb_table(table: LabelTable, opacity: float, dtype: np.dtype) -> np.ndarray:
    """Premultiplied ARGB32 (uint32) version of ``label_lookup_table``: index it with a label slice."""
    rgba = label_lookup_table(table, opacity, dtype)
    return argb32(rgba[:, :3], rgba[:, 3])


def label_outline(plane: np.ndarray) -> np.ndarray:
    """Keep only boundary pixels of each labelled region in a 2D label slice (others become 0).

    A pixel is on the boundary when one of its 4 neighbours has another value or it
    touches the image edge.
    """
    plane = np.asarray(plane)
    boundary = np.zeros(plane.shape, dtype=bool)
    boundary[0, :] = boundary[-1, :] = True
    boundary[:, 0] = boundary[:, -1] = True
    vertical = plane[1:, :] != plane[:-1, :]
    horizontal = plane[:, 1:] != plane[:, :-1]
    boundary[1:, :] |= vertical
    boundary[:-1, :] |= vertical
    boundary[:, 1:] |= horizontal
    boundary[:, :-1] |= horizontal
    return np.where(boundary, plane, 0).astype(plane.dtype, copy=False)


class LabelBounds:
    """A conservative bounding box of the non-zero voxels of a label array, kept up to date cheaply.

    Computed once (two passes over the array), then only grown by the regions that
    edits report, so views can skip slices with no labels and read only the labelled
    block of the others. It never shrinks on erasing (still correct, just larger);
    ``reset()`` recomputes it. A new array object (e.g. widened to uint16) is noticed.
    """

    def __init__(self) -> None:
        self._array: np.ndarray | None = None
        self._box: tuple[slice, slice, slice] | None = None
        self._known = False

    def box(self, array: np.ndarray) -> tuple[slice, slice, slice] | None:
        """(z, y, x) slices enclosing every non-zero voxel of ``array``, or None when it is all zero."""
        if array is not self._array or not self._known:
            self._array = array
            self._box = self._compute(array)
            self._known = True
        return self._box

    def grow(self, region) -> None:
        """Include a (z, y, x) region that was just edited (None: anything may have changed)."""
        if region is None or not self._known:
            self._known = False
            return
        shape = self._array.shape
        spans = [region[axis].indices(shape[axis])[:2] for axis in range(3)]
        if any(stop <= start for start, stop in spans):
            return
        if self._box is None:
            self._box = tuple(slice(start, stop) for start, stop in spans)
        else:
            self._box = tuple(
                slice(min(current.start, start), max(current.stop, stop)) for current, (start, stop) in zip(self._box, spans)
            )

    def reset(self) -> None:
        self._known = False

    @staticmethod
    def _compute(array: np.ndarray) -> tuple[slice, slice, slice] | None:
        in_plane = array.any(axis=0)
        rows = np.flatnonzero(in_plane.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(in_plane.any(axis=0))
        slices = np.flatnonzero(array[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].any(axis=(1, 2)))
        return (
            slice(int(slices[0]), int(slices[-1]) + 1),
            slice(int(rows[0]), int(rows[-1]) + 1),
            slice(int(cols[0]), int(cols[-1]) + 1),
        )
