"""Qt-free helpers for drawing label maps over a slice: lookup tables and outlines."""

from __future__ import annotations

import numpy as np

from medviewer.core.labels import LabelBounds, LabelTable  # noqa: F401  (LabelBounds moved to core: each LabelMap owns one)
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
