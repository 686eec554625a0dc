"""Preparing an image for a model and mapping model outputs back: model grids, resampling, normalisation.

The *model grid* is the grid a network sees: the model's spacing and orientation,
covering the same physical region as the input. Everything that moves data
between the input grid and the model grid goes through SimpleITK with explicit
geometry, so a prediction lands at the same world position it was made at, for
oblique and anisotropic inputs too. Training code uses the same functions, so
networks see the same kind of input at training and inference time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from medviewer.ai.manifest import InputSpec, NormalizationSpec
from medviewer.core.geometry import Geometry
from medviewer.imaging.sitk_bridge import array_to_sitk, sitk_to_array

_WORLD_AXIS = {"L": (0, 1.0), "R": (0, -1.0), "P": (1, 1.0), "A": (1, -1.0), "S": (2, 1.0), "I": (2, -1.0)}


def orientation_matrix(code: str) -> np.ndarray:
    """Direction matrix (columns = index axes in world LPS) of an orientation code such as ``"RAS"``.

    Each letter names the world direction towards which that index axis increases,
    as in ``Geometry.orientation_code`` (so ``"LPS"`` is the identity).
    """
    matrix = np.zeros((3, 3))
    for axis, letter in enumerate(code.upper()):
        world_axis, sign = _WORLD_AXIS[letter]
        matrix[world_axis, axis] = sign
    return matrix


def model_grid(geometry: Geometry, spacing: tuple[float, float, float] | None, orientation: str | None) -> Geometry:
    """The grid with the model's spacing and orientation covering the physical extent of ``geometry``.

    Returns ``geometry`` itself when the model keeps the input's spacing and axes.
    The new grid is centred on the input's extent, so resampling there and back does
    not shift anything.
    """
    if spacing is None and orientation is None:
        return geometry
    direction = orientation_matrix(orientation) if orientation else geometry.direction_matrix
    if spacing is None:
        # Keep the input's resolution along whichever input axis is closest to each new axis.
        closeness = np.abs(direction.T @ geometry.direction_matrix)  # [new axis, input axis]
        spacing = tuple(float(geometry.spacing[int(np.argmax(closeness[a]))]) for a in range(3))
    spacing_array = np.asarray(spacing, dtype=float)
    # Physical extent of the input: voxel edges, not centres.
    size = np.asarray(geometry.size, dtype=float)
    edges = np.array([[i, j, k] for k in (-0.5, size[2] - 0.5) for j in (-0.5, size[1] - 0.5) for i in (-0.5, size[0] - 0.5)])
    corners = geometry.index_to_world(edges)
    along_new_axes = corners @ direction  # coordinates along the new axes
    low, high = along_new_axes.min(axis=0), along_new_axes.max(axis=0)
    extent = high - low
    new_size = np.maximum(1, np.ceil(extent / spacing_array - 1e-3)).astype(int)
    if geometry.is_2d:
        # A 2D image stays one slice thick along the axis closest to its normal.
        normal_axis = int(np.argmax(np.abs(direction.T @ geometry.direction_matrix[:, 2])))
        new_size[normal_axis] = 1
    centre = (low + high) / 2.0
    first_centre = centre - (new_size - 1) / 2.0 * spacing_array
    origin = direction @ first_centre
    return Geometry.from_matrix(tuple(int(s) for s in new_size), tuple(spacing_array), tuple(origin), direction)


def _shrink_factors(source: Geometry, target: Geometry) -> list[int]:
    """Integer block-averaging factors per input axis that keep the input finer than the target."""
    closeness = np.abs(source.direction_matrix.T @ target.direction_matrix)  # [input axis, target axis]
    factors = []
    for axis in range(3):
        target_spacing = target.spacing[int(np.argmax(closeness[axis]))]
        factor = int(np.floor(target_spacing / source.spacing[axis] + 1e-6))
        factors.append(max(1, min(factor, source.size[axis])))
    return factors


def resample_image(
    array: np.ndarray,
    geometry: Geometry,
    target: Geometry,
    default_value: float = 0.0,
    antialias: bool = True,
) -> np.ndarray:
    """Linearly resample a (z, y, x) image onto ``target``; float32 result.

    When the target is much coarser, the image is first block-averaged by integer
    factors (SimpleITK BinShrink) so noise and thin structures are averaged instead of
    aliased, and the cost stays low for large inputs.
    """
    if target.is_close(geometry, 1e-6):
        return np.asarray(array, dtype=np.float32)
    image = array_to_sitk(np.asarray(array, dtype=np.float32), geometry)
    if antialias:
        factors = _shrink_factors(geometry, target)
        if any(f > 1 for f in factors):
            image = sitk.BinShrink(image, factors)
    result = sitk.Resample(
        image,
        list(target.size),
        sitk.Transform(),
        sitk.sitkLinear,
        list(target.origin),
        list(target.spacing),
        list(target.direction),
        float(default_value),
        sitk.sitkFloat32,
    )
    return sitk_to_array(result)


def resample_labels(array: np.ndarray, geometry: Geometry, target: Geometry) -> np.ndarray:
    """Nearest-neighbour resampling of an integer (z, y, x) label array onto ``target``."""
    if target.is_close(geometry, 1e-6):
        return np.asarray(array)
    image = array_to_sitk(np.asarray(array), geometry)
    result = sitk.Resample(
        image,
        list(target.size),
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        list(target.origin),
        list(target.spacing),
        list(target.direction),
        0,
        image.GetPixelID(),
    )
    return sitk_to_array(result)


# ---------------------------------------------------------------------------- normalisation
@dataclass(frozen=True)
class IntensityMap:
    """The affine map ``normalised = (value - shift) * scale + low`` with optional clipping to ``output_range``.

    Every normalisation method is such a map once its statistics are known, which
    makes the normalisation of an enhancement model's output exactly invertible.
    """

    shift: float
    scale: float
    low: float
    output_range: tuple[float, float] | None

    def apply(self, array: np.ndarray) -> np.ndarray:
        out = (np.asarray(array, dtype=np.float32) - np.float32(self.shift)) * np.float32(self.scale) + np.float32(self.low)
        if self.output_range is not None:
            np.clip(out, self.output_range[0], self.output_range[1], out=out)
        return out

    def invert(self, array: np.ndarray) -> np.ndarray:
        return (np.asarray(array, dtype=np.float32) - np.float32(self.low)) / np.float32(self.scale) + np.float32(self.shift)


def fit_normalization(spec: NormalizationSpec, array: np.ndarray) -> IntensityMap:
    """The intensity map ``spec`` gives for this image (statistics from a strided sample for speed)."""
    low_out, high_out = spec.output_range
    clip_range = spec.output_range if spec.clip else None
    if spec.method == "ct_window":
        lo, hi = spec.window  # type: ignore[misc]
        return IntensityMap(lo, (high_out - low_out) / (hi - lo), low_out, clip_range)
    if spec.method == "none":
        return IntensityMap(0.0, 1.0, 0.0, None)
    sample = _sample(array)
    if spec.method == "percentile":
        lo, hi = (float(v) for v in np.percentile(sample, spec.percentiles))
        if hi <= lo:
            hi = lo + 1.0
        return IntensityMap(lo, (high_out - low_out) / (hi - lo), low_out, clip_range)
    mean = float(sample.mean())
    std = float(sample.std())
    return IntensityMap(mean, 1.0 / std if std > 1e-6 else 1.0, 0.0, clip_range if spec.clip else None)


def _sample(array: np.ndarray, target_count: int = 2_000_000) -> np.ndarray:
    step = max(1, int(round((array.size / target_count) ** (1 / 3))))
    return np.asarray(array[::step, ::step, ::step], dtype=np.float64)


@dataclass
class PreparedInput:
    """An image on the model grid, normalised, with what is needed to map outputs back."""

    array: np.ndarray  # (z, y, x) float32 on ``grid``
    grid: Geometry
    source_geometry: Geometry
    intensity: IntensityMap
    background: float  # normalised value used to pad outside the image


def prepare_input(array: np.ndarray, geometry: Geometry, spec: InputSpec) -> PreparedInput:
    """Resample to the model grid and normalise, as both inference and training do."""
    grid = model_grid(geometry, spec.spacing, spec.orientation)
    # Outside the image is "nothing": the lowest value (air in CT).
    fill = float(np.min(array)) if np.asarray(array).size else 0.0
    resampled = resample_image(array, geometry, grid, default_value=fill)
    intensity = fit_normalization(spec.normalization, resampled if spec.normalization.method in ("zscore", "percentile") else array)
    normalised = intensity.apply(resampled)
    background = float(intensity.apply(np.array([fill], dtype=np.float32))[0])
    return PreparedInput(normalised, grid, geometry, intensity, background)
