"""Label surfaces: one smoothed, closed triangle mesh per label value, in world LPS mm.

Extraction runs off the UI thread (VTK releases the GIL while filtering). Each
label is cut out of the label map by its bounding box, padded with background so
surfaces touching the image border are closed, meshed with ``vtkSurfaceNets3D``
(smoothing constrained to the voxel it came from) and moved to world coordinates
with the image's direction and origin. After an edit only the labels present in,
or previously reaching into, the changed region are rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy import ndimage
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkPolyDataNormals, vtkSurfaceNets3D

from medviewer.core.document import Region
from medviewer.core.geometry import Geometry
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback

#: Smoothing passes of the surface-nets mesh (0 gives the voxel staircase).
DEFAULT_SMOOTHING_ITERATIONS = 16


@dataclass
class LabelSurface:
    """The mesh of one label value.

    Attributes
    ----------
    value:
        Label value.
    polydata:
        Triangles with point normals, points in world LPS mm; ``None`` when the
        label has no voxels any more (its surface should be removed).
    voxel_box:
        ``(z, y, x)`` slices enclosing the label's voxels, ``None`` when empty.
        Kept by the view to know which labels an edited region can touch.
    """

    value: int
    polydata: vtkPolyData | None
    voxel_box: Region | None


def label_voxel_boxes(array: np.ndarray) -> dict[int, Region]:
    """Bounding ``(z, y, x)`` slices of every non-zero label value, in one pass."""
    found = ndimage.find_objects(array)
    return {value: box for value, box in enumerate(found, start=1) if box is not None}


def _union(first: Region, second: Region) -> Region:
    return tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(first, second))


def _intersects(first: Region, second: Region) -> bool:
    return all(a.start < b.stop and b.start < a.stop for a, b in zip(first, second))


def _normalise_region(region: Region, shape: tuple[int, ...]) -> Region:
    return tuple(slice(*s.indices(n)[:2]) for s, n in zip(region, shape))


def labels_to_rebuild(
    array: np.ndarray, regions: Iterable[Region], known_boxes: dict[int, Region]
) -> dict[int, Region | None]:
    """Labels an edit of ``regions`` may have changed, each with a box to search it in.

    A label is affected when it is present in a changed region now or its last known
    box overlaps one (it may have been erased there). Its search box is the union of
    its known box and the changed regions; ``None`` means "search the whole array"
    (a label that appeared without a known box may also lie elsewhere).
    """
    affected: dict[int, Region | None] = {}
    for region in regions:
        region = _normalise_region(region, array.shape)
        present = {int(v) for v in np.unique(array[region]) if v != 0}
        touched = {value for value, box in known_boxes.items() if _intersects(box, region)}
        for value in present | touched:
            if value not in known_boxes:
                affected[value] = None
            elif value not in affected:
                affected[value] = _union(known_boxes[value], region)
            elif affected[value] is not None:
                affected[value] = _union(affected[value], region)
    return affected


def _tight_box(mask: np.ndarray, offset: tuple[int, int, int]) -> Region | None:
    """Slices (in the full array) around the true voxels of ``mask`` cut at ``offset``."""
    box = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        if hits.size == 0:
            return None
        box.append(slice(offset[axis] + int(hits[0]), offset[axis] + int(hits[-1]) + 1))
    return tuple(box)


def surface_from_mask(
    mask: np.ndarray,
    geometry: Geometry,
    start_index_zyx: tuple[int, int, int],
    smoothing_iterations: int = DEFAULT_SMOOTHING_ITERATIONS,
) -> vtkPolyData:
    """Closed smoothed mesh of a boolean ``(z, y, x)`` block whose first voxel is at ``start_index_zyx``.

    Points come out in world LPS mm on ``geometry``; normals point outwards.
    """
    padded = np.zeros(tuple(n + 2 for n in mask.shape), dtype=np.uint8)
    padded[1:-1, 1:-1, 1:-1] = mask
    spacing = np.asarray(geometry.spacing)
    first_index_ijk = np.asarray(start_index_zyx[::-1], float) - 1.0  # the padding voxel

    image = vtkImageData()
    image.SetDimensions(padded.shape[2], padded.shape[1], padded.shape[0])
    image.SetSpacing(*spacing)
    image.SetOrigin(*(spacing * first_index_ijk))
    scalars = numpy_to_vtk(padded.reshape(-1), deep=False)
    image.GetPointData().SetScalars(scalars)

    nets = vtkSurfaceNets3D()
    nets.SetInputData(image)
    nets.SetLabel(0, 1)
    nets.SetBackgroundLabel(0)
    nets.SetOutputMeshTypeToTriangles()
    nets.SetSmoothing(smoothing_iterations > 0)
    nets.SetNumberOfIterations(max(int(smoothing_iterations), 1))
    nets.Update()
    mesh = vtkPolyData()
    mesh.ShallowCopy(nets.GetOutput())
    if mesh.GetNumberOfPoints() == 0:
        return mesh

    # Surface nets worked in spacing-scaled index space; finish the map to world.
    scaled = vtk_to_numpy(mesh.GetPoints().GetData()).astype(np.float64)
    world = scaled @ geometry.direction_matrix.T + np.asarray(geometry.origin)
    mesh.GetPoints().SetData(numpy_to_vtk(world, deep=True))
    mesh.GetCellData().Initialize()

    normals = vtkPolyDataNormals()
    normals.SetInputData(mesh)
    normals.ComputePointNormalsOn()
    normals.ComputeCellNormalsOff()
    normals.SplittingOff()
    normals.ConsistencyOff()
    normals.AutoOrientNormalsOff()
    normals.Update()
    result = vtkPolyData()
    result.ShallowCopy(normals.GetOutput())

    # Outward normals give (n . (p - centre)) > 0 summed over a closed surface.
    normal_array = vtk_to_numpy(result.GetPointData().GetNormals())
    if np.einsum("ij,ij->", normal_array, world - world.mean(axis=0)) < 0:
        normal_array *= -1.0
        result.GetPointData().GetNormals().Modified()
    return result


def label_surface(
    array: np.ndarray,
    geometry: Geometry,
    value: int,
    search_box: Region | None = None,
    smoothing_iterations: int = DEFAULT_SMOOTHING_ITERATIONS,
) -> LabelSurface:
    """Mesh of one label value, looking for its voxels inside ``search_box`` (all when None)."""
    search_box = search_box or tuple(slice(0, n) for n in array.shape)
    offset = tuple(s.start for s in search_box)
    mask = array[search_box] == value
    box = _tight_box(mask, offset)
    if box is None:
        return LabelSurface(int(value), None, None)
    local = tuple(slice(b.start - o, b.stop - o) for b, o in zip(box, offset))
    polydata = surface_from_mask(mask[local], geometry, tuple(b.start for b in box), smoothing_iterations)
    return LabelSurface(int(value), polydata, box)


def extract_label_surfaces(
    array: np.ndarray,
    geometry: Geometry,
    regions: list[Region] | None = None,
    known_boxes: dict[int, Region] | None = None,
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
    smoothing_iterations: int = DEFAULT_SMOOTHING_ITERATIONS,
) -> dict[int, LabelSurface]:
    """Meshes of the labels that need (re)building; a job function for a worker thread.

    Parameters
    ----------
    regions:
        Changed ``(z, y, x)`` blocks; ``None`` rebuilds every label.
    known_boxes:
        Voxel boxes of the labels as last built (see ``LabelSurface.voxel_box``).

    Returns
    -------
    dict
        Label value -> ``LabelSurface``; a surface with ``polydata`` None means the
        label is gone. Labels not in the dict are unchanged.
    """
    cancel = cancel or CancelToken()
    known_boxes = dict(known_boxes or {})
    if regions is None:
        boxes = label_voxel_boxes(array)
        plan: dict[int, Region | None] = dict(boxes)
        gone = [value for value in known_boxes if value not in boxes]
    else:
        plan = labels_to_rebuild(array, regions, known_boxes)
        gone = []
    results = {value: LabelSurface(value, None, None) for value in gone}
    for number, (value, search_box) in enumerate(sorted(plan.items()), start=1):
        cancel.raise_if_cancelled()
        results[value] = label_surface(array, geometry, value, search_box, smoothing_iterations)
        progress(number / len(plan), f"surface of label {value}")
    return results
