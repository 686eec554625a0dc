"""Conversions between medviewer's Volume/LabelMap/Geometry and SimpleITK images.

Every layer that calls SimpleITK goes through here so geometry is copied the same
way everywhere. SimpleITK's array view is (z, y, x), like ours.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from medviewer.core.geometry import Geometry
from medviewer.core.labels import LabelMap
from medviewer.core.volume import Volume


def geometry_from_sitk(image: sitk.Image) -> Geometry:
    """Geometry of a 2D or 3D SimpleITK image (2D images get z size 1, spacing 1)."""
    if image.GetDimension() == 2:
        direction = np.eye(3)
        direction[:2, :2] = np.asarray(image.GetDirection()).reshape(2, 2)
        return Geometry(
            (*image.GetSize(), 1),
            (*image.GetSpacing(), 1.0),
            (*image.GetOrigin(), 0.0),
            tuple(direction.ravel()),
        )
    if image.GetDimension() != 3:
        raise ValueError(f"only 2D and 3D images are supported, got {image.GetDimension()}D")
    return Geometry(image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection())


def apply_geometry(image: sitk.Image, geometry: Geometry) -> sitk.Image:
    """Set spacing, origin and direction of a 3D SimpleITK image in place and return it."""
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    return image


def array_to_sitk(array: np.ndarray, geometry: Geometry) -> sitk.Image:
    """A 3D SimpleITK image holding a copy of a (z, y, x) array with ``geometry``."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    if tuple(array.shape) != geometry.shape:
        raise ValueError(f"array shape {array.shape} does not match geometry {geometry.shape}")
    return apply_geometry(sitk.GetImageFromArray(array), geometry)


def volume_to_sitk(volume: Volume) -> sitk.Image:
    return array_to_sitk(volume.array, volume.geometry)


def label_map_to_sitk(label_map: LabelMap) -> sitk.Image:
    return array_to_sitk(label_map.array, label_map.geometry)


def sitk_to_array(image: sitk.Image) -> np.ndarray:
    """(z, y, x) array copy of a 2D or 3D image (2D gets a leading axis of 1)."""
    array = sitk.GetArrayFromImage(image)
    return array[None] if image.GetDimension() == 2 else array


def sitk_to_volume(image: sitk.Image, **kwargs) -> Volume:
    """Volume from a SimpleITK image; extra keyword arguments go to ``Volume``."""
    return Volume(sitk_to_array(image), geometry_from_sitk(image), **kwargs)
