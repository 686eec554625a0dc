"""Brush shapes in physical units, stroke interpolation and slice-plane helpers.

Shapes are boolean kernels in array order (z, y, x). A voxel belongs to a brush of
radius ``r`` mm when the physical distance between its centre and the brush centre
(a voxel centre) is at most ``r`` - so a disc of radius 5 mm on 1 x 1 mm pixels
holds exactly the 81 integer points with x^2 + y^2 <= 25, and anisotropic spacing
gives an ellipse in voxels that is round in millimetres.

Index axes are (i, j, k) = (x, y, z); ``view_axis`` is the index axis normal to a
displayed slice (2 = axial for a standard stack). The array axis of index axis
``a`` is ``2 - a``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from medviewer.core.document import Region

#: Tolerance so that points exactly on the radius count as inside despite rounding.
_EDGE_TOLERANCE = 1e-9


def array_axis(index_axis: int) -> int:
    """Array axis (z, y, x order) of an index axis (i, j, k order)."""
    return 2 - int(index_axis)


def slice_region(shape: Sequence[int], view_axis: int, slice_index: int) -> Region:
    """The one-voxel-thick region of the slice ``slice_index`` normal to ``view_axis``."""
    region = [slice(0, int(n)) for n in shape]
    region[array_axis(view_axis)] = slice(int(slice_index), int(slice_index) + 1)
    return tuple(region)  # type: ignore[return-value]


def plane_array_axes(view_axis: int) -> tuple[int, int]:
    """The two array axes (rows, columns) of a slice normal to ``view_axis``, in array order."""
    normal = array_axis(view_axis)
    axes = tuple(a for a in range(3) if a != normal)
    return axes  # type: ignore[return-value]


def index_to_plane(points_index: np.ndarray, view_axis: int) -> np.ndarray:
    """(N, 2) (row, column) coordinates in a slice of (N, 3) continuous indices (i, j, k)."""
    points = np.atleast_2d(np.asarray(points_index, float))
    rows_axis, cols_axis = plane_array_axes(view_axis)
    # array axis a corresponds to index axis 2 - a
    return np.stack([points[:, 2 - rows_axis], points[:, 2 - cols_axis]], axis=1)


@lru_cache(maxsize=64)
def _kernel_cached(radius_mm: float, spacing: tuple[float, float, float], flat_axis: int | None) -> np.ndarray:
    spacing_zyx = np.asarray(spacing[::-1], float)
    half = np.floor(radius_mm / spacing_zyx + _EDGE_TOLERANCE).astype(int)
    if flat_axis is not None:
        half[flat_axis] = 0
    grids = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    distance_sq = sum((g * s) ** 2 for g, s in zip(grids, spacing_zyx))
    kernel = distance_sq <= radius_mm**2 * (1 + _EDGE_TOLERANCE) + _EDGE_TOLERANCE
    kernel = np.broadcast_to(kernel, tuple(2 * h + 1 for h in half)).copy()
    kernel.setflags(write=False)
    return kernel


def brush_kernel(radius_mm: float, spacing_xyz: Sequence[float], view_axis: int | None = None) -> np.ndarray:
    """Boolean (z, y, x) kernel of a brush of ``radius_mm``, odd-sized and centred.

    ``view_axis=None`` gives a 3D ball; an index axis gives a flat disc in the slice
    normal to it. The centre voxel is always included, so tiny radii paint one voxel.
    """
    flat = None if view_axis is None else array_axis(view_axis)
    return _kernel_cached(float(max(radius_mm, 0.0)), tuple(float(s) for s in spacing_xyz), flat)


def place_kernel(
    kernel: np.ndarray, center_zyx: Sequence[int], shape: Sequence[int]
) -> tuple[Region, np.ndarray] | None:
    """Region of an array of ``shape`` covered by ``kernel`` centred at ``center_zyx``, and the clipped kernel.

    Returns None when the kernel lies entirely outside the array.
    """
    region, kernel_slices = [], []
    for c, k, n in zip(center_zyx, kernel.shape, shape):
        half = k // 2
        start, stop = int(c) - half, int(c) + half + 1
        lo, hi = max(start, 0), min(stop, int(n))
        if hi <= lo:
            return None
        region.append(slice(lo, hi))
        kernel_slices.append(slice(lo - start, hi - start))
    return tuple(region), kernel[tuple(kernel_slices)]  # type: ignore[return-value]


def stroke_centers(start_index: np.ndarray, end_index: np.ndarray, step_voxels: float) -> np.ndarray:
    """Voxel centres (N, 3) of dabs from ``start`` to ``end`` (continuous indices), ``end`` included.

    Dabs are placed at most ``step_voxels`` apart along the segment and rounded to
    voxel centres; repeats are dropped. ``start`` itself is not included (it was
    painted by the previous event).
    """
    start = np.asarray(start_index, float)
    end = np.asarray(end_index, float)
    length = float(np.max(np.abs(end - start)))
    count = max(1, int(np.ceil(length / max(step_voxels, 1e-3))))
    if count == 1:  # most pointer moves: one dab at the end (this runs for every move event)
        return np.rint(end).astype(np.int64)[None]
    t = np.arange(1, count + 1, dtype=float)[:, None] / count
    centers = np.rint(start + (end - start) * t).astype(np.int64)
    keep = np.ones(len(centers), bool)
    keep[1:] = np.any(centers[1:] != centers[:-1], axis=1)
    return centers[keep]


def kernel_step(kernel: np.ndarray) -> float:
    """Largest dab spacing (voxels, Chebyshev) that keeps successive dabs overlapping well."""
    in_plane = [s for s in kernel.shape if s > 1]
    smallest_half = min(in_plane) // 2 if in_plane else 0
    return max(1.0, smallest_half / 2.0)
