"""Digitally reconstructed radiographs: a PA chest X-ray from a CT volume.

Each detector pixel integrates X-ray attenuation along the antero-posterior axis
(parallel beam, no magnification); the log signal then goes through the kind of
processing a digital radiography system applies (unsharp masking and a contrast
curve) so the result looks like a processed chest radiograph: lungs dark, mediastinum
and spine bright, ribs visible.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medviewer.core.volume import Volume

#: Linear attenuation of water at a radiographic effective energy (about 60 keV), 1/mm.
MU_WATER_PER_MM = 0.0206
#: Bone attenuates relatively more at radiographic than at CT energies (photoelectric effect).
BONE_BOOST = 1.3


def attenuation_per_mm(hu: np.ndarray) -> np.ndarray:
    """Linear attenuation (1/mm) from Hounsfield units, with extra weight for bone."""
    hu = np.asarray(hu, dtype=np.float32)
    relative = np.maximum(hu + 1000.0, 0.0) / 1000.0
    relative += (BONE_BOOST - 1.0) * np.clip(hu - 100.0, 0.0, None) / 1000.0
    return MU_WATER_PER_MM * relative


def projection_along_y(volume: Volume, max_world_y: float | None = None) -> np.ndarray:
    """Attenuation line integrals along the AP (world y) axis, shape (z, x); superior row first.

    ``max_world_y`` leaves out what lies behind the patient (e.g. the CT table). Needs
    an axis-aligned volume with the identity direction (a standard axial CT stack).
    """
    geometry = volume.geometry
    if not np.allclose(geometry.direction_matrix, np.eye(3), atol=1e-6):
        raise ValueError("a radiograph can only be projected from a volume with identity direction")
    array = volume.array
    stop = array.shape[1]
    if max_world_y is not None:
        stop = int(np.clip(np.floor((max_world_y - geometry.origin[1]) / geometry.spacing[1]) + 1, 0, array.shape[1]))
    line_integral = np.zeros((array.shape[0], array.shape[2]), dtype=np.float64)
    for k in range(array.shape[0]):  # slice by slice keeps the float copy small
        line_integral[k] = attenuation_per_mm(array[k, :stop]).sum(axis=0, dtype=np.float64)
    line_integral *= geometry.spacing[1]
    return line_integral[::-1]


def chest_radiograph(
    volume: Volume,
    max_world_y: float | None = None,
    pixel_size_mm: float | None = None,
) -> tuple[np.ndarray, tuple[float, float]]:
    """A processed PA chest radiograph of a CT volume.

    Returns a 12-bit image (uint16, 0..4095, MONOCHROME2: bright = attenuating) with
    rows running from head to feet and columns from the patient's right to left (the
    patient seen from the front), and its (row, column) pixel spacing in mm. Pixels are
    square, ``pixel_size_mm`` (default: the CT's in-plane spacing).
    """
    line_integral = projection_along_y(volume, max_world_y)
    spacing_x, _, spacing_z = volume.geometry.spacing
    pixel = float(pixel_size_mm or spacing_x)
    zoom = (spacing_z / pixel, spacing_x / pixel)
    signal = ndimage.zoom(line_integral, zoom, order=1, mode="nearest")
    # Unsharp masking, as DR systems do, brings out ribs and vessels over the broad body shadow.
    broad = ndimage.gaussian_filter(signal, sigma=25.0 / pixel)
    enhanced = signal + 0.5 * (signal - broad)
    body = signal > 0.3
    low, high = (np.percentile(enhanced[body], [1.0, 99.8]) if body.any() else (0.0, 1.0))
    scaled = np.clip((enhanced - low) / max(high - low, 1e-6), 0.0, 1.0)
    shaped = scaled**0.8  # a gentle film-like contrast curve
    image = np.rint(shaped * 4095.0).astype(np.uint16)
    image[~body] = np.minimum(image[~body], 40)
    return image, (pixel, pixel)


__all__ = ["attenuation_per_mm", "chest_radiograph", "projection_along_y"]
