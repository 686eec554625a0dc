"""Named structures (possibly overlapping) packed into as few label maps as needed.

DICOM SEG segments and RT structures may overlap (BODY around the organs, a tumour
inside its organ), while a label map holds one value per voxel. Each structure goes
into the first layer where it overlaps nothing already there, so no voxel of any
structure is lost and the common non-overlapping case stays a single layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medviewer.core.errors import MedviewerError
from medviewer.core.geometry import Geometry
from medviewer.core.labels import LabelMap, LabelTable


@dataclass
class Structure:
    """One structure's voxels: a boolean ``mask`` over the (z, y, x) bounding ``box`` of the image array."""

    name: str
    color: tuple[int, int, int] | None
    box: tuple[slice, slice, slice]
    mask: np.ndarray
    #: the label value to use when its layer has it free (e.g. the DICOM segment number)
    value: int | None = None


def bounding_box(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """The (z, y, x) slices enclosing a boolean volume's True voxels (None when there are none)."""
    zs = np.nonzero(mask.any(axis=(1, 2)))[0]
    if not len(zs):
        return None
    ys, xs = np.nonzero(mask.any(axis=(0, 2)))[0], np.nonzero(mask.any(axis=(0, 1)))[0]
    return slice(zs[0], zs[-1] + 1), slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1)


def cropped(name: str, color: tuple[int, int, int] | None, mask: np.ndarray, value: int | None = None) -> Structure | None:
    """A full-size boolean mask as a Structure over its bounding box (None when empty)."""
    box = bounding_box(mask)
    return Structure(name, color, box, mask[box].copy(), value) if box is not None else None


def pack_layers(structures: list[Structure], geometry: Geometry, title: str, source: str) -> list[LabelMap]:
    """Label maps holding every structure: its own ``value`` where free, else the next free one in its layer."""
    arrays: list[np.ndarray] = []
    tables: list[LabelTable] = []
    for structure in structures:
        layer = next((n for n, array in enumerate(arrays) if not np.any(array[structure.box][structure.mask])), None)
        if layer is None:
            arrays.append(np.zeros(geometry.shape, np.uint8))
            tables.append(LabelTable())
            layer = len(arrays) - 1
        value = structure.value if structure.value and structure.value not in tables[layer] else tables[layer].next_free_value()
        if value > 65535:
            raise MedviewerError(f"'{title}' has more than 65535 structures in one layer")
        if value > 255 and arrays[layer].dtype == np.uint8:
            arrays[layer] = arrays[layer].astype(np.uint16)
        arrays[layer][structure.box][structure.mask] = value
        tables[layer].add(value, structure.name, structure.color)
    layers = list(zip(arrays, tables))
    return [
        LabelMap(array, geometry, table, title if len(layers) == 1 else f"{title} ({number} of {len(layers)})", source)
        for number, (array, table) in enumerate(layers, start=1)
    ]
