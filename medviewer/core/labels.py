"""Label maps (integer masks on an image's grid) and their label tables."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from medviewer.core.errors import GeometryMismatchError
from medviewer.core.geometry import Geometry

# A palette in the spirit of 3D Slicer's GenericAnatomyColors / ITK-SNAP defaults.
DEFAULT_COLORS: tuple[tuple[int, int, int], ...] = (
    (128, 174, 128),  # 1 green
    (241, 214, 145),  # 2 bone-ish
    (177, 122, 101),  # 3 brown
    (111, 184, 210),  # 4 blue
    (216, 101, 79),  # 5 red
    (221, 130, 101),  # 6
    (144, 238, 144),  # 7
    (192, 104, 88),  # 8
    (220, 245, 20),  # 9 yellow
    (78, 63, 0),  # 10
    (255, 250, 220),  # 11
    (230, 220, 70),  # 12
    (200, 200, 235),  # 13
    (250, 250, 210),  # 14
    (244, 214, 49),  # 15
    (0, 151, 206),  # 16
)

LABEL_DTYPES = (np.uint8, np.uint16)


def default_color(value: int) -> tuple[int, int, int]:
    """Colour given to a new label value."""
    return DEFAULT_COLORS[(value - 1) % len(DEFAULT_COLORS)]


@dataclass
class LabelInfo:
    """Name, RGB colour (0-255) and visibility of one label value."""

    name: str
    color: tuple[int, int, int]
    visible: bool = True


@dataclass
class LabelTable:
    """Maps label values (1..65535; 0 is background) to ``LabelInfo``."""

    entries: dict[int, LabelInfo] = field(default_factory=dict)

    def __contains__(self, value: int) -> bool:
        return value in self.entries

    def __getitem__(self, value: int) -> LabelInfo:
        return self.entries[value]

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self.entries))

    def __len__(self) -> int:
        return len(self.entries)

    def items(self) -> list[tuple[int, LabelInfo]]:
        return sorted(self.entries.items())

    def add(self, value: int, name: str | None = None, color: tuple[int, int, int] | None = None) -> LabelInfo:
        if not 1 <= int(value) <= 65535:
            raise ValueError(f"label value must be 1..65535, got {value}")
        info = LabelInfo(name or f"Label {value}", tuple(color) if color else default_color(int(value)))
        self.entries[int(value)] = info
        return info

    def next_free_value(self) -> int:
        return max(self.entries, default=0) + 1

    def remove(self, value: int) -> None:
        self.entries.pop(int(value), None)

    def ensure(self, values: np.ndarray | list[int]) -> None:
        """Add default entries for values present in data but missing from the table."""
        for value in np.unique(np.asarray(values)):
            if value != 0 and int(value) not in self.entries:
                self.add(int(value))

    def lookup_table(self, size: int | None = None, opacity: int = 255) -> np.ndarray:
        """RGBA lookup table, shape (size, 4) uint8; background and hidden labels are transparent."""
        size = size or (max(self.entries, default=0) + 1)
        lut = np.zeros((size, 4), dtype=np.uint8)
        for value, info in self.entries.items():
            if value < size and info.visible:
                lut[value, :3] = info.color
                lut[value, 3] = opacity
        return lut

    def copy(self) -> "LabelTable":
        return LabelTable({v: LabelInfo(i.name, tuple(i.color), i.visible) for v, i in self.entries.items()})

    def to_dict(self) -> dict[str, dict]:
        return {str(v): {"name": i.name, "color": list(i.color), "visible": i.visible} for v, i in self.items()}

    @classmethod
    def from_dict(cls, data: dict) -> "LabelTable":
        table = cls()
        for value, info in data.items():
            table.entries[int(value)] = LabelInfo(info["name"], tuple(info["color"]), info.get("visible", True))
        return table

    @classmethod
    def from_names(cls, names: dict[int, str]) -> "LabelTable":
        table = cls()
        for value, name in sorted(names.items()):
            table.add(int(value), name)
        return table


class LabelMap:
    """A uint8/uint16 mask that has exactly its image's geometry.

    The array is read-only (``flags.writeable`` is False) once the label map owns it:
    voxels change only through :meth:`write`, which edits of a layer in a document
    reach through ``Document.edit_labels`` (one undo record, one ``labels_changed``
    event). Code that writes ``label_map.array[...]`` directly fails with numpy's
    ``ValueError: assignment destination is read-only`` instead of leaving views,
    the undo history and the modified flag stale. Build arrays freely before
    handing them to a ``LabelMap``.

    Parameters
    ----------
    array:
        ``(z, y, x)`` integer array; 0 is background.
    geometry:
        The image's geometry. The array's shape must match it.
    table:
        Names and colours; values present in the array but missing are added.
    name:
        Layer name shown in the UI.
    source:
        ``"manual"`` or the model ``"name version"`` that produced it.
    """

    def __init__(
        self,
        array: np.ndarray,
        geometry: Geometry,
        table: LabelTable | None = None,
        name: str = "Labels",
        source: str = "manual",
    ) -> None:
        array = np.asarray(array)
        if array.ndim == 2:
            array = array[None]
        if array.dtype not in LABEL_DTYPES:
            if array.dtype.kind not in "iub" or (array.size and (array.min() < 0 or array.max() > 65535)):
                raise GeometryMismatchError(f"label map '{name}' must hold integers 0..65535, got {array.dtype}")
            array = array.astype(np.uint8 if (array.size == 0 or array.max() < 256) else np.uint16)
        if tuple(array.shape) != geometry.shape:
            raise GeometryMismatchError(
                f"label map '{name}' has shape {tuple(array.shape)} (z, y, x) but its image has {geometry.shape}"
            )
        self._array = _owned(array)
        self._writers = 0
        self.geometry = geometry
        self.table = table if table is not None else LabelTable()
        self.table.ensure(np.unique(array[:: max(1, array.shape[0] // 64)]) if array.size else [])
        self.name = name
        self.source = source
        #: running bounding box of the labelled voxels, shared by every view (they grow it from labels_changed)
        self.bounds = LabelBounds()

    @classmethod
    def empty(cls, geometry: Geometry, table: LabelTable | None = None, name: str = "Labels", dtype=np.uint8) -> "LabelMap":
        return cls(np.zeros(geometry.shape, dtype=dtype), geometry, table, name)

    @classmethod
    def matching(
        cls,
        array: np.ndarray,
        array_geometry: Geometry,
        image_geometry: Geometry,
        table: LabelTable | None = None,
        name: str = "Labels",
        source: str = "manual",
        path: str | None = None,
    ) -> "LabelMap":
        """A label map read with its own geometry, refused unless it covers the image's voxels exactly.

        A file that stores the same voxel grid in another axis order (flipped rows, RAS
        instead of LPS, ...) is re-indexed onto the image grid: every voxel keeps its world
        position, nothing is interpolated. Anything else raises ``GeometryMismatchError``.
        """
        if not image_geometry.is_close(array_geometry):
            mapping = image_geometry.axis_mapping_from(array_geometry)
            if mapping is None:
                image_geometry.require_match(array_geometry, f"label map '{name}'", path)
            array = reindex_array(array, *mapping)
        return cls(array, image_geometry, table, name, source)

    @property
    def array(self) -> np.ndarray:
        """The ``(z, y, x)`` voxels, read-only (see the class docstring)."""
        return self._array

    @contextmanager
    def writing(self) -> Iterator[np.ndarray]:
        """The array made writeable for the duration of the block (the edit path's guard)."""
        array = self._array
        self._writers += 1
        array.setflags(write=True)
        try:
            yield array
        finally:
            self._writers -= 1
            if self._writers == 0:
                array.setflags(write=False)

    def write(self, region: tuple[slice, slice, slice], values: np.ndarray | int, mask: np.ndarray | None = None) -> None:
        """Store ``values`` (a block of ``region``'s shape, or one value) in ``region``, where ``mask`` is True.

        No undo record and no event: this is the write half of ``Document.edit_labels``
        and of undo/redo. Widens to uint16 first when a value above 255 arrives.
        """
        scalar = isinstance(values, (int, np.integer))
        if not scalar:
            values = np.asarray(values)
        if self._array.dtype == np.uint8:
            top = int(values) if scalar else (int(values.max()) if values.size else 0)
            self.ensure_capacity(top)
        # The guard of ``writing`` inlined: this runs for every brush dab and every undo.
        array = self._array
        self._writers += 1
        array.setflags(write=True)
        try:
            if mask is None:
                array[region] = values
            elif scalar:
                array[region][mask] = values
            else:
                array[region][mask] = values[mask]
        finally:
            self._writers -= 1
            if self._writers == 0:
                array.setflags(write=False)

    def ensure_capacity(self, value: int) -> None:
        """Widen to uint16 when a value above 255 is about to be written."""
        if value > 255 and self._array.dtype == np.uint8:
            if self._writers:
                raise RuntimeError(f"label map '{self.name}' cannot be widened to uint16 while it is being written")
            self._array = _owned(self._array.astype(np.uint16))

    def present_values(self) -> list[int]:
        return [int(v) for v in np.unique(self.array) if v != 0]

    def voxel_count(self, value: int) -> int:
        return int(np.count_nonzero(self.array == value))

    def copy(self, name: str | None = None) -> "LabelMap":
        return LabelMap(self.array.copy(), self.geometry, self.table.copy(), name or self.name, self.source)


def _owned(array: np.ndarray) -> np.ndarray:
    """``array`` locked read-only for a label map; copied first when it cannot be unlocked later.

    A read-only input is either another label map's array (sharing it would let one
    layer's edits change the other) or an immutable buffer: both are copied.
    """
    if not array.flags.writeable:
        array = array.copy()
    array.setflags(write=False)
    return array


def reindex_array(array: np.ndarray, axes: tuple[int, ...], flips: tuple[bool, ...]) -> np.ndarray:
    """``array`` (z, y, x) of another index order re-indexed as ``Geometry.axis_mapping_from`` describes."""
    source = array
    for axis, (target, flip) in enumerate(zip(axes, flips)):
        if flip:
            source = np.flip(source, axis=2 - target)
    # result array axis (2 - a) is the source's array axis (2 - axes[a])
    order = [2 - axes[2 - k] for k in range(3)]
    return np.ascontiguousarray(np.transpose(source, order))


# ---------------------------------------------------------------------------- label bounds
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
