"""Placing medviewer data in VTK's world: LPS millimetres, exactly as ``Geometry`` says.

VTK image data is given the image's spacing with origin 0 and identity direction,
and the vtkVolume gets a user matrix holding the direction and origin. This works
with every volume mapper (the CPU fallback ignores vtkImageData's direction) and
with picking, and gives ``world = origin + direction @ (spacing * index)``, the
same formula as ``Geometry.index_to_world``.
"""

from __future__ import annotations

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkCommonMath import vtkMatrix4x4

from medviewer.core.geometry import Geometry

#: numpy dtypes the GPU ray caster accepts as they are; others are converted.
_RENDERABLE_DTYPES = {np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32)}

#: Index pairs of a box's 12 edges, for corners ordered as in ``box_corners_index``.
BOX_EDGES = np.array(
    [[0, 1], [2, 3], [4, 5], [6, 7], [0, 2], [1, 3], [4, 6], [5, 7], [0, 4], [1, 5], [2, 6], [3, 7]],
    dtype=np.int64,
)


def renderable_array(array: np.ndarray) -> np.ndarray:
    """A C-contiguous array of a type VTK renders without conversion (a view when possible)."""
    array = np.asarray(array)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    elif array.dtype not in _RENDERABLE_DTYPES:
        array = array.astype(np.float32)
    return np.ascontiguousarray(array)


def image_data_from_array(array: np.ndarray, spacing: tuple[float, float, float]) -> vtkImageData:
    """VTK image sharing the voxels of a ``(z, y, x)`` array, origin 0, the given (x, y, z) spacing.

    The VTK array keeps a reference to the numpy buffer, so no copy is made for
    renderable dtypes.
    """
    array = renderable_array(array)
    image = vtkImageData()
    image.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    image.SetSpacing(*spacing)
    image.SetOrigin(0.0, 0.0, 0.0)
    scalars = numpy_to_vtk(array.reshape(-1), deep=False)
    scalars.SetName("scalars")
    image.GetPointData().SetScalars(scalars)
    return image


def direction_origin_matrix(geometry: Geometry) -> vtkMatrix4x4:
    """4x4 matrix taking spacing-scaled index coordinates to world LPS mm."""
    matrix = np.eye(4)
    matrix[:3, :3] = geometry.direction_matrix
    matrix[:3, 3] = geometry.origin
    vtk_matrix = vtkMatrix4x4()
    vtk_matrix.DeepCopy(matrix.ravel().tolist())
    return vtk_matrix


def points_to_vtk(points: np.ndarray) -> vtkPoints:
    """vtkPoints holding a copy of an (N, 3) array."""
    vtk_points = vtkPoints()
    vtk_points.SetData(numpy_to_vtk(np.ascontiguousarray(points, dtype=np.float64), deep=True))
    return vtk_points


def line_polydata(points: np.ndarray, segments: np.ndarray) -> vtkPolyData:
    """Poly data of straight segments between ``points`` (N, 3) given as index pairs (M, 2)."""
    segments = np.asarray(segments, dtype=np.int64).reshape(-1, 2)
    cells = vtkCellArray()
    offsets = np.arange(0, 2 * len(segments) + 1, 2, dtype=np.int64)
    cells.SetData(numpy_to_vtkIdTypeArray(offsets, deep=True), numpy_to_vtkIdTypeArray(segments.ravel(), deep=True))
    polydata = vtkPolyData()
    polydata.SetPoints(points_to_vtk(points))
    polydata.SetLines(cells)
    return polydata


def box_corners_index(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The 8 corners (i, j, k) of an index-aligned box, i varying fastest."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    return np.array(
        [[i, j, k] for k in (low[2], high[2]) for j in (low[1], high[1]) for i in (low[0], high[0])]
    )


def boxes_polydata(geometry: Geometry, boxes: list[tuple[np.ndarray, np.ndarray]]) -> vtkPolyData:
    """Wireframe of image-aligned boxes given as continuous index (low, high) pairs, in world mm."""
    if not boxes:
        return line_polydata(np.zeros((0, 3)), np.zeros((0, 2)))
    corners = np.concatenate([box_corners_index(low, high) for low, high in boxes])
    world = geometry.index_to_world(corners)
    edges = np.concatenate([BOX_EDGES + 8 * n for n in range(len(boxes))])
    return line_polydata(world, edges)


def slice_plane_outlines(geometry: Geometry, index: np.ndarray) -> list[vtkPolyData]:
    """Rectangles of the three image planes through continuous index ``(i, j, k)``, in world mm.

    Returned in the order: plane of constant k (axial for a standard stack),
    constant j (coronal), constant i (sagittal). The rectangles span voxel centres.
    """
    last = np.asarray(geometry.size, float) - 1.0
    outlines = []
    for axis in (2, 1, 0):
        position = float(np.clip(index[axis], 0.0, last[axis]))
        first, second = [a for a in range(3) if a != axis]
        ring_index = np.zeros((4, 3))
        ring_index[:, axis] = position
        ring_index[:, first] = [0.0, last[first], last[first], 0.0]
        ring_index[:, second] = [0.0, 0.0, last[second], last[second]]
        ring = geometry.index_to_world(ring_index)
        outlines.append(line_polydata(ring, np.array([[0, 1], [1, 2], [2, 3], [3, 0]])))
    return outlines
