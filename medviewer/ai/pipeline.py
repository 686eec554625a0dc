"""The inference pipeline: preprocess -> sliding-window prediction -> postprocess -> original geometry.

``ModelRunner(package).run(volume, progress, cancel)`` is a Qt-free job: progress is
reported per window batch and the cancel token is checked between batches, so a
cancel takes effect within one batch (well under a second for the built-in models on
a CPU). Results always come back on the input's own grid (labels, enhanced images) or
in world millimetres (detections), tagged with the model's name and version.

Devices: ``"auto"`` picks CUDA, then MPS, then the CPU. On CUDA the network runs
under autocast (mixed precision). Out-of-memory errors are retried with smaller
window batches, then on the CPU, and the user is told in ``InferenceResult.warnings``.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from medviewer.ai import devices
from medviewer.ai.bundle.folder import RUNTIME_TYPE as BUNDLE_RUNTIME
from medviewer.ai.manifest import ModelManifest, load_manifest
from medviewer.ai.network_output import check_network_output
from medviewer.ai.nnunet.folder import RUNTIME_TYPE as NNUNET_RUNTIME
from medviewer.ai.preprocess import PreparedInput, prepare_input
from medviewer.ai.registry import ModelPackage
from medviewer.ai.results import InferenceOptions, InferenceResult
from medviewer.ai.runtime import Predictor, error_reason, load_predictor
from medviewer.ai.tasks import task_hooks
from medviewer.core.errors import ModelError, OperationCancelled
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback, scaled_progress
from medviewer.core.volume import Volume

#: Stitched outputs larger than this stay in main memory instead of on the accelerator.
OUTPUT_ON_DEVICE_LIMIT_BYTES = 1 << 30

# Share of the progress bar for each stage.
_PREPARE, _PREDICT, _FINISH = 0.1, 0.85, 1.0


def count_window_batches(
    image_size: tuple[int, ...], roi_size: tuple[int, ...], overlap: float, batch_size: int = 1
) -> int:
    """How many times MONAI's ``sliding_window_inference`` calls the network (batches of ``batch_size`` windows).

    MONAI has no public function for its window layout, so ``sliding_window_inference``
    itself is asked: its windows form a grid (``dense_patch_slices``), one row of starts
    per axis, so the count per axis comes from running it on a 1-D row of that length
    with a predictor that counts windows. That is microseconds per window, where running it
    on the whole shape took seconds for a CT with small patches. The network gets
    ``batch_size`` windows per call, the last call the rest.
    """
    windows = math.prod(_windows_along_axis(size, roi, overlap) for size, roi in zip(image_size, roi_size))
    return max(1, math.ceil(windows / batch_size))


def _windows_along_axis(size: int, roi: int, overlap: float) -> int:
    windows = 0

    def count(window_batch: torch.Tensor) -> torch.Tensor:
        nonlocal windows
        windows += window_batch.shape[0]
        return window_batch

    sliding_window_inference(torch.zeros((1, 1, size)), roi_size=(roi,), sw_batch_size=1, predictor=count,
                             overlap=overlap, mode="constant")
    return windows


def count_windows(image_size: tuple[int, ...], roi_size: tuple[int, ...], overlap: float) -> int:
    """Number of sliding windows MONAI uses for this image, ROI and overlap."""
    return count_window_batches(image_size, roi_size, overlap, 1)


def fit_roi_to_image(roi_size: tuple[int, ...], image_size: tuple[int, ...]) -> tuple[int, ...]:
    """The sliding-window size actually used: the model's patch, shrunk where the image is thinner.

    A patch larger than the image would be padded with background, and networks with
    instance normalisation (MONAI's default) then see statistics they were never trained
    on: a thin slab of lung gave dozens of false nodules. Shrinking keeps the window a
    multiple of the largest power of two (up to 16: four 2x downsamplings) that divides the
    patch, which is what the network's downsampling needs.
    """
    fitted = []
    for roi, size in zip(roi_size, image_size):
        multiple = min(roi & -roi, 16)  # largest power of two dividing roi
        fitted.append(roi if size >= roi else max(multiple, (size // multiple) * multiple))
    return tuple(fitted)


def output_channels(manifest: ModelManifest) -> int:
    """Output channels the network must return for the manifest's ``outputs``."""
    return task_hooks(manifest.task).output_channels(manifest.outputs)


def model_label(manifest: ModelManifest) -> str:
    """How error messages name a model: the ref the user types, and its title."""
    return f"model {manifest.ref}" + (f" ({manifest.title})" if manifest.title else "")


class ModelRunner:
    """Runs one model package; the network is loaded once and kept for later runs."""

    def __init__(self, package: ModelPackage, predictor: Predictor | None = None) -> None:
        self.package = package
        self.manifest = package.manifest
        self._predictor = predictor
        self._folder_runner = None  # nnU-Net or bundle runner, built on first use

    @property
    def predictor(self) -> Predictor:
        if self._predictor is None:
            self._predictor = load_predictor(self.manifest, self.package.folder)
        return self._predictor

    # ------------------------------------------------------------------ the job
    def run(
        self,
        volume: Volume,
        progress: ProgressCallback = NO_PROGRESS,
        cancel: CancelToken | None = None,
        options: InferenceOptions | None = None,
    ) -> InferenceResult:
        """Run the model on ``volume``; a job function once ``volume`` and ``options`` are bound."""
        if self.manifest.runtime.type == NNUNET_RUNTIME:  # an nnU-Net result folder: its own predictor
            if self._folder_runner is None:
                from medviewer.ai.nnunet.predictor import NnUNetRunner

                self._folder_runner = NnUNetRunner(self.package)
            return self._folder_runner.run(volume, progress, cancel, options)
        if self.manifest.runtime.type == BUNDLE_RUNTIME:  # a MONAI bundle: its own transforms and inferer
            if self._folder_runner is None:
                from medviewer.ai.bundle.runner import BundleRunner

                self._folder_runner = BundleRunner(self.package)
            return self._folder_runner.run(volume, progress, cancel, options)
        options = options or InferenceOptions()
        cancel = cancel or CancelToken()
        manifest = self.manifest
        started = time.perf_counter()
        result = InferenceResult(manifest.name, manifest.version, manifest.task)
        if not manifest.accepts_modality(volume.modality):
            result.warnings.append(
                f"{manifest.display_name} is meant for {', '.join(manifest.modality)} images, "
                f"this image is {volume.modality}"
            )
        device, device_warnings = devices.resolve_device(options.device)
        result.warnings += device_warnings
        with devices.cpu_threads(options.cpu_threads), torch.inference_mode():
            progress(0.0, f"{manifest.display_name}: preparing the image")
            prepared = self._prepare(volume)
            cancel.raise_if_cancelled()
            predictor = self.predictor
            output, used_device = self._predict_with_fallback(
                predictor, prepared, device, options, scaled_progress(progress, _PREPARE, _PREDICT), cancel, result.warnings
            )
            cancel.raise_if_cancelled()
            progress(_PREDICT, f"{manifest.display_name}: post-processing")
            self._finish(output, prepared, volume, result)
        result.device = str(used_device)
        result.seconds = time.perf_counter() - started
        progress(_FINISH, f"{manifest.display_name}: done in {result.seconds:.1f} s")
        return result

    # ------------------------------------------------------------------ stages
    def _prepare(self, volume: Volume) -> PreparedInput:
        prepared = prepare_input(volume.array, volume.geometry, self.manifest.input)
        if self.manifest.inference.mode == "whole":
            prepared.array = _fit_to_size(prepared.array, self.manifest.inference.patch_size[::-1], prepared.background)
        return prepared

    def _predict_with_fallback(
        self,
        predictor: Predictor,
        prepared: PreparedInput,
        device: torch.device,
        options: InferenceOptions,
        progress: ProgressCallback,
        cancel: CancelToken,
        warnings: list[str],
    ) -> tuple[np.ndarray, torch.device]:
        """Predict; on out-of-memory halve the batch, then move to the CPU; never crash on memory."""
        batch_size = options.batch_size or self.manifest.inference.batch_size
        while True:
            try:
                output = self._predict_on_device(predictor, prepared, device, batch_size, options, progress, cancel)
                return output, device
            except Exception as error:  # noqa: BLE001 - only memory errors are handled, others re-raised
                if not devices.is_out_of_memory(error):
                    raise
                devices.release_cached_memory(device)
                if batch_size > 1:
                    batch_size = max(1, batch_size // 2)
                    warnings.append(f"out of memory on {device}; retried with {batch_size} window(s) per batch")
                    continue
                if device.type != "cpu":
                    warnings.append(f"out of memory on {device} even with one window per batch; ran on the CPU instead")
                    device = torch.device("cpu")
                    batch_size = options.batch_size or self.manifest.inference.batch_size
                    continue
                raise ModelError(
                    f"not enough memory to run {self.manifest.display_name}, even on the CPU with one window per batch"
                ) from error

    def _predict_on_device(
        self,
        predictor: Predictor,
        prepared: PreparedInput,
        device: torch.device,
        batch_size: int,
        options: InferenceOptions,
        progress: ProgressCallback,
        cancel: CancelToken,
    ) -> np.ndarray:
        """Network output (channels, z, y, x) as float32 NumPy on the model grid."""
        inference = self.manifest.inference
        predictor.to(device)
        image = torch.from_numpy(np.ascontiguousarray(prepared.array))[None, None]
        use_autocast = options.mixed_precision and device.type == "cuda" and predictor.supports_autocast
        autocast = torch.autocast("cuda", dtype=torch.float16) if use_autocast else contextlib.nullcontext()

        def forward(batch: torch.Tensor) -> torch.Tensor:
            """The network on ``batch``; a failing forward or a bad output is a ``ModelError`` naming the model."""
            try:
                with autocast:
                    out = predictor(batch)
            except (OperationCancelled, ModelError):
                raise
            except Exception as error:  # noqa: BLE001 - the network is the package's code: any failure is the model's
                if devices.is_out_of_memory(error):
                    raise  # handled by _predict_with_fallback
                raise ModelError(
                    f"{model_label(self.manifest)}: the network failed on an input of shape {tuple(batch.shape)}: "
                    f"{error_reason(error)}",
                    self.package.folder,
                ) from error
            return check_network_output(
                out, batch, output_channels(self.manifest), spatial=task_hooks(self.manifest.task).spatial_output,
                model=model_label(self.manifest), folder=str(self.package.folder), mixed_precision=use_autocast,
            ).float()

        if inference.mode == "whole":
            cancel.raise_if_cancelled()
            output = forward(image.to(device))
            progress(1.0, "")
            return output.cpu().numpy()[0]

        roi = fit_roi_to_image(tuple(inference.patch_size[::-1]), tuple(image.shape[2:]))  # manifest is (x, y, z)
        batches = count_window_batches(tuple(image.shape[2:]), roi, inference.overlap, batch_size)
        done = 0
        name = self.manifest.display_name

        def predict_batch(window_batch: torch.Tensor) -> torch.Tensor:
            nonlocal done
            cancel.raise_if_cancelled()
            out = forward(window_batch)
            done += 1
            progress(done / batches, f"{name}: window batch {done}/{batches}")
            return out

        voxels = int(np.prod(image.shape[2:]))
        output_bytes = voxels * 4 * (output_channels(self.manifest) + 1)
        output_device = device if output_bytes <= OUTPUT_ON_DEVICE_LIMIT_BYTES else torch.device("cpu")
        output = sliding_window_inference(
            image,
            roi_size=roi,
            sw_batch_size=batch_size,
            predictor=predict_batch,
            overlap=inference.overlap,
            mode=inference.blend,
            sigma_scale=inference.sigma_scale,
            cval=prepared.background,
            sw_device=device,
            device=output_device,
        )
        return output[0].cpu().numpy()

    def _finish(self, output: np.ndarray, prepared: PreparedInput, volume: Volume, result: InferenceResult) -> None:
        """The task's result stage: labels, boxes, probabilities or an image on the input's grid."""
        task_hooks(self.manifest.task).finish(output, prepared, volume, self.manifest, result)


def _fit_to_size(array: np.ndarray, shape: tuple[int, int, int], fill: float) -> np.ndarray:
    """Centre-crop or pad a (z, y, x) array to ``shape`` (whole-image models need a fixed size)."""
    out = np.full(shape, fill, dtype=np.float32)
    source, target = [], []
    for have, want in zip(array.shape, shape):
        if have >= want:
            start = (have - want) // 2
            source.append(slice(start, start + want))
            target.append(slice(0, want))
        else:
            start = (want - have) // 2
            source.append(slice(0, have))
            target.append(slice(start, start + have))
    out[tuple(target)] = array[tuple(source)]
    return out


def run_model(
    package: ModelPackage,
    volume: Volume,
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
    options: InferenceOptions | None = None,
) -> InferenceResult:
    """Load ``package`` and run it on ``volume`` (see ``ModelRunner.run``)."""
    return ModelRunner(package).run(volume, progress, cancel, options)


def load_package(folder: str | Path, origin: str = "extra") -> ModelPackage:
    """A package straight from a folder (a model.json package, an nnU-Net trained-model folder, a MONAI bundle)."""
    from medviewer.ai.bundle.folder import is_bundle_folder, load_bundle
    from medviewer.ai.nnunet.folder import is_trained_model_folder, load_nnunet_model

    if is_bundle_folder(folder) and not (Path(folder) / "model.json").is_file():
        return ModelPackage(Path(folder), load_bundle(folder).manifest(), origin)
    if is_trained_model_folder(folder) and not (Path(folder) / "model.json").is_file():
        return ModelPackage(Path(folder), load_nnunet_model(folder).manifest(), origin)
    return ModelPackage(Path(folder), load_manifest(folder), origin)
