"""Which array axes form each anatomical view, and how view pixels map to voxel indices.

Qt-free display geometry shared by the slice views, screenshots and tests.

Screen conventions (radiological, as 3D Slicer and ITK-SNAP):

* axial: screen right = patient left (L), screen down = posterior (P);
* coronal: screen right = patient left (L), screen down = inferior (I);
* sagittal: screen right = posterior (P), screen down = inferior (I), i.e. anterior
  on the left.

A *display pixel* ``(col, row)`` addresses the 2D slice image as the view shows it;
continuous display coordinates have pixel centres at integers. Slices are taken
from the voxel grid without resampling: an oblique volume is shown along its
closest anatomical axes (``Geometry.closest_axis_permutation``) and flagged
``oblique``. Extracting a slice returns a NumPy view (transposes and negative
strides), never a copy of the volume; ``SlabSliceReader`` serves slices across x
(sagittal, usually) from a small slab of neighbouring slices read in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medviewer.core.geometry import Geometry

AXIAL, CORONAL, SAGITTAL = "axial", "coronal", "sagittal"
PLANES: tuple[str, str, str] = (AXIAL, CORONAL, SAGITTAL)

# plane -> (normal world axis, (column world axis, sign), (row world axis, sign)); world = LPS.
_SCREEN_AXES: dict[str, tuple[int, tuple[int, int], tuple[int, int]]] = {
    AXIAL: (2, (0, +1), (1, +1)),
    CORONAL: (1, (0, +1), (2, -1)),
    SAGITTAL: (0, (1, +1), (2, -1)),
}

_POSITIVE_LETTERS = "LPS"
_NEGATIVE_LETTERS = "RAI"


def direction_letter(vector: np.ndarray) -> str:
    """Anatomical letter (L/R, P/A, S/I) of the world axis closest to ``vector``."""
    axis = int(np.argmax(np.abs(vector)))
    return _POSITIVE_LETTERS[axis] if vector[axis] > 0 else _NEGATIVE_LETTERS[axis]


@dataclass(frozen=True)
class SliceMapping:
    """How one anatomical plane of a grid is laid out on screen.

    Attributes
    ----------
    plane:
        "axial", "coronal" or "sagittal".
    normal_axis, col_axis, row_axis:
        Index axes (0 = i, 1 = j, 2 = k) normal to the slice, running along screen
        columns (left to right) and screen rows (top to bottom).
    col_flip, row_flip:
        True when the index decreases left to right / top to bottom on screen.
    cols, rows, slice_count:
        Voxel counts along the column, row and normal axes.
    col_spacing, row_spacing, normal_spacing:
        Voxel size in mm along those axes (screen pixels keep this aspect ratio).
    letters:
        Orientation letters at the screen edges: keys "left", "right", "top", "bottom".
    oblique:
        True when the grid is not aligned with the anatomical axes.
    normal_world_axis:
        World axis (0 = L, 1 = P, 2 = S) the slice position is reported along.
    """

    plane: str
    normal_axis: int
    col_axis: int
    row_axis: int
    col_flip: bool
    row_flip: bool
    cols: int
    rows: int
    slice_count: int
    col_spacing: float
    row_spacing: float
    normal_spacing: float
    letters: dict
    oblique: bool
    normal_world_axis: int

    # ------------------------------------------------------------------ slices
    def array_axis(self, index_axis: int) -> int:
        """Axis of the (z, y, x) array that holds index axis ``index_axis``."""
        return 2 - index_axis

    def clamp_slice(self, slice_index: int) -> int:
        return int(min(max(int(slice_index), 0), self.slice_count - 1))

    def slice_of(self, array: np.ndarray, slice_index: int) -> np.ndarray:
        """The displayed 2D image (rows, cols) of a (z, y, x) array: a view, never a copy."""
        selector = [slice(None)] * 3
        selector[self.array_axis(self.normal_axis)] = self.clamp_slice(slice_index)
        return self.orient_plane(array[tuple(selector)])

    def orient_plane(self, plane_2d: np.ndarray) -> np.ndarray:
        """Turn a slice in array order (the (z, y, x) array without the normal axis) into display order.

        A tool's preview mask for view axis 2 is ``(y, x)``, for 1 ``(z, x)``, for 0 ``(z, y)``;
        this returns the (rows, cols) image the view draws.
        """
        remaining = [a for a in (2, 1, 0) if a != self.normal_axis]  # index axes in array order
        image = plane_2d if remaining[0] == self.row_axis else plane_2d.T
        if self.row_flip:
            image = image[::-1, :]
        if self.col_flip:
            image = image[:, ::-1]
        return image

    def plane_block_to_display(self, origin: tuple[int, int], shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """Display rectangle (row0, col0, rows, cols) of a block of an array-order plane.

        ``origin`` and ``shape`` are in the array-order plane (as ``orient_plane`` takes).
        """
        remaining = [a for a in (2, 1, 0) if a != self.normal_axis]
        starts = dict(zip(remaining, origin))
        sizes = dict(zip(remaining, shape))
        row0, nrows = starts[self.row_axis], sizes[self.row_axis]
        col0, ncols = starts[self.col_axis], sizes[self.col_axis]
        if self.row_flip:
            row0 = self.rows - (row0 + nrows)
        if self.col_flip:
            col0 = self.cols - (col0 + ncols)
        return int(row0), int(col0), int(nrows), int(ncols)

    def region_hits_slice(self, region, slice_index: int) -> bool:
        """Whether a (z, y, x) region (tuple of slices, or None = all) contains the displayed slice."""
        if region is None:
            return True
        axis_slice = region[self.array_axis(self.normal_axis)]
        start, stop, _ = axis_slice.indices(self.slice_count)
        return start <= slice_index < stop

    def region_display_rect(self, region) -> tuple[int, int, int, int]:
        """Display rectangle (row0, col0, rows, cols) covered by a (z, y, x) region."""
        counts = {self.col_axis: self.cols, self.row_axis: self.rows, self.normal_axis: self.slice_count}
        spans = {}
        for index_axis, count in counts.items():
            start, stop, _ = region[self.array_axis(index_axis)].indices(count)
            spans[index_axis] = (start, max(stop - start, 0))
        remaining = [a for a in (2, 1, 0) if a != self.normal_axis]
        return self.plane_block_to_display(tuple(spans[a][0] for a in remaining), tuple(spans[a][1] for a in remaining))

    # ------------------------------------------------------------------ coordinates
    def index_to_display(self, index: np.ndarray) -> np.ndarray:
        """Continuous display coordinates (col, row, slice) of indices (i, j, k); shape (3,) or (N, 3)."""
        index = np.asarray(index, dtype=float)
        col = index[..., self.col_axis]
        row = index[..., self.row_axis]
        if self.col_flip:
            col = (self.cols - 1) - col
        if self.row_flip:
            row = (self.rows - 1) - row
        return np.stack([col, row, index[..., self.normal_axis]], axis=-1)

    def display_to_index(self, col: float | np.ndarray, row: float | np.ndarray, slice_position: float | np.ndarray) -> np.ndarray:
        """Continuous indices (i, j, k) of display coordinates; broadcasts over arrays."""
        col = np.asarray(col, dtype=float)
        row = np.asarray(row, dtype=float)
        if self.col_flip:
            col = (self.cols - 1) - col
        if self.row_flip:
            row = (self.rows - 1) - row
        col, row, slice_position = np.broadcast_arrays(col, row, np.asarray(slice_position, dtype=float))
        out = np.empty(col.shape + (3,), dtype=float)
        out[..., self.col_axis] = col
        out[..., self.row_axis] = row
        out[..., self.normal_axis] = slice_position
        return out

    def slice_index_of(self, index: np.ndarray) -> int:
        """The displayed slice that contains continuous index ``index`` (nearest, clamped)."""
        return self.clamp_slice(int(np.floor(float(np.asarray(index)[self.normal_axis]) + 0.5)))

    @property
    def display_size_mm(self) -> tuple[float, float]:
        """Physical (width, height) of the slice image in mm."""
        return self.cols * self.col_spacing, self.rows * self.row_spacing


def slice_mapping(geometry: Geometry, plane: str) -> SliceMapping:
    """The display layout of ``plane`` (axial/coronal/sagittal) for ``geometry``."""
    if plane not in _SCREEN_AXES:
        raise ValueError(f"unknown plane '{plane}'; choose one of {', '.join(PLANES)}")
    axes, signs = geometry.closest_axis_permutation()
    normal_world, (col_world, col_sign), (row_world, row_sign) = _SCREEN_AXES[plane]
    col_axis, row_axis, normal_axis = axes[col_world], axes[row_world], axes[normal_world]
    col_flip = signs[col_world] != col_sign
    row_flip = signs[row_world] != row_sign
    direction = geometry.direction_matrix
    right = direction[:, col_axis] * (-1.0 if col_flip else 1.0)
    down = direction[:, row_axis] * (-1.0 if row_flip else 1.0)
    letters = {
        "right": direction_letter(right),
        "left": direction_letter(-right),
        "bottom": direction_letter(down),
        "top": direction_letter(-down),
    }
    size, spacing = geometry.size, geometry.spacing
    return SliceMapping(
        plane=plane,
        normal_axis=normal_axis,
        col_axis=col_axis,
        row_axis=row_axis,
        col_flip=bool(col_flip),
        row_flip=bool(row_flip),
        cols=size[col_axis],
        rows=size[row_axis],
        slice_count=size[normal_axis],
        col_spacing=spacing[col_axis],
        row_spacing=spacing[row_axis],
        normal_spacing=spacing[normal_axis],
        letters=letters,
        oblique=geometry.is_oblique(),
        normal_world_axis=normal_world,
    )


def plane_of_single_slice(geometry: Geometry) -> str:
    """For a 2D image (one slice along k): the plane that shows it whole."""
    axes, _signs = geometry.closest_axis_permutation()
    world_axis_of_k = axes.index(2)
    return {2: AXIAL, 1: CORONAL, 0: SAGITTAL}[world_axis_of_k]


def slice_position_text(geometry: Geometry, mapping: SliceMapping, cursor_world: np.ndarray, slice_index: int) -> str:
    """'S 12.5 mm'-style position of the displayed slice along its world axis (LPS, signed)."""
    index = geometry.world_to_index(cursor_world)
    index[mapping.normal_axis] = slice_index
    world = geometry.index_to_world(index)
    axis = mapping.normal_world_axis
    return f"{_POSITIVE_LETTERS[axis]} {world[axis]:.1f} mm"


#: Modalities whose 2D images are projections, not slices: no anatomical plane, no slice position.
PROJECTION_MODALITIES = frozenset({"CR", "DX", "MG", "XA", "RF", "PX", "IO", "US", "OT", "SC"})
_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H", "S": "I", "I": "S"}


def is_projection_image(volume) -> bool:
    """A 2D image with no known place in patient space (radiograph, photo, PNG...).

    True for single-slice images of projection modalities (or of none) whose direction
    is the identity, i.e. the file gave no ImageOrientationPatient; a 2D image with a
    real orientation is shown in its anatomical plane.
    """
    if not volume.is_2d or not np.allclose(volume.geometry.direction_matrix, np.eye(3)):
        return False
    modality = (volume.modality or "").upper()
    return not modality or modality in PROJECTION_MODALITIES or bool(volume.metadata.extra.get("two_dimensional"))


def projection_letters(patient_orientation) -> dict[str, str]:
    """Edge letters of a projection image from DICOM PatientOrientation (row, column directions).

    ``["L", "F"]`` (a PA chest film) gives right = L, left = R, bottom = F, top = H.
    Unknown or missing orientation gives no letters rather than invented ones.
    """
    try:
        row_direction, column_direction = (str(v).upper() for v in patient_orientation)
    except (TypeError, ValueError):
        return {"left": "", "right": "", "top": "", "bottom": ""}

    def opposite(letters: str) -> str:
        return "".join(_OPPOSITE.get(c, "") for c in letters) if all(c in _OPPOSITE for c in letters) else ""

    return {"right": row_direction, "left": opposite(row_direction), "bottom": column_direction, "top": opposite(column_direction)}


#: Bytes of neighbouring voxels a ``SlabSliceReader`` reads together (8 int16 or 16 uint8 slices).
SLAB_BYTES = 16


class SlabSliceReader:
    """Reads 2D planes of a (z, y, x) array, slices across x a slab at a time.

    Why: the array stores x contiguously, so a slice at fixed x (the sagittal view of
    an axial stack) takes one voxel from every cache line it touches. The same memory
    traffic brings in the neighbouring x, so this reader copies ``SLAB_BYTES`` of
    neighbours per (z, y) in one pass (about the time of one plain slice) and serves
    the next slices of the slab from that small copy. Memory: one slab, e.g. 2.4 MB for
    8 int16 slices of 512 x 300; never a copy of the volume.

    Planes across z or y are returned as NumPy views (they are already compact).
    After the source array is edited, call :meth:`update` with the edited region so
    the slab follows (label maps).
    """

    def __init__(self, slab_bytes: int = SLAB_BYTES) -> None:
        self.slab_bytes = int(slab_bytes)
        self.clear()

    def clear(self) -> None:
        """Forget the slab (e.g. another array will be read)."""
        self._array: np.ndarray | None = None
        self._key: tuple | None = None
        self._slab: np.ndarray | None = None

    @property
    def slab_nbytes(self) -> int:
        """Bytes held by the current slab (0 when none)."""
        return 0 if self._slab is None else int(self._slab.nbytes)

    def plane(self, array: np.ndarray, axis: int, index: int, block: tuple[slice, slice] | None = None) -> np.ndarray:
        """The plane ``index`` across array axis ``axis`` in array order (the two other axes, in order).

        ``block`` restricts it to a sub-rectangle, given as slices of those two axes
        (e.g. a label map's bounding box), so only that part is read.
        """
        selector: list = [slice(None)] * 3
        if block is not None:
            others = [a for a in range(3) if a != axis]
            selector[others[0]], selector[others[1]] = block
        selector[axis] = int(index)
        if axis != 2 or array.ndim != 3:
            return array[tuple(selector)]
        per_slab = self._slices_per_slab(array)
        usable = (array.shape[2] // per_slab) * per_slab if per_slab else 0
        if not 0 <= index < usable:  # odd types, or the last few slices of an odd width
            return array[tuple(selector)]
        z_span = selector[0].indices(array.shape[0])[:2]
        y_span = selector[1].indices(array.shape[1])[:2]
        group = index // per_slab
        key = (group, z_span, y_span, array.shape, array.dtype.str)
        if self._array is not array or self._key != key or self._slab is None:
            self._array, self._key = array, key
            self._slab = self._read_slab(array, group, z_span, y_span, per_slab)
        return self._slab[:, :, index - group * per_slab]

    def update(self, region) -> None:
        """The source array changed in a (z, y, x) region (tuple of slices; None: anywhere)."""
        if self._slab is None:
            return
        if region is None:
            self.clear()
            return
        array = self._array
        group, (z0, z1), (y0, y1) = self._key[:3]
        per_slab = self._slab.shape[2]
        x0 = group * per_slab
        spans = [region[axis].indices(array.shape[axis])[:2] for axis in range(3)]
        (rz0, rz1), (ry0, ry1), (rx0, rx1) = spans
        if rx1 <= x0 or rx0 >= x0 + per_slab:
            return
        cz0, cz1, cy0, cy1 = max(rz0, z0), min(rz1, z1), max(ry0, y0), min(ry1, y1)
        if cz1 > cz0 and cy1 > cy0:
            self._slab[cz0 - z0 : cz1 - z0, cy0 - y0 : cy1 - y0, :] = array[cz0:cz1, cy0:cy1, x0 : x0 + per_slab]

    def _slices_per_slab(self, array: np.ndarray) -> int:
        itemsize = array.dtype.itemsize
        if array.dtype.hasobject or self.slab_bytes % itemsize or array.strides[2] != itemsize:
            return 0
        return self.slab_bytes // itemsize

    def _read_slab(self, array: np.ndarray, group: int, z_span, y_span, per_slab: int) -> np.ndarray:
        usable = (array.shape[2] // per_slab) * per_slab
        source = array[z_span[0] : z_span[1], y_span[0] : y_span[1], :usable]
        # One opaque SLAB_BYTES-wide element per (z, y): a single strided copy moves them all.
        grouped = source.view(np.dtype((np.void, self.slab_bytes)))
        slab = np.ascontiguousarray(grouped[:, :, group]).view(array.dtype)
        return slab.reshape(source.shape[0], source.shape[1], per_slab)
