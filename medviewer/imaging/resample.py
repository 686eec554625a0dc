"""Resample a stack of parallel slices onto a regular grid.

Scanners sometimes write slices that do not form a regular grid: gantry-tilted CT
(each slice shifted in-plane in proportion to its distance along the normal), variable
slice spacing, or missing slices. All slices are still parallel planes with the same
pixel lattice, so the true world position of every acquired pixel is known. This module
puts those pixels onto a regular grid whose axes are the slices' row, column and normal
directions, in the spirit of 3D Slicer's acquisition-geometry regularisation and
dcm2niix's tilt correction:

* in-plane, each slice is shifted by its own (sub-pixel) offset with bilinear
  interpolation (integer offsets are copied exactly);
* along the normal, each output slice is linearly interpolated between the two
  acquired slices that bracket it (an output slice that falls on an acquired slice is
  that slice).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback

#: Offsets closer than this to an integer (in pixels) are treated as integer shifts.
_INTEGER_SHIFT_TOLERANCE = 1e-6
#: An output slice within this fraction of the slice gap from an acquired slice copies it.
_EXACT_POSITION_TOLERANCE = 1e-6


def shift_slice_onto_grid(
    image: np.ndarray, offset_xy: tuple[float, float], output_shape_yx: tuple[int, int], fill_value: float
) -> np.ndarray:
    """Place a 2D slice on an output pixel grid where its pixel (0, 0) lies at ``offset_xy``.

    Returns a float32 array of ``output_shape_yx``; output pixels not covered by the
    slice get ``fill_value``. Sub-pixel offsets use bilinear interpolation.
    """
    offset_x, offset_y = float(offset_xy[0]), float(offset_xy[1])
    rounded_x, rounded_y = round(offset_x), round(offset_y)
    out = np.full(output_shape_yx, fill_value, dtype=np.float32)
    if abs(offset_x - rounded_x) < _INTEGER_SHIFT_TOLERANCE and abs(offset_y - rounded_y) < _INTEGER_SHIFT_TOLERANCE:
        # Exact copy of the overlapping block.
        rows, cols = image.shape
        y0, x0 = int(rounded_y), int(rounded_x)
        oy0, ox0 = max(y0, 0), max(x0, 0)
        oy1, ox1 = min(y0 + rows, output_shape_yx[0]), min(x0 + cols, output_shape_yx[1])
        if oy1 > oy0 and ox1 > ox0:
            out[oy0:oy1, ox0:ox1] = image[oy0 - y0 : oy1 - y0, ox0 - x0 : ox1 - x0]
        return out
    # output[y, x] = image[y - offset_y, x - offset_x]
    ndimage.affine_transform(
        np.asarray(image, dtype=np.float32),
        matrix=np.ones(2),
        offset=(-offset_y, -offset_x),
        output_shape=tuple(output_shape_yx),
        output=out,
        order=1,
        mode="constant",
        cval=float(fill_value),
    )
    return out


def resample_stack(
    stack: np.ndarray,
    slice_positions: np.ndarray,
    slice_offsets_xy: np.ndarray,
    output_positions: np.ndarray,
    output_shape_yx: tuple[int, int],
    fill_value: float,
    dtype: np.dtype | type | None = None,
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Resample parallel slices with irregular positions onto a regular grid.

    Parameters
    ----------
    stack:
        ``(n, rows, columns)`` acquired slices, sorted by ``slice_positions``.
    slice_positions:
        ``(n,)`` strictly increasing distance of each slice along the common normal (mm).
    slice_offsets_xy:
        ``(n, 2)`` position of each slice's pixel (0, 0) on the output pixel grid, in
        output pixels (x = column, y = row); fractional values are allowed.
    output_positions:
        ``(m,)`` distances along the normal of the output slices (mm), inside the range
        of ``slice_positions``.
    output_shape_yx:
        Rows and columns of the output slices.
    fill_value:
        Value of output pixels that no acquired slice covers.
    dtype:
        Output type (default: the stack's). Integer outputs are rounded.

    Returns
    -------
    ``(m, rows_out, columns_out)`` array.
    """
    positions = np.asarray(slice_positions, dtype=float)
    offsets = np.asarray(slice_offsets_xy, dtype=float)
    targets = np.asarray(output_positions, dtype=float)
    if stack.shape[0] != positions.size or offsets.shape != (positions.size, 2):
        raise ValueError("stack, slice_positions and slice_offsets_xy must describe the same slices")
    if positions.size > 1 and np.any(np.diff(positions) <= 0):
        raise ValueError("slice_positions must be strictly increasing")
    dtype = np.dtype(dtype or stack.dtype)
    out = np.empty((targets.size, *output_shape_yx), dtype=dtype)
    cache: dict[int, np.ndarray] = {}

    def on_grid(index: int) -> np.ndarray:
        if index not in cache:
            if len(cache) >= 2:  # outputs advance monotonically: keep the last two slices
                cache.pop(min(cache))
            cache[index] = shift_slice_onto_grid(stack[index], offsets[index], output_shape_yx, fill_value)
        return cache[index]

    for k, target in enumerate(targets):
        if cancel is not None:
            cancel.raise_if_cancelled()
        upper = int(np.clip(np.searchsorted(positions, target), 0, positions.size - 1))
        lower = max(upper - 1, 0)
        gap = positions[upper] - positions[lower]
        weight = 0.0 if gap <= 0 else float(np.clip((target - positions[lower]) / gap, 0.0, 1.0))
        if weight <= _EXACT_POSITION_TOLERANCE:
            value = on_grid(lower)
        elif weight >= 1.0 - _EXACT_POSITION_TOLERANCE:
            value = on_grid(upper)
        else:
            value = on_grid(lower) * np.float32(1.0 - weight) + on_grid(upper) * np.float32(weight)
        _store(out, k, value)
        progress((k + 1) / targets.size, "Resampling onto a regular grid")
    return out


def _store(out: np.ndarray, index: int, value: np.ndarray) -> None:
    """Write a float slice into ``out[index]``, rounding and clipping for integer types."""
    if out.dtype.kind in "iu":
        info = np.iinfo(out.dtype)
        value = np.clip(np.rint(value), info.min, info.max)  # a new array: cached slices stay exact
    out[index] = value
