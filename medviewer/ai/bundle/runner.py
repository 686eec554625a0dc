"""Running a MONAI bundle: its own transforms, network, inferer and postprocessing, built by MONAI.

The configuration is scanned (``safety``) before MONAI's ``ConfigParser`` instantiates anything;
an untrusted bundle that names anything beyond ``monai.*`` / ``torch.*`` is refused with the config
path and target. The study enters the bundle's preprocessing where ``LoadImaged`` would have put
it: a ``MetaTensor`` in NIfTI voxel order (x, y, z) with the RAS affine of the study's grid, so
``Spacingd``, ``Orientationd`` and ``Invertd`` see what they would see reading the study's NIfTI.
Postprocessing runs as configured except writers (``SaveImage*``); if it does not invert the
preprocessing itself, the labels are inverted onto the study grid here (nearest neighbour).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from medviewer.ai import devices
from medviewer.ai.bundle.folder import MonaiBundle, load_bundle
from medviewer.ai.bundle.safety import scan_config
from medviewer.ai.bundle.trust import is_trusted
from medviewer.ai.folder_runs import run_label_model
from medviewer.ai.results import InferenceOptions, InferenceResult
from medviewer.core.errors import ModelError, OperationCancelled
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback
from medviewer.core.volume import Volume

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_LOADERS = ("LoadImaged", "LoadImage")
_WRITERS = ("SaveImaged", "SaveImage")


def check_bundle_config(bundle: MonaiBundle, trusted: bool | None = None) -> None:
    """Refuse an untrusted bundle whose config names anything not allowed by default (see ``safety``)."""
    if trusted is None:
        trusted = is_trusted(bundle.folder)
    if trusted:
        return
    findings = scan_config(bundle.config, bundle.folder)
    if findings:
        shown = "; ".join(str(f) for f in findings[:5]) + (f"; and {len(findings) - 5} more" if len(findings) > 5 else "")
        raise ModelError(
            f"the bundle's configuration would run code medviewer does not allow by default ({shown}); only "
            "monai.* and torch.* targets and the bundle's own scripts/ network are allowed, and '$' expressions "
            "are Python code. Mark the bundle as trusted in the AI panel if you trust its authors",
            bundle.config_path,
        )


def volume_to_metatensor(volume: Volume):
    """The study as ``LoadImaged`` would return it from a NIfTI: (x, y, z) float32 with the RAS affine."""
    from monai.data import MetaTensor

    affine = _LPS_TO_RAS @ volume.geometry.index_to_world_matrix
    array = np.ascontiguousarray(np.asarray(volume.array, dtype=np.float32).transpose(2, 1, 0))
    meta = {
        "original_affine": affine.copy(),
        "spatial_shape": np.asarray(array.shape),
        "original_channel_dim": "no_channel",
        "filename_or_obj": volume.name or "study",
        "space": "RAS",
    }
    return MetaTensor(torch.from_numpy(array), affine=torch.as_tensor(affine, dtype=torch.float64), meta=meta)


def _forget_scripts() -> None:
    """Drop imported ``scripts`` modules: every bundle names its own package ``scripts``."""
    for name in [m for m in sys.modules if m == "scripts" or m.startswith("scripts.")]:
        del sys.modules[name]


@contextmanager
def _bundle_on_path(folder: Path):
    """The bundle's ``scripts`` package importable while its parts are built (as ``monai.bundle`` does),
    and never another bundle's (or a cached one): they all share the name."""
    added = str(folder) not in sys.path
    if added:
        sys.path.insert(0, str(folder))
    _forget_scripts()
    try:
        yield
    finally:
        _forget_scripts()
        if added:
            sys.path.remove(str(folder))


def _name(transform: object) -> str:
    return type(transform).__name__


