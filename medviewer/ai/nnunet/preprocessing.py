"""nnU-Net v2's preprocessing and its inverse, in NumPy / SciPy / scikit-image.

Order (as nnU-Net's default preprocessor): transpose the array axes (``transpose_forward``),
crop to the bounding box of the non-zero region, normalise each channel with its scheme, resample
to the configuration's target spacing. Predictions go back in the reverse order: resample the
logits to the cropped shape, turn them into labels, paste them into the full array, transpose back.

Arrays are (channels, *spatial) in the network's axis order; spacings are in the same order.
nnU-Net works in voxel space: the study's origin and direction never enter, so labels land on the
study's own grid, oblique or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_fill_holes, map_coordinates
from skimage.transform import resize

from medviewer.core.errors import ModelError

#: spacing ratio above which nnU-Net resamples the low-resolution axis separately
ANISOTROPY_THRESHOLD = 3.0
SUPPORTED_RESAMPLING = ("resample_data_or_seg_to_shape", "resample_data_or_seg_to_spacing")
NORMALIZATION_SCHEMES = ("CTNormalization", "ZScoreNormalization", "NoNormalization",
                         "RescaleTo01Normalization", "RGBTo01Normalization")


# ---------------------------------------------------------------------------- cropping
def nonzero_bbox(data: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The non-zero mask of all channels (holes filled) and its bounding box ``[(start, stop), ...]``."""
    mask = np.any(data != 0, axis=0)
    mask = binary_fill_holes(mask)
    if not mask.any():  # an empty image: keep it whole rather than cropping to nothing
        return np.ones(data.shape[1:], dtype=bool), [(0, s) for s in data.shape[1:]]
    bbox = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        bbox.append((int(hits[0]), int(hits[-1]) + 1))
    return mask, bbox


def bbox_slices(bbox: list[tuple[int, int]]) -> tuple[slice, ...]:
    return tuple(slice(start, stop) for start, stop in bbox)


# ---------------------------------------------------------------------------- normalisation
def normalize_channel(image: np.ndarray, scheme: str, use_mask: bool, mask: np.ndarray | None,
                      properties: dict | None, plans_path: Path | None = None) -> np.ndarray:
    """One channel normalised with nnU-Net's scheme ``scheme`` (float32, a new array)."""
    eps = 1e-8
    image = np.array(image, dtype=np.float32)
    if scheme == "CTNormalization":
        if not properties or not all(k in properties for k in ("mean", "std", "percentile_00_5", "percentile_99_5")):
            raise ModelError("CTNormalization needs 'foreground_intensity_properties_per_channel' with mean, std, "
                             "percentile_00_5 and percentile_99_5", plans_path)
        np.clip(image, properties["percentile_00_5"], properties["percentile_99_5"], out=image)
        image -= properties["mean"]
        image /= max(properties["std"], eps)
        return image
    if scheme == "ZScoreNormalization":
        if use_mask and mask is not None:
            values = image[mask]
            mean, std = values.mean(), values.std()
            image[mask] = (values - mean) / max(std, eps)
        else:
            mean, std = image.mean(), image.std()
            image -= mean
            image /= max(std, eps)
        return image
    if scheme == "NoNormalization":
        return image
    if scheme == "RescaleTo01Normalization":
        image -= image.min()
        image /= max(image.max(), eps)
        return image
    if scheme == "RGBTo01Normalization":
        image /= 255.0
        return image
    raise ModelError(f"normalisation scheme '{scheme}' is not one medviewer knows ({', '.join(NORMALIZATION_SCHEMES)})",
                     plans_path)


# ---------------------------------------------------------------------------- resampling
def new_shape_for(shape: tuple[int, ...], spacing: tuple[float, ...], new_spacing: tuple[float, ...]) -> tuple[int, ...]:
    """The shape after resampling ``shape`` from ``spacing`` to ``new_spacing`` (nnU-Net rounds per axis)."""
    return tuple(int(round(s / n * k)) for s, n, k in zip(spacing, new_spacing, shape))


def _low_resolution_axis(spacing: tuple[float, ...]) -> int | None:
    axes = np.flatnonzero(np.isclose(np.max(spacing) / np.asarray(spacing, dtype=float), 1.0, rtol=0, atol=0))
    return int(axes[0]) if len(axes) == 1 else None


def separate_axis(current_spacing: tuple[float, ...], new_spacing: tuple[float, ...],
                  force_separate_z: bool | None, threshold: float = ANISOTROPY_THRESHOLD) -> int | None:
    """The axis resampled on its own (the anisotropic one), or ``None`` for a plain 3D resize."""
    if force_separate_z is not None:
        return _low_resolution_axis(current_spacing) if force_separate_z else None
    for spacing in (current_spacing, new_spacing):
        if max(spacing) / min(spacing) > threshold:
            return _low_resolution_axis(spacing)
    return None


