"""Training losses: Dice + cross-entropy for segmentation, a heat-map loss for detection (both skip unknown
voxels), and an image loss for enhancement models (denoising).

Targets hold class indices (0 background, k = class k) and ``IGNORE_VALUE`` where
the truth is unknown; those voxels are masked out of every term (MONAI's
``MaskedDiceLoss`` for the Dice part).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import MaskedDiceLoss

from medviewer.ai.training.config import IGNORE_VALUE


def _known(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask of known voxels as float (n, 1, ...), targets with unknown voxels set to 0 (long))."""
    known = targets != IGNORE_VALUE
    return known.float(), torch.where(known, targets, torch.zeros_like(targets)).long()


class SegmentationLoss(torch.nn.Module):
    """Soft Dice + cross-entropy (as nnU-Net and MONAI's DiceCELoss), with unknown voxels left out.

    ``activation`` is the model's: ``softmax`` (channel 0 background) or ``sigmoid``
    (one channel per label, trained one-vs-rest).
    """

    def __init__(self, classes: int, activation: str = "softmax") -> None:
        super().__init__()
        self.classes = int(classes)
        self.activation = activation
        if activation == "sigmoid":
            self.dice = MaskedDiceLoss(sigmoid=True, batch=True)
        else:
            self.dice = MaskedDiceLoss(to_onehot_y=True, softmax=True, batch=True)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        mask, labels = _known(targets)
        logits = logits.float()
        if self.activation == "sigmoid":
            one_hot = F.one_hot(labels[:, 0], self.classes + 1).permute(0, 4, 1, 2, 3)[:, 1:].float()
            dice = self.dice(logits, one_hot, mask)
            cross_entropy = F.binary_cross_entropy_with_logits(logits, one_hot, reduction="none") * mask
            cross_entropy = cross_entropy.sum() / (mask.sum() * self.classes).clamp_min(1.0)
        else:
            dice = self.dice(logits, labels, mask)
            cross_entropy = F.cross_entropy(logits, labels[:, 0], reduction="none") * mask[:, 0]
            cross_entropy = cross_entropy.sum() / mask.sum().clamp_min(1.0)
        return dice + cross_entropy


class DetectionLoss(torch.nn.Module):
    """Binary cross-entropy on the heat map plus a per-patch overlap term (one channel per class).

    Patches holding an object get a soft Dice loss (each object-centred patch counts
    the same, whatever the object's size); patches without one get ``V / (V + scale)``
    of their predicted volume ``V`` in voxels: a few uncertain voxels cost little, a
    confident false blob (what a rejected box was) costs almost 1.
    """

    def __init__(self, classes: int, negative_scale: float = 50.0) -> None:
        super().__init__()
        self.classes = int(classes)
        self.negative_scale = float(negative_scale)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        mask, labels = _known(targets)
        logits = logits.float()
        truth = F.one_hot(labels[:, 0], self.classes + 1).permute(0, 4, 1, 2, 3)[:, 1:].float()
        cross_entropy = F.binary_cross_entropy_with_logits(logits, truth, reduction="none") * mask
        cross_entropy = cross_entropy.sum() / (mask.sum() * self.classes).clamp_min(1.0)
        probabilities = (torch.sigmoid(logits) * mask).flatten(2)
        truth = (truth * mask).flatten(2)
        predicted = probabilities.sum(2)
        dice = 1 - (2 * (probabilities * truth).sum(2) + 1) / (predicted + truth.sum(2) + 1)
        false_volume = predicted / (predicted + self.negative_scale)
        overlap = torch.where(truth.sum(2) > 0, dice, false_volume)
        return cross_entropy + overlap.mean()


class EnhancementLoss(torch.nn.Module):
    """Mean absolute error between the network's image and the target image (enhancement models).

    L1 rather than squared error: it keeps edges sharp instead of favouring a blurred
    average, as usual for CT denoisers.
    """

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(output.float(), target.float())
