"""Detections: 3D boxes in world millimetres with class, score, review status and source."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from medviewer.core.geometry import Geometry


class DetectionStatus(str, Enum):
    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EDITED = "edited"


@dataclass
class Detection:
    """A box aligned with its image's axes.

    ``center`` is the box centre in world LPS mm; ``size`` is the box's extent in mm
    along the image's i, j and k axes (for axis-aligned images these are the world
    axes up to sign). Voxel indices are derived from the image geometry on demand.
    """

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    label: str = "lesion"
    score: float = 1.0
    status: DetectionStatus = DetectionStatus.PROPOSED
    source: str = "manual"
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def __post_init__(self) -> None:
        self.center = tuple(float(v) for v in self.center)
        self.size = tuple(abs(float(v)) for v in self.size)
        self.status = DetectionStatus(self.status)

    # ------------------------------------------------------------------ voxel views
    def index_bounds(self, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
        """Continuous (min, max) indices (i, j, k) of the box edges on ``geometry``."""
        center_index = geometry.world_to_index(self.center)
        half = np.asarray(self.size) / np.asarray(geometry.spacing) / 2.0
        return center_index - half, center_index + half

    def voxel_box(self, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
        """Inclusive (min, max) indices (i, j, k) of the voxels whose centres lie in the box, clipped."""
        low, high = self.index_bounds(geometry)
        last = np.asarray(geometry.size) - 1
        lo = np.clip(np.ceil(low - 1e-6), 0, last).astype(int)
        hi = np.clip(np.floor(high + 1e-6), 0, last).astype(int)
        return lo, np.maximum(hi, lo)

    @classmethod
    def from_index_bounds(
        cls, geometry: Geometry, low: np.ndarray, high: np.ndarray, **kwargs
    ) -> "Detection":
        """Box from continuous index edges (i, j, k) on ``geometry``."""
        low, high = np.asarray(low, float), np.asarray(high, float)
        center = geometry.index_to_world((low + high) / 2.0)
        size = np.abs(high - low) * np.asarray(geometry.spacing)
        return cls(tuple(center), tuple(size), **kwargs)

    def to_dict(self, geometry: Geometry | None = None) -> dict:
        data = {
            "id": self.id,
            "center_mm": list(self.center),
            "size_mm": list(self.size),
            "label": self.label,
            "score": self.score,
            "status": self.status.value,
            "source": self.source,
        }
        if geometry is not None:
            lo, hi = self.voxel_box(geometry)
            data["center_index"] = [float(v) for v in geometry.world_to_index(self.center)]
            data["voxel_min"] = [int(v) for v in lo]
            data["voxel_max"] = [int(v) for v in hi]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Detection":
        return cls(
            center=tuple(data["center_mm"]),
            size=tuple(data["size_mm"]),
            label=data.get("label", "lesion"),
            score=float(data.get("score", 1.0)),
            status=DetectionStatus(data.get("status", "proposed")),
            source=data.get("source", "manual"),
            id=data.get("id") or uuid.uuid4().hex[:12],
        )
