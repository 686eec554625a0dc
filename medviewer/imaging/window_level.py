"""Window/level: mapping scanner values to display grey levels, presets and colour maps.

Qt-free so that slice views, screenshots and tests share one definition of what a
window means. A window is ``(centre, width)``: values at ``centre - width/2`` and
below are black, values at ``centre + width/2`` and above are white, linear in
between. Display work is done on one 2D slice at a time (never the whole volume):
for 8- and 16-bit images a precomputed lookup table indexed by the raw value is the
fastest path (one gather per pixel, no arithmetic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: CT presets (centre, width) in HU, the usual radiology values.
CT_PRESETS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "liver": (60.0, 160.0),
}

#: Menu titles of the CT presets.
CT_PRESET_TITLES: dict[str, str] = {
    "brain": "CT brain (40/80)",
    "lung": "CT lung (-600/1500)",
    "mediastinum": "CT mediastinum / soft tissue (50/350)",
    "bone": "CT bone (400/1800)",
    "liver": "CT liver (60/160)",
}

#: Colour maps offered in the UI: control points (position 0..1, RGB 0..255).
_COLORMAP_POINTS: dict[str, list[tuple[float, tuple[int, int, int]]]] = {
    "gray": [(0.0, (0, 0, 0)), (1.0, (255, 255, 255))],
    "hot": [(0.0, (0, 0, 0)), (0.375, (255, 0, 0)), (0.75, (255, 255, 0)), (1.0, (255, 255, 255))],
    "bone": [(0.0, (0, 0, 0)), (0.375, (81, 81, 113)), (0.75, (166, 198, 198)), (1.0, (255, 255, 255))],
    "jet": [
        (0.0, (0, 0, 128)),
        (0.125, (0, 0, 255)),
        (0.375, (0, 255, 255)),
        (0.625, (255, 255, 0)),
        (0.875, (255, 0, 0)),
        (1.0, (128, 0, 0)),
    ],
    "viridis": [
        (0.0, (68, 1, 84)),
        (0.125, (71, 44, 122)),
        (0.25, (59, 81, 139)),
        (0.375, (44, 113, 142)),
        (0.5, (33, 144, 141)),
        (0.625, (39, 173, 129)),
        (0.75, (92, 200, 99)),
        (0.875, (170, 220, 50)),
        (1.0, (253, 231, 37)),
    ],
}

COLORMAPS: tuple[str, ...] = tuple(_COLORMAP_POINTS)

# Integer types small enough for a lookup table indexed by the raw value.
_LUT_DTYPES = {
    np.dtype(np.uint8): np.uint8,
    np.dtype(np.int8): np.uint8,
    np.dtype(np.uint16): np.uint16,
    np.dtype(np.int16): np.uint16,
}


@dataclass(frozen=True)
class Window:
    """A display window: ``centre`` and ``width`` in image units (HU for CT)."""

    center: float
    width: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", float(self.center))
        object.__setattr__(self, "width", max(float(self.width), 1e-6))

    @property
    def low(self) -> float:
        """Value shown black (white when inverted)."""
        return self.center - self.width / 2.0

    @property
    def high(self) -> float:
        """Value shown white (black when inverted)."""
        return self.center + self.width / 2.0

    @classmethod
    def from_range(cls, low: float, high: float) -> "Window":
        return cls((low + high) / 2.0, high - low)


def window_level_to_uint8(values: np.ndarray, center: float, width: float, invert: bool = False) -> np.ndarray:
    """Grey levels 0..255 of ``values`` under the window ``(center, width)``.

    ``low`` maps to 0 and ``high`` to 255, rounded to nearest; ``invert`` swaps them
    (MONOCHROME1 display, or the user's invert toggle). Works on any shape and dtype;
    slice views call it on one 2D slice.
    """
    window = Window(center, width)
    scale = 255.0 / window.width
    scaled = (np.asarray(values, dtype=np.float32) - np.float32(window.low)) * np.float32(scale)
    out = np.clip(np.floor(scaled + 0.5), 0, 255).astype(np.uint8)
    if invert:
        np.subtract(255, out, out=out)
    return out


def window_lookup_table(dtype: np.dtype, center: float, width: float, invert: bool = False) -> np.ndarray | None:
    """A uint8 table ``t`` with ``t[v.view(unsigned)] == window_level_to_uint8(v)`` for 8/16-bit ``dtype``.

    Signed values are reinterpreted as unsigned (two's complement), so the table is
    indexed directly by the raw bits: no subtraction, no float conversion. Returns
    None for other dtypes (floats, 32-bit integers), which use the direct formula.
    """
    dtype = np.dtype(dtype)
    unsigned = _LUT_DTYPES.get(dtype)
    if unsigned is None:
        return None
    raw = np.arange(np.iinfo(unsigned).max + 1, dtype=np.int64).astype(unsigned).view(dtype)
    return window_level_to_uint8(raw, center, width, invert)


def argb32(rgb: np.ndarray, alpha: np.ndarray | int = 255) -> np.ndarray:
    """Pack RGB (N, 3) uint8 and alpha into premultiplied 0xAARRGGBB uint32 (QImage ARGB32_Premultiplied).

    Screens draw this format without any conversion, so views keep their slices in it.
    """
    rgb = np.asarray(rgb, dtype=np.uint32)
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.uint32), rgb.shape[:-1])
    premultiplied = (rgb * alpha[..., None] + 127) // 255
    return (alpha << 24) | (premultiplied[..., 0] << 16) | (premultiplied[..., 1] << 8) | premultiplied[..., 2]


class SliceWindowing:
    """Applies a window (and colour map) to 2D slices, reusing lookup tables while the window is unchanged."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._table: np.ndarray | None = None
        self._argb_key: tuple | None = None
        self._argb_table: np.ndarray | None = None

    def apply_argb(self, slice_2d: np.ndarray, center: float, width: float, colors: np.ndarray) -> np.ndarray:
        """Opaque premultiplied ARGB32 pixels (uint32, C-contiguous) of one slice.

        ``colors`` is a (256,) uint32 table from ``argb32(colormap_lookup_table(...))``.
        For 8/16-bit images one gather through a combined window+colour table does it all.
        """
        key = (slice_2d.dtype.str, float(center), float(width), colors.tobytes())
        if key != self._argb_key:
            grey_table = window_lookup_table(slice_2d.dtype, center, width)
            self._argb_table = None if grey_table is None else colors[grey_table]
            self._argb_key = key
        if self._argb_table is None:
            return np.take(colors, window_level_to_uint8(slice_2d, center, width))
        if slice_2d.strides[-1] != slice_2d.itemsize:
            # Sagittal-like slices are scattered in memory: gathering them once into a
            # compact buffer is faster than indexing the table through the strides.
            slice_2d = np.ascontiguousarray(slice_2d)
        unsigned = _LUT_DTYPES[slice_2d.dtype]
        indices = slice_2d.view(unsigned) if slice_2d.dtype != unsigned else slice_2d
        return np.take(self._argb_table, indices)

    def apply(self, slice_2d: np.ndarray, center: float, width: float, invert: bool = False) -> np.ndarray:
        """Grey levels (uint8, C-contiguous) of one slice."""
        key = (slice_2d.dtype.str, float(center), float(width), bool(invert))
        if key != self._key:
            self._table = window_lookup_table(slice_2d.dtype, center, width, invert)
            self._key = key
        if self._table is None:
            return np.ascontiguousarray(window_level_to_uint8(slice_2d, center, width, invert))
        unsigned = _LUT_DTYPES[slice_2d.dtype]
        indices = slice_2d.view(unsigned) if slice_2d.dtype != unsigned else slice_2d
        return np.take(self._table, indices)


def colormap_lookup_table(name: str, invert: bool = False) -> np.ndarray:
    """(256, 3) uint8 RGB table of a colour map in ``COLORMAPS`` (gray, hot, bone, jet, viridis)."""
    try:
        points = _COLORMAP_POINTS[name]
    except KeyError:
        raise ValueError(f"unknown colour map '{name}'; choose one of {', '.join(COLORMAPS)}") from None
    positions = np.array([p for p, _ in points])
    colors = np.array([c for _, c in points], dtype=float)
    x = np.linspace(0.0, 1.0, 256)
    table = np.stack([np.interp(x, positions, colors[:, channel]) for channel in range(3)], axis=1)
    table = np.clip(np.rint(table), 0, 255).astype(np.uint8)
    return table[::-1].copy() if invert else table


def percentile_window_of(values: np.ndarray, low: float = 1.0, high: float = 99.0, ignore_zero: bool = False) -> Window:
    """Window spanning two percentiles of ``values`` (a strided sample of large arrays).

    ``ignore_zero`` leaves out the zero background of skull-stripped or masked MR.
    """
    values = np.asarray(values)
    step = max(1, int(round((values.size / 2_000_000) ** (1 / max(values.ndim, 1)))))
    sample = values[tuple(slice(None, None, step) for _ in range(values.ndim))].ravel()
    if ignore_zero:
        sample = sample[sample != 0]
    sample = sample[np.isfinite(sample)] if sample.dtype.kind == "f" else sample
    if sample.size == 0:
        return Window(0.5, 1.0)
    lo, hi = np.percentile(sample, [low, high])
    if hi <= lo:
        hi = lo + 1.0
    return Window.from_range(float(lo), float(hi))


def auto_window(values: np.ndarray) -> Window:
    """The "auto" window: 1st to 99th percentile of all voxels."""
    return percentile_window_of(values, 1.0, 99.0)


def mr_auto_window(values: np.ndarray) -> Window:
    """MR auto-percentile window: 0.5th to 99.5th percentile of the non-zero voxels."""
    return percentile_window_of(values, 0.5, 99.5, ignore_zero=True)


def window_after_drag(start: Window, dx_pixels: float, dy_pixels: float, value_span: float) -> Window:
    """Window after a W/L drag: right widens, left narrows; down raises the level (Slicer-like).

    ``value_span`` (the image's max - min) sets the sensitivity so one screen width
    of drag covers about the whole range.
    """
    sensitivity = max(value_span, 1.0) / 500.0
    return Window(start.center + dy_pixels * sensitivity, max(start.width + dx_pixels * sensitivity, 1.0))


#: Window choices offered for every image, in menu order, besides the CT presets.
GENERIC_PRESETS: dict[str, str] = {
    "default": "Default (from the file)",
    "auto": "Auto (1-99 percentile)",
    "mr_auto": "MR auto (non-zero 0.5-99.5 percentile)",
}


def window_for_preset(name: str, volume) -> Window:
    """The window a preset name stands for on ``volume`` (a ``medviewer.core.Volume``).

    ``default`` is the DICOM default window when the file has one, else the
    volume's percentile window; ``auto`` and ``mr_auto`` are computed from the data;
    the CT names are fixed HU windows.
    """
    if name in CT_PRESETS:
        return Window(*CT_PRESETS[name])
    if name == "default":
        return Window(*volume.default_window())
    if name == "auto":
        return auto_window(volume.array)
    if name == "mr_auto":
        return mr_auto_window(volume.array)
    raise ValueError(f"unknown window preset '{name}'; choose one of {', '.join([*GENERIC_PRESETS, *CT_PRESETS])}")


def parse_window(text: str, volume) -> Window:
    """A window from the command line: a preset name or 'CENTRE,WIDTH'."""
    text = text.strip()
    if "," in text:
        center, width = (float(v) for v in text.split(",", 1))
        if width <= 0:
            raise ValueError(f"window width must be positive, got {width}")
        return Window(center, width)
    return window_for_preset(text, volume)
