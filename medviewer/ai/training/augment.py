"""Augmentation of patch batches on the training device: flips, small rotations and scaling, intensity, CT noise.

Spatial transforms move image and target together (image linearly, target by
nearest neighbour, so label values and the ignore value stay exact).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from medviewer.ai.tasks import Task

_AXIS_OF_LETTER = {"z": 2, "y": 3, "x": 4}


def flip_axes_for(setting: str, task: str, label_names: Sequence[str]) -> tuple[int, ...]:
    """Tensor axes to flip for a ``flip_axes`` setting (see ``TrainingSettings``).

    ``"auto"`` flips every axis for detection and for segmentation without sides;
    a segmentation with a left/right label gets no flips, because a flip across the
    body would swap the sides.
    """
    setting = (setting or "auto").lower()
    if setting == "none":
        return ()
    if setting == "auto":
        lateral = any(word in name.lower().split() for name in label_names for word in ("left", "right"))
        return () if task == Task.SEGMENTATION and lateral else (2, 3, 4)
    unknown = set(setting) - set(_AXIS_OF_LETTER)
    if unknown:
        raise ValueError(f"flip axes must be 'auto', 'none' or letters from 'zyx', got {setting!r}")
    return tuple(sorted({_AXIS_OF_LETTER[c] for c in setting}))


def random_flips(images: torch.Tensor, targets: torch.Tensor, axes: Sequence[int],
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip each patch along each of ``axes`` with probability 1/2."""
    if not axes:
        return images, targets
    images, targets = images.clone(), targets.clone()
    for n in range(images.shape[0]):
        for axis in axes:
            if torch.rand(1, generator=generator).item() < 0.5:
                images[n] = images[n].flip(axis - 1)
                targets[n] = targets[n].flip(axis - 1)
    return images, targets


def _rotation(angles: torch.Tensor) -> torch.Tensor:
    """3x3 rotation from three angles (radians) about the three axes."""
    a, b, c = (float(v) for v in angles)
    rx = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = torch.tensor([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = torch.tensor([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_affine(images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator, degrees: float = 10.0,
                  scale: float = 0.1, probability: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate by up to ``degrees`` about each axis and scale by 1 +- ``scale``, per patch with ``probability``.

    Patch edges are extended (border padding) rather than filled with zeros, which
    would look like air to a CT model.
    """
    if probability <= 0 or (degrees <= 0 and scale <= 0):
        return images, targets
    count = images.shape[0]
    chosen = [n for n in range(count) if torch.rand(1, generator=generator).item() < probability]
    if not chosen:
        return images, targets
    thetas = []
    for _ in chosen:
        angles = (torch.rand(3, generator=generator) * 2 - 1) * math.radians(degrees)
        zoom = 1.0 + (torch.rand(1, generator=generator).item() * 2 - 1) * scale
        matrix = _rotation(angles) / zoom
        thetas.append(torch.cat([matrix, torch.zeros(3, 1)], dim=1))
    theta = torch.stack(thetas).to(images.device, images.dtype)
    index = torch.tensor(chosen, device=images.device)
    selected = images.index_select(0, index)
    grid = F.affine_grid(theta, list(selected.shape), align_corners=False)
    moved = F.grid_sample(selected, grid, mode="bilinear", padding_mode="border", align_corners=False)
    moved_targets = F.grid_sample(targets.index_select(0, index).to(images.dtype), grid, mode="nearest",
                                  padding_mode="border", align_corners=False)
    images, targets = images.clone(), targets.clone()
    images[index] = moved
    targets[index] = moved_targets.round().to(targets.dtype)
    return images, targets


def augment_intensity(batch: torch.Tensor, generator: torch.Generator, scale: float = 0.1, shift: float = 0.05,
                      noise: float = 0.03) -> torch.Tensor:
    """Random contrast, brightness and Gaussian noise per patch (scanner and dose variation)."""
    count = batch.shape[0]
    shape = (count,) + (1,) * (batch.dim() - 1)
    factor = 1 + (torch.rand(shape, generator=generator) * 2 - 1) * scale
    offset = (torch.rand(shape, generator=generator) * 2 - 1) * shift
    sigma = torch.rand(shape, generator=generator) * noise
    device = batch.device
    return batch * factor.to(device) + offset.to(device) + torch.randn(batch.shape, generator=generator).to(device) * sigma.to(device)


def correlated_noise(shape: tuple[int, ...], sigma: torch.Tensor, correlation_px: float,
                     generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise for a (n, c, z, y, x) batch, correlated within each slice like CT noise.

    White noise blurred in-plane by a Gaussian of ``correlation_px`` pixels (CT noise
    is correlated within a slice, not between slices), rescaled to standard deviation
    ``sigma[i]`` for patch ``i`` (in the images' units, e.g. HU).
    """
    radius = max(1, int(math.ceil(3 * correlation_px)))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / correlation_px) ** 2)
    kernel = kernel / kernel.sum()
    noise = torch.randn(shape, generator=generator)
    n, c, z, y, x = shape
    flat = noise.reshape(n * c * z, 1, y, x)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
    noise = flat.reshape(shape)
    noise = noise / noise.std(dim=(1, 2, 3, 4), keepdim=True)
    return noise * sigma.view(-1, 1, 1, 1, 1)
