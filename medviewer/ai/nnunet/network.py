"""The network of an nnU-Net v2 model, built from the plans, and its checkpoints, loaded safely.

The plans describe the architecture as a class path plus keyword arguments, some of which name
classes (``conv_op``, ``norm_op``...). nnU-Net resolves any such name; medviewer resolves only
classes from ``dynamic_network_architectures.architectures`` (the package nnU-Net builds its
networks with) and ``torch.nn``, so a plans file cannot make it import arbitrary code.

Checkpoints are ``torch.save``'d dicts (network weights, optimiser state, training log, init
arguments...). They are read with ``torch.load(weights_only=True)``, allowing only the plain
NumPy types nnU-Net's training log holds; anything else is refused, naming the file.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medviewer.core.errors import ModelError

_ARCHITECTURE_PACKAGE = "dynamic_network_architectures.architectures."
_CLASS_ARGUMENT_PREFIX = "torch.nn."


def _numpy_safe_globals() -> list:
    """NumPy scalars, dtypes and arrays: what nnU-Net's training log (np.float64 losses, Dice) pickles."""
    try:
        from numpy._core.multiarray import _reconstruct, scalar  # NumPy 2
    except ImportError:  # pragma: no cover - NumPy 1
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    dtype_classes = [type(np.dtype(name)) for name in
                     ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")]
    return [scalar, _reconstruct, np.ndarray, np.dtype, *dtype_classes]


def load_checkpoint(path: Path) -> dict:
    """The checkpoint dict of ``path``, read without arbitrary unpickling."""
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()
        detail = next((line.strip() for line in reason if "GLOBAL" in line or "Unsupported" in line), "")
        raise ModelError(
            f"{path.name} needs arbitrary code to be unpickled and was refused for safety"
            + (f" ({detail})" if detail else "")
            + "; nnU-Net checkpoints hold only tensors, numbers, strings and NumPy scalars",
            path,
        ) from error
    except Exception as error:  # noqa: BLE001 - torch.load raises many types on damaged files
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"cannot read the checkpoint {path.name}: {first}", path) from error
    if not isinstance(data, dict) or not isinstance(data.get("network_weights"), dict):
        raise ModelError(f"{path.name} is not an nnU-Net checkpoint (no 'network_weights')", path)
    weights = data["network_weights"]
    if not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise ModelError(f"'network_weights' in {path.name} must map names to tensors", path)
    return data


def _locate(path: str, prefix: str, what: str, plans_path: Path) -> Any:
    if not isinstance(path, str) or not path.startswith(prefix):
        raise ModelError(f"{what} '{path}' is refused: only classes under {prefix.rstrip('.')} are built", plans_path)
    module_name, _, attribute = path.rpartition(".")
    # A class may be named through its defining module or a package re-exporting it.
    while module_name:
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            if module_name.count(".") == 0:
                raise ModelError(f"{what} '{path}' cannot be imported: {error}", plans_path) from error
            module_name, _, parent = module_name.rpartition(".")
            attribute = f"{parent}.{attribute}"
            continue
        target: Any = module
        try:
            for part in attribute.split("."):
                target = getattr(target, part)
        except AttributeError as error:
            raise ModelError(f"{what} '{path}' does not exist (is dynamic_network_architectures up to date?)",
                             plans_path) from error
        return target
    raise ModelError(f"{what} '{path}' cannot be imported", plans_path)


def build_network(architecture: Any, input_channels: int, output_channels: int, plans_path: Path) -> torch.nn.Module:
    """The network described by a configuration's ``architecture`` (deep supervision off, as for inference)."""
    if not isinstance(architecture, dict) or "network_class_name" not in architecture:
        raise ModelError("field 'architecture.network_class_name' is missing (plans from nnU-Net before v2.4 "
                         "describe the network differently and are not supported)", plans_path)
    try:
        import dynamic_network_architectures  # noqa: F401
    except ImportError as error:
        raise ModelError("nnU-Net models need the package dynamic-network-architectures "
                         "(pip install dynamic-network-architectures)", plans_path) from error
    network_class = _locate(architecture["network_class_name"], _ARCHITECTURE_PACKAGE, "network class", plans_path)
    if not (isinstance(network_class, type) and issubclass(network_class, torch.nn.Module)):
        raise ModelError(f"network class '{architecture['network_class_name']}' is not a torch module", plans_path)
    kwargs = dict(architecture.get("arch_kwargs") or {})
    for key in architecture.get("_kw_requires_import") or ():
        if kwargs.get(key) is not None:
            kwargs[key] = _locate(kwargs[key], _CLASS_ARGUMENT_PREFIX, f"'arch_kwargs.{key}'", plans_path)
    kwargs["deep_supervision"] = False
    try:
        network = network_class(input_channels=input_channels, num_classes=output_channels, **kwargs)
    except Exception as error:  # noqa: BLE001 - the architecture's own argument checks
        raise ModelError(f"cannot build {architecture['network_class_name']} from the plans: "
                         f"{type(error).__name__}: {error}", plans_path) from error
    return network.eval()


def fit_weights(network: torch.nn.Module, weights: dict, path: Path) -> dict:
    """``weights`` with DDP / torch.compile name prefixes removed, checked against ``network``."""
    expected = network.state_dict().keys()
    fixed = {}
    for key, value in weights.items():
        for prefix in ("module.", "_orig_mod."):
            if key not in expected and key.startswith(prefix):
                key = key[len(prefix):]
        fixed[key] = value
    missing = [k for k in expected if k not in fixed]
    unexpected = [k for k in fixed if k not in expected]
    if missing or unexpected:
        raise ModelError(
            f"the weights in {path.name} do not fit the network the plans describe "
            f"({len(missing)} missing, e.g. {missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]})", path)
    for key, value in fixed.items():
        want = network.state_dict()[key].shape
        if tuple(value.shape) != tuple(want):
            raise ModelError(f"the weights in {path.name} do not fit the network: {key} has shape "
                             f"{tuple(value.shape)}, the plans give {tuple(want)}", path)
    return fixed
