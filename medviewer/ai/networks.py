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
    in_plane:
        3D only: the first convolution sees three slices, the others work within each
        slice (2D). CT noise is correlated within a slice and independent between
        slices, so little is lost, and the network's reach across slices is one slice
        each way: a slab of images can be denoised piece by piece with a tiny overlap.
    """

    def __init__(self, spatial_dims: int = 3, in_channels: int = 1, features: int = 16, depth: int = 5,
                 in_plane: bool = False) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if depth < 2:
            raise ValueError(f"depth must be at least 2, got {depth}")
        self.in_plane = bool(in_plane and spatial_dims == 3)
        conv = nn.Conv3d if spatial_dims == 3 and not self.in_plane else nn.Conv2d
        norm = nn.BatchNorm3d if spatial_dims == 3 and not self.in_plane else nn.BatchNorm2d
        first = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
        self.head = nn.Sequential(first(in_channels, features, 3, padding=1), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        for _ in range(depth - 2):
            layers += [conv(features, features, 3, padding=1, bias=False), norm(features), nn.ReLU(inplace=True)]
        layers.append(conv(features, in_channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.head(x)
        if not self.in_plane:
            return x - self.body(hidden)
        n, c, z, y, w = hidden.shape
        slices = hidden.permute(0, 2, 1, 3, 4).reshape(n * z, c, y, w)
        noise = self.body(slices).reshape(n, z, -1, y, w).permute(0, 2, 1, 3, 4)
        return x - noise
