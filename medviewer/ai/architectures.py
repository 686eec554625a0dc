"""Named network architectures that ``builtin`` model packages can use.

A ``builtin`` package stores only a state dict (tensors) and names one of these
architectures with its constructor arguments, so loading never unpickles code.
The name list is torch-free (manifests are validated without importing torch);
``build_architecture`` imports torch and MONAI when a model is actually loaded.
"""

from __future__ import annotations

from typing import Any, Callable

from medviewer.core.errors import ModelError

#: architecture name -> "module:attribute" of its constructor
_CONSTRUCTORS: dict[str, str] = {
    "monai.UNet": "monai.networks.nets:UNet",
    "monai.BasicUNet": "monai.networks.nets:BasicUNet",
    "monai.SegResNet": "monai.networks.nets:SegResNet",
    "monai.DynUNet": "monai.networks.nets:DynUNet",
    "monai.Classifier": "monai.networks.nets:Classifier",
    "monai.DenseNet121": "monai.networks.nets:DenseNet121",
    "monai.ResNet": "monai.networks.nets:ResNet",
    "medviewer.DenoiseCNN": "medviewer.ai.networks:DenoiseCNN",
}

ARCHITECTURE_NAMES: tuple[str, ...] = tuple(_CONSTRUCTORS)


def _constructor(name: str) -> Callable[..., Any]:
    import importlib

    if name not in _CONSTRUCTORS:
        raise ModelError(f"unknown architecture '{name}'; known: {', '.join(ARCHITECTURE_NAMES)}")
    module_name, attribute = _CONSTRUCTORS[name].split(":")
    return getattr(importlib.import_module(module_name), attribute)


def build_architecture(name: str, arguments: dict[str, Any], path: str | None = None):
    """An untrained ``torch.nn.Module`` of architecture ``name`` built with ``arguments``.

    Raises
    ------
    ModelError
        When the name is unknown or the arguments do not fit its constructor.
    """
    constructor = _constructor(name)
    try:
        return constructor(**arguments)
    except (TypeError, ValueError, AssertionError, KeyError, IndexError) as error:
        raise ModelError(f"field 'runtime.arguments' does not fit architecture {name}: {error}", path) from error
