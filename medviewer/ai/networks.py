"""Small networks of medviewer's own, used by the built-in demo models."""

from __future__ import annotations

import torch
from torch import nn


class DenoiseCNN(nn.Module):
    """A residual denoiser in the spirit of DnCNN (Zhang et al., 2017), kept tiny for the CPU.

    The network predicts the noise and subtracts it from its input, so an untrained
    or uncertain network leaves the image almost unchanged.

    Parameters
    ----------
    spatial_dims:
        2 or 3.
    features:
        Channels of the hidden convolutions.
    depth:
        Number of 3x3(x3) convolutions, including the first and the last.
    """

    def __init__(self, spatial_dims: int = 3, in_channels: int = 1, features: int = 16, depth: int = 5) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if depth < 2:
            raise ValueError(f"depth must be at least 2, got {depth}")
        conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
        norm = nn.BatchNorm3d if spatial_dims == 3 else nn.BatchNorm2d
        layers: list[nn.Module] = [conv(in_channels, features, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [conv(features, features, 3, padding=1, bias=False), norm(features), nn.ReLU(inplace=True)]
        layers.append(conv(features, in_channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)
