"""Checking what a network returned before anything is built from it.

A package's network is user-supplied code: it may return NaN, a tuple, a single
number or a map of the wrong size. Each of these is a ``ModelError`` naming the model
and what was wrong, raised before any result exists, so nothing half-made reaches
the document or the output folder.
"""

from __future__ import annotations

from typing import Any

import torch

from medviewer.core.errors import ModelError


def check_network_output(
    output: Any,
    batch: torch.Tensor,
    channels: int,
    spatial: bool,
    model: str,
    folder: str | None = None,
    mixed_precision: bool = False,
) -> torch.Tensor:
    """``output`` when it is one finite floating-point tensor of the expected shape; ``ModelError`` otherwise.

    Parameters
    ----------
    batch:
        The (N, C, z, y, x) input the network was given.
    channels:
        Output channels the manifest's ``outputs`` need.
    spatial:
        True when the output must be (N, channels, z, y, x) with the input's spatial
        size; False when (N, channels) or (N, channels, any spatial size) is fine
        (classification logits, possibly per position).
    model:
        The model's display name, put in front of every message.
    """

    def fail(problem: str) -> ModelError:
        return ModelError(f"{model}: the network {problem}", folder)

    if not isinstance(output, torch.Tensor):
        if isinstance(output, (tuple, list)):
            raise fail(
                f"returned a {type(output).__name__} of {len(output)} values instead of one tensor; "
                "export the model with only its main output (e.g. deep supervision switched off)"
            )
        raise fail(f"returned a {type(output).__name__} instead of a tensor")
    count = batch.shape[0]
    shape = tuple(output.shape)
    if output.ndim == 0:
        raise fail(f"returned a single number (a scalar) instead of a ({count}, {channels}, ...) tensor")
    if not output.is_floating_point():
        raise fail(f"returned {str(output.dtype).removeprefix('torch.')} values; "
                   "medviewer needs floating-point outputs (logits, probabilities or intensities)")
    if output.ndim == 1 or shape[0] != count:
        raise fail(f"returned a tensor of shape {shape} for a batch of {count} window(s); "
                   f"expected ({count}, {channels}, ...)")
    if shape[1] != channels:
        raise fail(f"returned {shape[1]} output channels but the manifest's outputs need {channels}")
    if spatial and shape[2:] != tuple(batch.shape[2:]):
        raise fail(f"returned a map of size {shape[2:]} (z, y, x) for an input of size {tuple(batch.shape[2:])}; "
                   "the output must have the input's spatial size")
    finite = torch.isfinite(output)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        nan = int(torch.isnan(output).sum())
        kind = "NaN" if nan == bad else ("infinite" if nan == 0 else "NaN or infinite")
        hint = " (it ran in mixed precision: values may have overflowed float16)" if mixed_precision else ""
        raise fail(f"returned {kind} values in {bad} of {output.numel()} outputs{hint}")
    return output
