"""Blocks of a (z, y, x) array as three slices, and the arithmetic edits need on them."""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: A block of a (z, y, x) array: three slices with explicit bounds.
Region = tuple[slice, slice, slice]


def full_region(shape: tuple[int, int, int]) -> Region:
    return (slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2]))


def region_shape(region: Region) -> tuple[int, int, int]:
    """Shape of the block a (z, y, x) region selects (slices must have explicit bounds)."""
    return tuple(int(s.stop) - int(s.start) for s in region)  # type: ignore[return-value]


def region_union(first: Region | None, second: Region | None) -> Region | None:
    """Smallest region holding both (either may be None)."""
    if first is None:
        return second
    if second is None:
        return first
    return tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(first, second))  # type: ignore[return-value]


def clip_region(region: Region, shape: Sequence[int]) -> Region | None:
    """``region`` clipped to an array of ``shape``; None when nothing is left."""
    clipped = tuple(slice(max(0, int(s.start)), min(int(n), int(s.stop))) for s, n in zip(region, shape))
    if any(s.stop <= s.start for s in clipped):
        return None
    return clipped  # type: ignore[return-value]


def tight_region(mask: np.ndarray, offset: Sequence[int] = (0, 0, 0)) -> Region | None:
    """Bounding region of the True voxels of a 3D mask, shifted by ``offset``; None if empty."""
    if not mask.any():
        return None
    bounds = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        bounds.append(slice(int(hits[0]) + int(offset[axis]), int(hits[-1]) + 1 + int(offset[axis])))
    return tuple(bounds)  # type: ignore[return-value]


def relative_region(inner: Region, outer: Region) -> Region:
    """``inner`` expressed in the coordinates of the block ``outer`` selects."""
    return tuple(slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer))  # type: ignore[return-value]


def offset_region(inner: Region, outer: Region) -> Region:
    """``inner`` (relative to the block ``outer`` selects) in absolute coordinates."""
    return tuple(slice(o.start + i.start, o.start + i.stop) for i, o in zip(inner, outer))  # type: ignore[return-value]