class BundlePredictor:
    """A bundle's parts, built once: preprocessing, network with weights, inferer, postprocessing."""

    def __init__(self, bundle: MonaiBundle | str | Path, trusted: bool | None = None) -> None:
        from monai.bundle import ConfigParser
        from monai.transforms import Compose

        self.bundle = bundle if isinstance(bundle, MonaiBundle) else load_bundle(bundle)
        check_bundle_config(self.bundle, trusted)  # before anything is instantiated
        parser = ConfigParser(self.bundle.config)
        parser["bundle_root"] = str(self.bundle.folder)
        with _bundle_on_path(self.bundle.folder):
            try:
                self.preprocessing = parser.get_parsed_content("preprocessing")
                self.inferer = parser.get_parsed_content("inferer")
                post = parser.get_parsed_content("postprocessing") if "postprocessing" in self.bundle.config else None
                self.network = self._load_network(parser)
            except ModelError:
                raise
            except Exception as error:  # noqa: BLE001 - any failure building the bundle is the bundle's
                raise ModelError(f"MONAI could not build the bundle: {type(error).__name__}: {error}",
                                 self.bundle.config_path) from error
        transforms = list(getattr(self.preprocessing, "transforms", [self.preprocessing]))
        self.prepare = Compose([t for t in transforms if _name(t) not in _LOADERS])
        self.post = [t for t in getattr(post, "transforms", [post] if post is not None else []) if _name(t) not in _WRITERS]
        self.device = torch.device("cpu")

    def _load_network(self, parser) -> torch.nn.Module:
        path = self.bundle.weights_path
        if path.suffix == ".ts":
            try:
                network = torch.jit.load(str(path), map_location="cpu")
            except Exception as error:  # noqa: BLE001
                raise ModelError(f"is not a TorchScript model: {error}", path) from error
            return network.eval()
        network = parser.get_parsed_content("network_def")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - weights_only refuses anything that would unpickle code
            raise ModelError(f"cannot be loaded as plain weights (torch.load weights_only=True): {error}", path) from error
        if isinstance(state, dict) and isinstance(state.get("model"), dict):  # MONAI's CheckpointSaver layout
            state = state["model"]
        try:
            network.load_state_dict(state)
        except Exception as error:  # noqa: BLE001
            raise ModelError(f"does not fit the bundle's network_def: {error}", path) from error
        return network.eval()

    def to(self, device: torch.device) -> "BundlePredictor":
        self.device = torch.device(device)
        self.network.to(self.device)
        return self

    def predict_volume(self, volume: Volume, progress: ProgressCallback = NO_PROGRESS,
                       cancel: CancelToken | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels (z, y, x) on ``volume``'s grid (values = channel_def numbers) and the probabilities
        (channels, z, y, x) as the postprocessing had them before discretising (None if it never had)."""
        cancel = cancel or CancelToken()
        key, out_key = self.bundle.input_key, self.bundle.output_key
        data = self.prepare({key: volume_to_metatensor(volume)})
        cancel.raise_if_cancelled()
        image = data[key]
        calls, expected = 0, self._expected_calls(tuple(image.shape[1:]))

        def network(batch: torch.Tensor) -> torch.Tensor:
            nonlocal calls
            cancel.raise_if_cancelled()
            try:
                out = self.network(batch)
            except OperationCancelled:
                raise
            except Exception as error:  # noqa: BLE001 - the network is the bundle's code
                if devices.is_out_of_memory(error):
                    raise
                raise ModelError(f"the bundle's network failed on an input of shape {tuple(batch.shape)}: {error}",
                                 self.bundle.folder) from error
            calls += 1
            progress(0.1 + 0.85 * min(1.0, calls / expected), f"window batch {calls}/{expected}")
            return out

        pred = self.inferer(image[None].to(self.device), network)
        data[out_key] = pred[0].to("cpu")
        probabilities = None
        for transform in self.post:
            if _name(transform) in ("AsDiscreted", "AsDiscrete") and probabilities is None:
                probabilities = data[out_key]
            data = transform(data)
        result = data[out_key]
        if probabilities is None and result.shape[0] > 1 and result.is_floating_point():
            probabilities = result
        labels_ijk = self._labels(result)
        if tuple(labels_ijk.shape) != tuple(volume.geometry.size):  # the bundle did not invert its preprocessing
            labels_ijk = self._invert(data, labels_ijk)
        labels = np.ascontiguousarray(np.asarray(labels_ijk).transpose(2, 1, 0))
        if probabilities is not None:
            probabilities = np.asarray(probabilities.detach().cpu(), dtype=np.float32)
            if probabilities.shape[1:] == tuple(volume.geometry.size):
                probabilities = np.ascontiguousarray(probabilities.transpose(0, 3, 2, 1))
            else:
                probabilities = None  # on the bundle's grid, not the study's
        if labels.shape != volume.geometry.shape:
            raise ModelError(f"the bundle's result has shape {labels.shape}, the study {volume.geometry.shape}",
                             self.bundle.folder)
        return labels, probabilities

    def _expected_calls(self, shape: tuple[int, ...]) -> int:
        """Network calls a SlidingWindowInferer makes on ``shape`` (1 for other inferers), for the progress bar."""
        roi = getattr(self.inferer, "roi_size", None)
        if roi is None or len(shape) != 3:
            return 1
        from medviewer.ai.pipeline import count_window_batches

        roi = tuple(int(r) if r > 0 else s for r, s in zip(roi, shape))
        return count_window_batches(shape, roi, float(getattr(self.inferer, "overlap", 0.25)),
                                    int(getattr(self.inferer, "sw_batch_size", 1)))

    def _labels(self, pred: torch.Tensor) -> np.ndarray:
        """(x, y, z) label values: argmax over channels, or the single channel rounded."""
        array = pred.detach().cpu()
        index = torch.argmax(array, dim=0) if array.shape[0] > 1 else torch.round(array[0])
        return index.numpy().astype(np.uint16)  # channel_def numbers are the channels

    def _invert(self, data: dict, labels_ijk: np.ndarray) -> np.ndarray:
        from monai.data import MetaTensor
        from monai.transforms import Invertd

        key, out_key = self.bundle.input_key, self.bundle.output_key
        tensor = MetaTensor(torch.from_numpy(labels_ijk.astype(np.float32))[None], meta=dict(data[key].meta))
        tensor.applied_operations = []
        inverted = Invertd(keys=out_key, transform=self.prepare, orig_keys=key, nearest_interp=True)(
            {**data, out_key: tensor})[out_key]
        return np.asarray(inverted[0].detach().cpu()).round().astype(np.uint16)


class BundleRunner:
    """Runs a bundle package the way ``ModelRunner`` runs manifest packages (same result type)."""

    def __init__(self, package) -> None:
        self.package = package
        self.manifest = package.manifest
        self._predictor: BundlePredictor | None = None
        self._trusted: bool | None = None

    @property
    def predictor(self) -> BundlePredictor:
        trusted = is_trusted(self.package.folder)
        if self._predictor is None or trusted != self._trusted:  # rebuilt after the user changed the trust
            self._predictor = BundlePredictor(self.package.folder, trusted)
            self._trusted = trusted
        return self._predictor

    def run(self, volume: Volume, progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None,
            options: InferenceOptions | None = None) -> InferenceResult:
        cancel = cancel or CancelToken()
        return run_label_model(self.manifest, volume, options or InferenceOptions(), progress, "building the bundle",
                               lambda device: self.predictor.to(device).predict_volume(volume, progress, cancel)[0])
