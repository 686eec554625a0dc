"""nnU-Net v2 inference: preprocessing, Gaussian sliding window, mirroring, fold ensembling, labels.

It follows nnU-Net's ``nnUNetPredictor``: the preprocessed image is padded to at least one patch,
covered by windows half a patch apart (``tile_step_size`` 0.5), each window's logits are weighted
by a Gaussian (sigma = patch / 8) and, with mirroring on, averaged over every flip of the axes the
trainer allowed. The folds' logits are averaged, resampled back to the study (linear), turned into
labels (argmax, or sigmoid regions painted in ``regions_class_order``) and put back on the
study's own grid.

nnU-Net accumulates the weighted logits, the weight sum, the fold average and the resampled
logits in float16 (its Gaussian is scaled to a peak of 10 for that). Where only one window's far
edge covers a voxel, those weights are float16 subnormals and the result there is noticeably
rounded; ``half_precision=True`` (the default) does the same arithmetic so results match what
nnU-Net itself produces, ``False`` accumulates in float32 instead.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from medviewer.ai import devices
from medviewer.ai.folder_runs import run_label_model
from medviewer.ai.nnunet.folder import NnUNetModel, load_nnunet_model
from medviewer.ai.nnunet.network import build_network, fit_weights, load_checkpoint
from medviewer.ai.nnunet.preprocessing import Preprocessed, logits_to_study_shape, preprocess, uncrop_and_transpose
from medviewer.ai.results import InferenceOptions, InferenceResult
from medviewer.core.errors import ModelError, OperationCancelled
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback
from medviewer.core.volume import Volume

TILE_STEP_SIZE = 0.5
GAUSSIAN_SIGMA_SCALE = 1.0 / 8
#: nnU-Net's Gaussian peak when accumulating in float16
HALF_PRECISION_PEAK = 10.0


@lru_cache(maxsize=4)
def gaussian_weights(patch: tuple[int, ...], half_precision: bool = False) -> np.ndarray:
    """The window weight map: a Gaussian centred on the patch, never exactly zero.

    float32 with peak 1, or (``half_precision``) float16 with peak 10 as nnU-Net keeps it.
    """
    delta = np.zeros(patch)
    delta[tuple(s // 2 for s in patch)] = 1
    weights = gaussian_filter(delta, [s * GAUSSIAN_SIGMA_SCALE for s in patch], 0, mode="constant", cval=0)
    peak = HALF_PRECISION_PEAK if half_precision else 1.0
    weights = (weights / (weights.max() / peak)).astype(np.float16 if half_precision else np.float32)
    weights[weights == 0] = weights[weights > 0].min()
    return weights


def window_starts(size: int, patch: int, step: float = TILE_STEP_SIZE) -> list[int]:
    """Window start positions along one axis: evenly spread, at most ``step * patch`` apart, ends touching."""
    count = int(math.ceil((size - patch) / (patch * step))) + 1
    if count == 1:
        return [0]
    spacing = (size - patch) / (count - 1)
    return [int(round(spacing * i)) for i in range(count)]


def _pad_to_patch(data: np.ndarray, patch: tuple[int, ...]) -> tuple[np.ndarray, tuple[slice, ...]]:
    """Zero-pad the trailing axes of ``data`` to at least ``patch``, half before and half after.

    Returns the padded array and the slices of the spatial axes (all but the first) that undo it.
    """
    spatial = data.shape[-len(patch):]
    pads = [(0, 0)] * (data.ndim - len(patch))
    keep = [slice(None)] * (data.ndim - 1 - len(patch))  # 2D patches: the slice axis is never padded
    for size, want in zip(spatial, patch):
        extra = max(0, want - size)
        pads.append((extra // 2, extra - extra // 2))
        keep.append(slice(extra // 2, extra // 2 + size))
    if not any(p for pair in pads for p in pair):
        return data, tuple(keep)
    return np.pad(data, pads, mode="constant", constant_values=0), tuple(keep)


#: reader/writers whose arrays are the study's voxel order (SimpleITK's (z, y, x)); NibabelIOWithReorient
#: first turns the image to the closest RAS axes, as nibabel's as_closest_canonical does
_VOXEL_ORDER_READERS = ("SimpleITKIO", "SimpleITKWithSpacingIO", "NibabelIO", "Tiff3DIO", "NaturalImage2DIO")
_RAS_READERS = ("NibabelIOWithReorient",)


def ras_reorientation(direction: np.ndarray) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]]:
    """For index axes (i, j, k): which source axis becomes canonical axis 0, 1, 2 (towards R, A, S) and flips."""
    wanted_sign = (-1.0, -1.0, 1.0)  # R, A, S in LPS world coordinates
    order = [0, 0, 0]
    flips = [False, False, False]
    taken: set[int] = set()
    for axis in np.argsort(-np.abs(direction).max(axis=0)):  # the most clearly aligned axes first
        column = np.abs(direction[:, axis]).copy()
        column[list(taken)] = -1
        world = int(np.argmax(column))
        taken.add(world)
        order[world] = int(axis)
        flips[world] = bool(np.sign(direction[world, axis]) != wanted_sign[world])
    return tuple(order), tuple(flips)  # type: ignore[return-value]


def _to_ras(array_zyx: np.ndarray, spacing_zyx: tuple, direction: np.ndarray):
    order, flips = ras_reorientation(direction)
    ijk = np.moveaxis(array_zyx, (-1, -2, -3), (-3, -2, -1))  # (..., i, j, k)
    lead = ijk.ndim - 3
    ijk = ijk.transpose((*range(lead), *[lead + a for a in order]))
    ijk = np.flip(ijk, [lead + t for t in range(3) if flips[t]]) if any(flips) else ijk
    spacing_ijk = spacing_zyx[::-1]
    canonical_spacing = tuple(spacing_ijk[a] for a in order)
    return np.ascontiguousarray(np.moveaxis(ijk, (-1, -2, -3), (-3, -2, -1))), canonical_spacing[::-1], (order, flips)


def _from_ras(array_zyx: np.ndarray, how) -> np.ndarray:
    order, flips = how
    ijk = np.moveaxis(array_zyx, (-1, -2, -3), (-3, -2, -1))
    lead = ijk.ndim - 3
    ijk = np.flip(ijk, [lead + t for t in range(3) if flips[t]]) if any(flips) else ijk
    inverse = np.argsort(order)
    ijk = ijk.transpose((*range(lead), *[lead + int(a) for a in inverse]))
    return np.ascontiguousarray(np.moveaxis(ijk, (-1, -2, -3), (-3, -2, -1)))


@dataclass
class _Fold:
    name: str
    weights: dict


class NnUNetPredictor:
    """An nnU-Net trained-model folder loaded for inference (network built once, folds' weights in memory)."""

    def __init__(self, model: NnUNetModel | str | Path) -> None:
        self.model = model if isinstance(model, NnUNetModel) else load_nnunet_model(model)
        self.folds: list[_Fold] = []
        self.mirror_axes: tuple[int, ...] | None = None
        for number, path in enumerate(self.model.checkpoints):
            checkpoint = load_checkpoint(path)
            if number == 0:
                axes = checkpoint.get("inference_allowed_mirroring_axes")
                self.mirror_axes = tuple(int(a) for a in axes) if axes is not None else None
            self.folds.append(_Fold(path.parent.name, checkpoint["network_weights"]))
        model_ = self.model
        self.network = build_network(model_.configuration["architecture"], len(model_.channel_names),
                                     model_.labels.heads, model_.plans_path)
        for fold, path in zip(self.folds, model_.checkpoints):
            fold.weights = fit_weights(self.network, fold.weights, path)
        self.network.load_state_dict(self.folds[0].weights)
        self.device = torch.device("cpu")

    # ------------------------------------------------------------------ sliding window
    def _windows(self, shape: tuple[int, ...]) -> list[tuple]:
        patch = self.model.patch_size
        if len(patch) == 2:  # 2D: every slice along the first axis, windows in-plane
            starts = [window_starts(s, p) for s, p in zip(shape[1:], patch)]
            return [(d, *[slice(a, a + p) for a, p in zip(corner, patch)])
                    for d in range(shape[0]) for corner in itertools.product(*starts)]
        starts = [window_starts(s, p) for s, p in zip(shape, patch)]
        return [tuple(slice(a, a + p) for a, p in zip(corner, patch)) for corner in itertools.product(*starts)]

    def _forward(self, batch: torch.Tensor, mirroring: bool, autocast) -> torch.Tensor:
        with autocast:
            prediction = self.network(batch).float()
            axes = self.mirror_axes if mirroring else None
            if axes:
                axes = [a + 2 for a in axes if a + 2 < batch.ndim]
                flips = [c for n in range(len(axes)) for c in itertools.combinations(axes, n + 1)]
                for flip in flips:
                    prediction += torch.flip(self.network(torch.flip(batch, flip)), flip).float()
                prediction /= len(flips) + 1
        return prediction

    @torch.inference_mode()
    def predict_logits(self, prepared: Preprocessed, options: InferenceOptions | None = None,
                       progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None,
                       mirroring: bool = True, half_precision: bool = True) -> np.ndarray:
        """Fold-averaged logits (heads, *spatial) on the preprocessed grid (float16 or float32, see the module)."""
        options = options or InferenceOptions()
        cancel = cancel or CancelToken()
        patch = self.model.patch_size
        padded, keep = _pad_to_patch(prepared.data, patch)
        windows = self._windows(tuple(padded.shape[1:]))
        batch_size = max(1, options.batch_size or 1)
        heads = self.model.labels.heads
        weights = torch.from_numpy(gaussian_weights(tuple(patch), half_precision))
        dtype = torch.float16 if half_precision else torch.float32
        image = torch.from_numpy(np.ascontiguousarray(padded))
        use_autocast = options.mixed_precision and self.device.type == "cuda"
        autocast = torch.autocast("cuda", dtype=torch.float16) if use_autocast else contextlib.nullcontext()
        total = torch.zeros((heads, *padded.shape[1:]), dtype=dtype)
        steps = len(windows) * len(self.folds)
        done = 0
        for fold in self.folds:
            self.network.load_state_dict(fold.weights)
            self.network.to(self.device).eval()
            logits = torch.zeros_like(total)
            counts = torch.zeros(padded.shape[1:], dtype=dtype)
            for start in range(0, len(windows), batch_size):
                cancel.raise_if_cancelled()
                chunk = windows[start:start + batch_size]
                batch = torch.stack([image[(slice(None), *w)] for w in chunk]).to(self.device)
                try:
                    out = self._forward(batch, mirroring, autocast).cpu()
                except (OperationCancelled, ModelError):
                    raise
                except Exception as error:  # noqa: BLE001 - report the model's failure by name
                    if devices.is_out_of_memory(error):
                        raise
                    raise ModelError(f"the nnU-Net network failed on a window of shape {tuple(batch.shape)}: "
                                     f"{type(error).__name__}: {error}", self.model.folder) from error
                if out.shape[1] != heads or tuple(out.shape[2:]) != tuple(patch):
                    raise ModelError(f"the nnU-Net network returned shape {tuple(out.shape)} for a window of "
                                     f"{tuple(batch.shape)}; expected {heads} channels", self.model.folder)
                for window, prediction in zip(chunk, out):
                    logits[(slice(None), *window)] += prediction * weights
                    counts[window] += weights
                done += len(chunk)
                progress(done / steps, f"fold {fold.name}: window {min(done, steps)}/{steps}")
            total += logits / counts
        if len(self.folds) > 1:
            total /= len(self.folds)
        return total[(slice(None), *keep)].numpy()

    # ------------------------------------------------------------------ the whole prediction
    def predict(self, channels_zyx: np.ndarray, spacing_zyx: tuple[float, float, float],
                options: InferenceOptions | None = None, progress: ProgressCallback = NO_PROGRESS,
                cancel: CancelToken | None = None, mirroring: bool = True,
                probabilities: bool = False, half_precision: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels (z, y, x) for a (channels, z, y, x) array, and optionally the probabilities (heads, z, y, x)."""
        channels_zyx = np.asarray(channels_zyx)
        if channels_zyx.ndim != 4 or channels_zyx.shape[0] != len(self.model.channel_names):
            raise ModelError(f"the model needs {len(self.model.channel_names)} input channel(s) "
                             f"({', '.join(self.model.channel_names)}), got an array of shape {channels_zyx.shape}",
                             self.model.folder)
        progress(0.0, "nnU-Net: preprocessing")
        prepared = preprocess(channels_zyx, spacing_zyx, self.model)
        logits = self.predict_logits(prepared, options, lambda f, m="": progress(0.05 + 0.85 * f, m), cancel,
                                     mirroring, half_precision)
        progress(0.9, "nnU-Net: resampling the prediction back")
        logits = logits_to_study_shape(logits, prepared, self.model).astype(np.float32)
        labels = self.model.labels
        if labels.region_based:
            probs = torch.sigmoid(torch.from_numpy(logits)).numpy()
            segmentation = np.zeros(probs.shape[1:], dtype=np.uint16)
            for head, value in enumerate(labels.regions_class_order):
                segmentation[probs[head] > 0.5] = value
        else:
            probs = torch.softmax(torch.from_numpy(logits), 0).numpy() if probabilities else None
            lookup = np.asarray(labels.values, dtype=np.uint16)
            segmentation = lookup[np.argmax(logits, axis=0)]
        dtype = np.uint8 if segmentation.max(initial=0) < 256 else np.uint16
        segmentation = uncrop_and_transpose(segmentation.astype(dtype), prepared, self.model)
        if not probabilities:
            return np.ascontiguousarray(segmentation), None
        full = uncrop_and_transpose(probs.astype(np.float32), prepared, self.model, fill=0.0)
        if not labels.region_based:  # outside the crop is background, as nnU-Net fills it
            outside = np.ones(prepared.shape_before_cropping, dtype=bool)
            outside[tuple(slice(a, b) for a, b in prepared.bbox)] = False
            full[0][outside.transpose(self.model.transpose_backward)] = 1.0
        return np.ascontiguousarray(segmentation), np.ascontiguousarray(full)

    def predict_volume(self, volume: Volume, options: InferenceOptions | None = None,
                       progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None,
                       mirroring: bool = True) -> np.ndarray:
        """Labels on ``volume``'s own grid, the image read as the plans' ``image_reader_writer`` reads it."""
        reader = str(self.model.plans.get("image_reader_writer") or "SimpleITKIO")
        array = np.asarray(volume.array)[None]
        spacing_zyx = tuple(float(s) for s in volume.geometry.spacing[::-1])
        if reader in _RAS_READERS:
            array, spacing_zyx, how = _to_ras(array, spacing_zyx, volume.geometry.direction_matrix)
            labels, _ = self.predict(array, spacing_zyx, options, progress, cancel, mirroring=mirroring)
            return _from_ras(labels, how)
        if reader not in _VOXEL_ORDER_READERS:
            raise ModelError(f"field 'image_reader_writer' is '{reader}', which medviewer does not know how to "
                             f"mimic (it knows {', '.join(_VOXEL_ORDER_READERS + _RAS_READERS)})",
                             self.model.plans_path)
        labels, _ = self.predict(array, spacing_zyx, options, progress, cancel, mirroring=mirroring)
        return labels

    def to(self, device: torch.device) -> "NnUNetPredictor":
        self.device = torch.device(device)
        self.network.to(self.device)
        return self


class NnUNetRunner:
    """Runs an nnU-Net package the way ``ModelRunner`` runs manifest packages (same result type)."""

    def __init__(self, package) -> None:
        self.package = package
        self.manifest = package.manifest
        self._predictor: NnUNetPredictor | None = None

    @property
    def predictor(self) -> NnUNetPredictor:
        if self._predictor is None:
            self._predictor = NnUNetPredictor(self.package.folder)
        return self._predictor

    def run(self, volume: Volume, progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None,
            options: InferenceOptions | None = None) -> InferenceResult:
        options = options or InferenceOptions()
        cancel = cancel or CancelToken()
        predictor = self.predictor
        result = run_label_model(
            self.manifest, volume, options, progress, "loading the folds",
            lambda device: predictor.to(device).predict_volume(volume, options, progress, cancel, options.mirroring),
        )
        if not options.mirroring:
            result.warnings.append("mirroring (test-time augmentation) was off: faster, slightly less accurate")
        return result
