"""Random training patches balanced between foreground and background.

A share of the patches is centred (with some jitter) on a labelled voxel: first a
*group* is drawn uniformly (one group per label per case for segmentation, one per
object for detection), then a voxel of it, so a small structure (the airway, a 5 mm
nodule) is shown as often as a large one (a lung). Another share is centred on hard
negatives (e.g. boxes the annotator rejected); the rest lie anywhere.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from medviewer.ai.training.config import IGNORE_VALUE

#: At most this many voxels are remembered per group (drawn evenly), to bound memory.
MAX_VOXELS_PER_GROUP = 20000


def _subsample(voxels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if len(voxels) <= MAX_VOXELS_PER_GROUP:
        return voxels
    return voxels[np.sort(rng.choice(len(voxels), MAX_VOXELS_PER_GROUP, replace=False))]


class PatchSampler:
    """Draws (image, target) patch batches from model-grid arrays.

    Parameters
    ----------
    images, targets:
        (z, y, x) arrays per case; images are padded with ``pad_values`` (targets with
        0) where smaller than the patch.
    patch_zyx:
        Patch size.
    foreground_fraction:
        Share of patches centred on a foreground group's voxel.
    per_object:
        Groups are connected objects (detection) instead of labels (segmentation).
    hard_negatives, hard_fraction:
        Boolean masks per case and the share of patches centred on them.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        targets: Sequence[np.ndarray],
        patch_zyx: Sequence[int],
        foreground_fraction: float = 0.5,
        pad_values: Sequence[float] | None = None,
        per_object: bool = False,
        hard_negatives: Sequence[np.ndarray | None] | None = None,
        hard_fraction: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.patch = np.asarray([int(p) for p in patch_zyx])
        setup_rng = np.random.default_rng(seed)
        self.images: list[np.ndarray] = []
        self.targets: list[np.ndarray] = []
        self.groups: list[tuple[int, np.ndarray]] = []  # (case, voxels (n, 3))
        hard_rows = []
        for case, (image, target) in enumerate(zip(images, targets)):
            pad = [(0, max(0, int(p) - s)) for p, s in zip(self.patch, image.shape)]
            fill = float(pad_values[case]) if pad_values is not None else float(image.min())
            self.images.append(np.pad(image, pad, constant_values=fill) if any(p[1] for p in pad) else image)
            self.targets.append(np.pad(target, pad) if any(p[1] for p in pad) else target)
            known = target[(target > 0) & (target != IGNORE_VALUE)]
            if per_object:
                components, count = ndimage.label((target > 0) & (target != IGNORE_VALUE))
                for number, slices in enumerate(ndimage.find_objects(components), start=1):
                    if slices is None:
                        continue
                    voxels = np.argwhere(components[slices] == number) + [s.start for s in slices]
                    self.groups.append((case, _subsample(voxels, setup_rng)))
            else:
                for value in np.unique(known):
                    self.groups.append((case, _subsample(np.argwhere(target == value), setup_rng)))
            if hard_negatives is not None and hard_negatives[case] is not None and hard_negatives[case].any():
                voxels = _subsample(np.argwhere(hard_negatives[case]), setup_rng)
                hard_rows.append(np.concatenate([np.full((len(voxels), 1), case), voxels], axis=1))
        self.hard = np.concatenate(hard_rows) if hard_rows else np.zeros((0, 4), int)
        self.foreground_fraction = float(foreground_fraction) if self.groups else 0.0
        self.hard_fraction = float(hard_fraction) if len(self.hard) else 0.0
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: int | Sequence[int]) -> None:
        """Restart the random stream (per epoch and rank, so a resumed run draws the same patches)."""
        self.rng = np.random.default_rng(seed)

    def _jittered_start(self, centre: np.ndarray) -> np.ndarray:
        jitter = self.rng.integers(-(self.patch // 4), self.patch // 4 + 1)
        return centre + jitter - self.patch // 2

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """``batch`` patches: images (n, 1, z, y, x) float32 and targets (n, 1, z, y, x) uint8."""
        images, targets = [], []
        for _ in range(batch):
            draw = self.rng.random()
            if draw < self.hard_fraction:
                row = self.hard[int(self.rng.integers(len(self.hard)))]
                case, start = int(row[0]), self._jittered_start(row[1:])
            elif draw < self.hard_fraction + self.foreground_fraction:
                case, voxels = self.groups[int(self.rng.integers(len(self.groups)))]
                start = self._jittered_start(voxels[int(self.rng.integers(len(voxels)))])
            else:
                case = int(self.rng.integers(len(self.images)))
                start = self.rng.integers(0, np.asarray(self.images[case].shape) - self.patch + 1)
            shape = np.asarray(self.images[case].shape)
            start = np.clip(start, 0, shape - self.patch)
            block = tuple(slice(int(s), int(s) + int(p)) for s, p in zip(start, self.patch))
            images.append(self.images[case][block])
            targets.append(self.targets[case][block])
        return np.stack(images)[:, None].astype(np.float32), np.stack(targets)[:, None]