def resample_channels(data: np.ndarray, new_shape: tuple[int, ...], current_spacing: tuple[float, ...],
                      new_spacing: tuple[float, ...], order: int = 3, order_z: int = 0,
                      force_separate_z: bool | None = None, is_seg: bool = False) -> np.ndarray:
    """Resize every channel of ``data`` to ``new_shape`` as nnU-Net's default resampling does.

    scikit-image's ``resize`` (spline ``order``, edge mode, no anti-aliasing); when one axis is much
    coarser than the others, the slices across it are resized in 2D and that axis is interpolated
    separately with ``order_z`` (nearest by default), which keeps thick slices from smearing.
    """
    if is_seg:
        raise ModelError("resampling segmentations is not needed for inference")
    new_shape = tuple(int(s) for s in new_shape)
    if tuple(data.shape[1:]) == new_shape:
        return data
    axis = separate_axis(current_spacing, new_spacing, force_separate_z) if data.ndim == 4 else None
    out = np.zeros((data.shape[0], *new_shape), dtype=data.dtype)
    for channel in range(data.shape[0]):
        values = data[channel].astype(float, copy=False)
        if axis is None:
            out[channel] = resize(values, new_shape, order, mode="edge", anti_aliasing=False)
            continue
        in_plane = tuple(s for a, s in enumerate(new_shape) if a != axis)
        moved = np.moveaxis(values, axis, 0)
        slices = np.stack([resize(s, in_plane, order, mode="edge", anti_aliasing=False) for s in moved])
        slices = np.moveaxis(slices, 0, axis)
        if slices.shape[axis] == new_shape[axis]:
            out[channel] = slices
            continue
        # Pixel-centre aligned coordinates along every axis (only the separate axis actually changes).
        grids = np.meshgrid(*[(np.arange(n) + 0.5) * (o / n) - 0.5 for o, n in zip(slices.shape, new_shape)],
                            indexing="ij")
        out[channel] = map_coordinates(slices, np.stack(grids), order=order_z, mode="nearest")
    return out


def resampling_arguments(configuration: dict, which: str, plans_path: Path | None) -> dict:
    """``order``, ``order_z`` and ``force_separate_z`` for ``which`` ("data" or "probabilities")."""
    name = configuration.get(f"resampling_fn_{which}", "resample_data_or_seg_to_shape")
    if name not in SUPPORTED_RESAMPLING:
        raise ModelError(f"field 'resampling_fn_{which}' names '{name}', which medviewer does not implement "
                         f"(it knows {', '.join(SUPPORTED_RESAMPLING)})", plans_path)
    kwargs = dict(configuration.get(f"resampling_fn_{which}_kwargs") or {})
    return {"order": int(kwargs.get("order", 3 if which == "data" else 1)), "order_z": int(kwargs.get("order_z", 0)),
            "force_separate_z": kwargs.get("force_separate_z")}


# ---------------------------------------------------------------------------- the whole step
@dataclass
class Preprocessed:
    """The network's input and what is needed to put its output back on the study's grid."""

    data: np.ndarray  # (channels, *spatial) float32 at the target spacing, network axis order
    shape_before_cropping: tuple[int, ...]
    bbox: list[tuple[int, int]]
    shape_after_cropping: tuple[int, ...]
    spacing: tuple[float, ...]  # the study's spacing in network axis order
    target_spacing: tuple[float, ...]


def preprocess(channels_zyx: np.ndarray, spacing_zyx: tuple[float, float, float], model) -> Preprocessed:
    """nnU-Net's preprocessing of a (channels, z, y, x) study array for ``model`` (an ``NnUNetModel``)."""
    transpose = model.transpose_forward
    data = np.asarray(channels_zyx, dtype=np.float32).transpose((0, *[a + 1 for a in transpose]))
    spacing = tuple(float(spacing_zyx[a]) for a in transpose)
    shape_before = tuple(data.shape[1:])
    mask, bbox = nonzero_bbox(data)
    data = data[(slice(None), *bbox_slices(bbox))]
    mask = mask[bbox_slices(bbox)]
    target = model.spacing if len(model.spacing) == 3 else (spacing[0], *model.spacing)
    new_shape = new_shape_for(data.shape[1:], spacing, target)
    configuration = model.configuration
    schemes = configuration["normalization_schemes"]
    use_mask = list(configuration.get("use_mask_for_norm") or [False] * len(schemes))
    properties = model.plans.get("foreground_intensity_properties_per_channel") or {}
    normalised = np.empty_like(data)
    for channel, scheme in enumerate(schemes):
        normalised[channel] = normalize_channel(data[channel], scheme, bool(use_mask[channel]), mask,
                                                properties.get(str(channel)), model.plans_path)
    arguments = resampling_arguments(configuration, "data", model.plans_path)
    # 2D configurations keep the first axis' spacing, so that axis is left as it is.
    resampled = resample_channels(normalised, new_shape, spacing, target, **arguments)
    return Preprocessed(resampled.astype(np.float32, copy=False), shape_before, bbox, tuple(data.shape[1:]),
                        spacing, tuple(target))


def logits_to_study_shape(logits: np.ndarray, prepared: Preprocessed, model) -> np.ndarray:
    """Logits (heads, *spatial at target spacing) resampled back to the cropped study shape (same dtype)."""
    arguments = resampling_arguments(model.configuration, "probabilities", model.plans_path)
    return resample_channels(np.asarray(logits), prepared.shape_after_cropping,
                             prepared.target_spacing, prepared.spacing, **arguments)


def uncrop_and_transpose(array: np.ndarray, prepared: Preprocessed, model, fill: float | int = 0) -> np.ndarray:
    """A (..., *cropped) array pasted into the full transposed shape, then put back in (z, y, x) order."""
    lead = array.shape[:-3]
    full = np.full((*lead, *prepared.shape_before_cropping), fill, dtype=array.dtype)
    full[(Ellipsis, *bbox_slices(prepared.bbox))] = array
    backward = model.transpose_backward
    return full.transpose((*range(len(lead)), *[a + len(lead) for a in backward]))
