"""Connected components and smoothing of binary masks (SimpleITK), in physical units.

Masks are boolean (z, y, x) arrays. Editing tools apply these per label on the
bounding block of the label (plus a margin for smoothing) and write the result
back with the overwrite rule.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import SimpleITK as sitk


def radius_in_voxels(radius_mm: float, spacing_xyz: Sequence[float], in_plane_of: int | None = None) -> tuple[int, int, int]:
    """Kernel radius (x, y, z) in voxels for ``radius_mm``; 0 along ``in_plane_of`` (an index axis) for 2D work."""
    radius = [int(round(radius_mm / s)) for s in spacing_xyz]
    if in_plane_of is not None:
        radius[int(in_plane_of)] = 0
    return tuple(radius)  # type: ignore[return-value]


def _to_sitk(mask: np.ndarray) -> sitk.Image:
    return sitk.GetImageFromArray(np.ascontiguousarray(mask, dtype=np.uint8))


def _from_sitk(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayViewFromImage(image).astype(bool)


def label_components(mask: np.ndarray, fully_connected: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Components numbered by decreasing size (1 = largest) and their sizes in voxels.

    6-connected in 3D (4 in 2D) unless ``fully_connected``.
    """
    components = sitk.ConnectedComponent(_to_sitk(mask), bool(fully_connected))
    relabelled = sitk.RelabelComponent(components, sortByObjectSize=True)
    array = sitk.GetArrayFromImage(relabelled)
    sizes = np.bincount(array.ravel())[1:]
    return array, sizes


def remove_small_islands(mask: np.ndarray, min_voxels: int, fully_connected: bool = False) -> np.ndarray:
    """``mask`` without the connected components smaller than ``min_voxels``."""
    components, sizes = label_components(mask, fully_connected)
    keep = np.flatnonzero(sizes >= int(min_voxels)) + 1
    if len(keep) == len(sizes):
        return np.asarray(mask, bool).copy()
    # Components are sorted by size, so the kept ones are 1..len(keep).
    return (components >= 1) & (components <= len(keep))


def keep_largest_component(mask: np.ndarray, fully_connected: bool = False) -> np.ndarray:
    """Only the largest connected component of ``mask`` (ties: the first found)."""
    components, _ = label_components(mask, fully_connected)
    return components == 1


def median_smooth(mask: np.ndarray, radius_xyz: Sequence[int]) -> np.ndarray:
    """Binary median: a voxel is set when most of its (2r+1) box neighbourhood is set."""
    return _from_sitk(
        sitk.BinaryMedian(_to_sitk(mask), radius=[int(r) for r in radius_xyz], foregroundValue=1, backgroundValue=0)
    )


def closing(mask: np.ndarray, radius_xyz: Sequence[int]) -> np.ndarray:
    """Morphological closing with a ball: fills holes and gaps narrower than the kernel."""
    return _from_sitk(
        sitk.BinaryMorphologicalClosing(
            _to_sitk(mask), kernelRadius=[int(r) for r in radius_xyz], kernelType=sitk.sitkBall, foregroundValue=1
        )
    )


def opening(mask: np.ndarray, radius_xyz: Sequence[int]) -> np.ndarray:
    """Morphological opening with a ball: removes spurs and bridges thinner than the kernel."""
    return _from_sitk(
        sitk.BinaryMorphologicalOpening(
            _to_sitk(mask), kernelRadius=[int(r) for r in radius_xyz], kernelType=sitk.sitkBall, foregroundValue=1
        )
    )
