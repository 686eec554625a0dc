"""Image geometry: the one place where voxel indices and world coordinates meet.

Conventions (docs/ARCHITECTURE.md points here):

* Arrays are stored ``(z, y, x)``; *indices* in this module are ``(i, j, k)`` =
  ``(x, y, z)``, as ITK/SimpleITK use them. ``array[k, j, i]`` is the voxel at index
  ``(i, j, k)``.
* World coordinates are LPS millimetres (DICOM/ITK patient coordinates).
* ``world = origin + direction @ (spacing * index)``; ``direction`` is a 3x3 matrix
  whose *columns* are the world directions of the i, j and k axes. It is stored
  row-major as SimpleITK's ``GetDirection()`` returns it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from medviewer.core.errors import GeometryMismatchError

# Letters for +x, +y, +z of LPS world space and their opposites.
_POSITIVE_LETTERS = "LPS"
_NEGATIVE_LETTERS = "RAI"

#: An axis whose largest direction cosine is below this is "oblique" (about 0.8 degrees).
OBLIQUE_COSINE_TOLERANCE = 1e-4


def _as_triple(values: Iterable[float], name: str, kind: type = float) -> tuple:
    triple = tuple(kind(v) for v in values)
    if len(triple) != 3:
        raise ValueError(f"{name} needs 3 values, got {len(triple)}")
    return triple


@dataclass(frozen=True)
class Geometry:
    """Size, spacing, origin and direction of a 3D image grid (2D images have size z = 1).

    Attributes
    ----------
    size:
        Number of voxels along (x, y, z).
    spacing:
        Voxel size in mm along (x, y, z) (the image axes, not world axes).
    origin:
        World (LPS mm) position of the centre of voxel (0, 0, 0).
    direction:
        Nine direction cosines, row-major, as ``SimpleITK.Image.GetDirection()``.
    """

    size: tuple[int, int, int]
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _as_triple(self.size, "size", int))
        object.__setattr__(self, "spacing", _as_triple(self.spacing, "spacing"))
        object.__setattr__(self, "origin", _as_triple(self.origin, "origin"))
        direction = tuple(float(v) for v in np.asarray(self.direction, dtype=float).ravel())
        if len(direction) != 9:
            raise ValueError(f"direction needs 9 values, got {len(direction)}")
        object.__setattr__(self, "direction", direction)
        if any(s < 1 for s in self.size):
            raise ValueError(f"size must be positive, got {self.size}")
        if any(not np.isfinite(s) or s <= 0 for s in self.spacing):
            raise ValueError(f"spacing must be positive, got {self.spacing}")
        if abs(abs(np.linalg.det(self.direction_matrix)) - 1.0) > 1e-3:
            raise ValueError(f"direction is not orthonormal: {self.direction}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_matrix(
        cls,
        size: Sequence[int],
        spacing: Sequence[float],
        origin: Sequence[float],
        direction_matrix: np.ndarray,
    ) -> "Geometry":
        """Build from a 3x3 direction matrix (columns = axis directions)."""
        return cls(tuple(size), tuple(spacing), tuple(origin), tuple(np.asarray(direction_matrix).ravel()))

    @classmethod
    def for_array(cls, shape_zyx: Sequence[int], **kwargs) -> "Geometry":
        """Geometry for a ``(z, y, x)`` array (or ``(y, x)`` for a 2D image)."""
        shape = tuple(int(s) for s in shape_zyx)
        if len(shape) == 2:
            shape = (1, *shape)
        return cls(size=(shape[2], shape[1], shape[0]), **kwargs)

    def replace(self, **changes) -> "Geometry":
        """A copy with some fields changed."""
        fields = {"size": self.size, "spacing": self.spacing, "origin": self.origin, "direction": self.direction}
        fields.update(changes)
        return Geometry(**fields)

    # ------------------------------------------------------------------ derived values
    @property
    def shape(self) -> tuple[int, int, int]:
        """NumPy shape ``(z, y, x)`` of an array on this grid."""
        return (self.size[2], self.size[1], self.size[0])

    @property
    def direction_matrix(self) -> np.ndarray:
        """3x3 matrix whose columns are the world directions of the i, j, k axes."""
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    @property
    def index_to_world_matrix(self) -> np.ndarray:
        """4x4 homogeneous matrix mapping (i, j, k, 1) to (L, P, S, 1)."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.direction_matrix * np.asarray(self.spacing)[None, :]
        matrix[:3, 3] = self.origin
        return matrix

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))

    @property
    def is_2d(self) -> bool:
        return self.size[2] == 1

    # ------------------------------------------------------------------ conversions
    def index_to_world(self, index: np.ndarray | Sequence[float]) -> np.ndarray:
        """World LPS mm of continuous indices ``(i, j, k)``; accepts shape (3,) or (N, 3)."""
        idx = np.asarray(index, dtype=float)
        world = idx @ (self.direction_matrix * np.asarray(self.spacing)[None, :]).T + np.asarray(self.origin)
        return world

    def world_to_index(self, world: np.ndarray | Sequence[float]) -> np.ndarray:
        """Continuous indices ``(i, j, k)`` of world LPS mm points; shape (3,) or (N, 3)."""
        pts = np.asarray(world, dtype=float) - np.asarray(self.origin)
        # direction is orthonormal, so its inverse is its transpose.
        return (pts @ self.direction_matrix) / np.asarray(self.spacing)

    def world_to_voxel(self, world: np.ndarray | Sequence[float]) -> np.ndarray:
        """Nearest integer voxel indices ``(i, j, k)`` of world points (may lie outside)."""
        return np.rint(self.world_to_index(world)).astype(np.int64)

    def contains_index(self, index: np.ndarray | Sequence[float]) -> np.ndarray | bool:
        """Whether integer-rounded indices fall inside the grid."""
        idx = np.rint(np.asarray(index, dtype=float))
        inside = np.all((idx >= 0) & (idx < np.asarray(self.size)), axis=-1)
        return bool(inside) if np.ndim(inside) == 0 else inside

    def corners_world(self) -> np.ndarray:
        """World positions of the 8 corner voxel centres, shape (8, 3)."""
        last = np.asarray(self.size) - 1
        corners = np.array([[i, j, k] for k in (0, last[2]) for j in (0, last[1]) for i in (0, last[0])], float)
        return self.index_to_world(corners)

    def world_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned (min, max) world box of the voxel centres."""
        corners = self.corners_world()
        return corners.min(axis=0), corners.max(axis=0)

    # ------------------------------------------------------------------ orientation
    def orientation_code(self) -> str:
        """Closest anatomical orientation, e.g. ``"LPS"`` for a standard DICOM axial stack.

        Each letter is the world direction towards which that index axis increases
        (ITK/DICOM convention; the identity direction is ``"LPS"``).
        """
        letters = []
        matrix = self.direction_matrix
        for axis in range(3):
            column = matrix[:, axis]
            world_axis = int(np.argmax(np.abs(column)))
            letters.append(_POSITIVE_LETTERS[world_axis] if column[world_axis] > 0 else _NEGATIVE_LETTERS[world_axis])
        return "".join(letters)

    def is_oblique(self, tolerance: float = OBLIQUE_COSINE_TOLERANCE) -> bool:
        """True when any axis is not aligned with a world axis (beyond ``tolerance``)."""
        matrix = np.abs(self.direction_matrix)
        return bool(np.any(1.0 - matrix.max(axis=0) > tolerance))

    def orientation_label(self) -> str:
        """``"oblique"`` for tilted grids, otherwise the orientation code."""
        return "oblique" if self.is_oblique() else self.orientation_code()

    def closest_axis_permutation(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """For each world axis (L, P, S): the index axis closest to it and its sign.

        Returns ``(axes, signs)`` with ``axes[w]`` the index axis (0=i, 1=j, 2=k) that
        runs most nearly along world axis ``w`` and ``signs[w]`` = +1 if the index
        increases towards L/P/S, -1 otherwise. Views use this to show oblique volumes
        along their closest anatomical axes.
        """
        matrix = np.abs(self.direction_matrix)
        axes = [-1, -1, -1]
        remaining_world = [0, 1, 2]
        # Greedy assignment by strongest cosine keeps the mapping a permutation.
        for _ in range(3):
            best = max(
                ((w, a) for w in remaining_world for a in range(3) if a not in axes),
                key=lambda wa: matrix[wa[0], wa[1]],
            )
            axes[best[0]] = best[1]
            remaining_world.remove(best[0])
        signs = tuple(1 if self.direction_matrix[w, axes[w]] > 0 else -1 for w in range(3))
        return tuple(axes), signs  # type: ignore[return-value]

    # ------------------------------------------------------------------ comparison
    def is_close(self, other: "Geometry", tolerance: float = 1e-4) -> bool:
        """Same grid within ``tolerance`` (mm for spacing/origin, cosine for direction)."""
        return (
            self.size == other.size
            and np.allclose(self.spacing, other.spacing, rtol=0, atol=tolerance)
            and np.allclose(self.origin, other.origin, rtol=0, atol=tolerance)
            and np.allclose(self.direction, other.direction, rtol=0, atol=tolerance)
        )

    def differences(self, other: "Geometry", tolerance: float = 1e-4) -> list[str]:
        """Human-readable list of what differs from ``other`` (empty when close)."""
        problems = []
        if self.size != other.size:
            problems.append(f"size {other.size} != {self.size}")
        if not np.allclose(self.spacing, other.spacing, rtol=0, atol=tolerance):
            problems.append(f"spacing {_fmt(other.spacing)} != {_fmt(self.spacing)}")
        if not np.allclose(self.origin, other.origin, rtol=0, atol=tolerance):
            problems.append(f"origin {_fmt(other.origin)} != {_fmt(self.origin)}")
        if not np.allclose(self.direction, other.direction, rtol=0, atol=tolerance):
            problems.append("direction differs")
        return problems

    def axis_mapping_from(self, other: "Geometry", tolerance: float = 1e-4) -> tuple[tuple[int, ...], tuple[bool, ...]] | None:
        """How ``other`` stores this very grid with its axes permuted and/or reversed, or None.

        Returns ``(axes, reversed)``: index axis ``a`` of this grid is index axis ``axes[a]``
        of ``other``, counted backwards where ``reversed[a]``. Every voxel centre must coincide
        within ``tolerance`` mm (e.g. a label map written bottom-up, or in RAS order by another
        tool, over a DICOM image), so re-indexing is exact and needs no interpolation.
        """
        if sorted(self.size) != sorted(other.size):
            return None
        start = other.world_to_index(self.index_to_world(np.zeros(3)))
        axes, flips = [], []
        for axis in range(3):
            step = other.world_to_index(self.index_to_world(np.eye(3)[axis])) - start
            target = int(np.argmax(np.abs(step)))
            if target in axes or other.size[target] != self.size[axis]:
                return None
            axes.append(target)
            flips.append(bool(step[target] < 0))
        # the two grids are affine: they coincide when the origin and the far end of every
        # axis land on the same world points (within ``tolerance`` mm)
        for axis in (None, 0, 1, 2):
            mine = np.zeros(3)
            if axis is not None:
                mine[axis] = self.size[axis] - 1
            theirs = np.zeros(3)
            for a, (target, flip) in enumerate(zip(axes, flips)):
                theirs[target] = other.size[target] - 1 - mine[a] if flip else mine[a]
            if np.abs(self.index_to_world(mine) - other.index_to_world(theirs)).max() > tolerance:
                return None
        return tuple(axes), tuple(flips)

    def require_match(self, other: "Geometry", what: str = "label map", path: str | None = None) -> None:
        """Raise ``GeometryMismatchError`` unless ``other`` is this grid."""
        problems = self.differences(other)
        if problems:
            raise GeometryMismatchError(
                f"the {what} does not have the image's geometry: " + "; ".join(problems), path
            )

    def to_dict(self) -> dict:
        return {
            "size": list(self.size),
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": list(self.direction),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Geometry":
        return cls(tuple(data["size"]), tuple(data["spacing"]), tuple(data["origin"]), tuple(data["direction"]))


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"
