"""Loading a model package's network safely: TorchScript, ONNX, or a state dict into a built-in architecture.

Nothing here unpickles arbitrary objects: state dicts go through
``torch.load(weights_only=True)``, which only accepts tensors and plain containers;
a file that needs more is refused with a ``ModelError``.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medviewer.ai.architectures import build_architecture
from medviewer.ai.manifest import ModelManifest
from medviewer.core.errors import ModelError


class Predictor:
    """A loaded network: ``predictor(batch)`` maps an (N, C, z, y, x) tensor to the network's output.

    The output is whatever the network returns; ``medviewer.ai.network_output`` checks
    it before anything is built from it.
    """

    #: whether autocast (mixed precision) may be used on CUDA
    supports_autocast = True

    def to(self, device: torch.device) -> "Predictor":
        raise NotImplementedError

    def __call__(self, batch: torch.Tensor) -> Any:
        raise NotImplementedError


class TorchPredictor(Predictor):
    """A ``torch.nn.Module`` (built-in architecture or TorchScript) in evaluation mode."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module.eval()
        self.device = torch.device("cpu")

    def to(self, device: torch.device) -> "TorchPredictor":
        self.module.to(device)
        self.device = torch.device(device)
        return self

    def __call__(self, batch: torch.Tensor) -> Any:
        # Whatever the module returns (a tuple of deep-supervision heads included) is checked by
        # the pipeline: guessing which element is the prediction would hide a packaging mistake.
        return self.module(batch)


class OnnxPredictor(Predictor):
    """An onnxruntime session wrapped to take and return torch tensors."""

    supports_autocast = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self.device = torch.device("cpu")
        self._session = self._create_session(self.device)

    def _create_session(self, device: torch.device):
        try:
            import onnxruntime
        except ImportError as error:
            raise ModelError(
                "this model needs onnxruntime, which is not installed (pip install 'medviewer[onnx]')", self.path
            ) from error
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            session = onnxruntime.InferenceSession(str(self.path), providers=providers)
        except Exception as error:  # onnxruntime raises its own exception types
            raise ModelError(f"cannot load the ONNX model: {error}", self.path) from error
        self._input_name = session.get_inputs()[0].name
        return session

    def to(self, device: torch.device) -> "OnnxPredictor":
        device = torch.device(device)
        if device.type != self.device.type:
            self._session = self._create_session(device)
            self.device = device
        return self

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        array = batch.detach().to("cpu", torch.float32).numpy()
        output = self._session.run(None, {self._input_name: np.ascontiguousarray(array)})[0]
        return torch.from_numpy(np.asarray(output, dtype=np.float32)).to(batch.device)


def error_reason(error: BaseException) -> str:
    """One line saying what went wrong: the exception's message, or what its type means when it has none.

    TorchScript errors carry a traceback of the scripted code; their last line is the
    actual exception ("builtins.RuntimeError: ...").
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        if isinstance(error, EOFError):
            return "the file ends too early (it is truncated)"
        return f"{type(error).__name__} without a message"
    if "TorchScript" in lines[0] and len(lines) > 1:
        return lines[-1].removeprefix("builtins.")
    text = lines[0].split(" This is an internal miniz error")[0]  # torch's advice after it only repeats the point
    return text if isinstance(error, (RuntimeError, OSError)) else f"{type(error).__name__}: {text}"


def load_state_dict_safely(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a state-dict file, refusing anything that needs arbitrary unpickling."""
    try:
        data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ModelError(
            "the weights file needs arbitrary code to be unpickled and was refused for safety; "
            "save a plain state dict (model.state_dict()) or TorchScript instead",
            path,
        ) from error
    except Exception as error:  # noqa: BLE001 - torch.load raises many types (EOFError, IndexError...) on damaged files
        raise ModelError(f"cannot read the weights file {path.name}: {error_reason(error)}", path) from error
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ModelError("the weights file does not hold a state dict (a mapping of names to tensors)", path)
    return data


def load_predictor(manifest: ModelManifest, folder: Path) -> Predictor:
    """Load the network of the package in ``folder`` on the CPU, following its manifest's runtime."""
    runtime = manifest.runtime
    path = Path(folder) / runtime.file
    if not path.is_file():
        raise ModelError(f"the weights file named in 'runtime.file' ({runtime.file}) is missing", folder)
    if path.stat().st_size == 0:
        raise ModelError(f"the weights file {runtime.file} is empty (0 bytes): the download or copy did not finish", path)
    if runtime.type == "builtin":
        module = build_architecture(runtime.architecture, runtime.arguments, str(Path(folder) / "model.json"))
        state = load_state_dict_safely(path)
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else "mismatch"
            raise ModelError(
                f"the weights do not fit architecture {runtime.architecture} with the given 'runtime.arguments' "
                f"({first_line})",
                path,
            ) from error
        return TorchPredictor(module)
    if runtime.type == "torchscript":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # deprecated in torch 2.10+, still supported
                module = torch.jit.load(str(path), map_location="cpu")
        except Exception as error:  # noqa: BLE001 - torch.jit.load raises RuntimeError, ValueError, OSError...
            raise ModelError(f"the weights file {path.name} is not a TorchScript file: {error_reason(error)}",
                             path) from error
        return TorchPredictor(module)
    if runtime.type == "onnx":
        return OnnxPredictor(path)
    raise ModelError(f"field 'runtime.type' has an unsupported value '{runtime.type}'", folder)
