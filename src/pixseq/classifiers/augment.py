"""Training-time regularisers for classifiers: augmentation, mixing, label smoothing.

* per image (in the dataset, on uint8 ``(3, H, W)`` tensors): a random crop of the image
  padded by ``crop_pad`` pixels, a horizontal flip, RandAugment (Cubuk et al. 2020:
  ``num_ops`` operations of strength ``magnitude`` out of 31 levels, torchvision's
  ``transforms.v2.RandAugment``);
* per batch (in the training step): mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019),
  torchvision's ``transforms.v2.MixUp`` / ``CutMix``; with both on, each batch uses one of
  them at random, as DeiT does;
* in the loss: label smoothing (Szegedy et al. 2016), ``F.cross_entropy(label_smoothing=)``,
  which also takes the soft targets of mixup / CutMix.

Every random draw comes from torch's global generator, which the Trainer seeds, saves and
restores: a resumed run augments exactly as the uninterrupted one would have (with
``num_workers=0``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pixseq.errors import PixseqError


@dataclass
class AugmentSettings:
    """What :class:`ImageAugment` and :class:`BatchMix` do (all off by default)."""

    crop_pad: int = 0
    flip: bool = False
    randaugment: int = 0  # RandAugment magnitude 1..30; 0: off
    randaugment_ops: int = 2
    mixup: float = 0.0  # Beta(alpha, alpha) of mixup; 0: off
    cutmix: float = 0.0  # Beta(alpha, alpha) of CutMix; 0: off

    def __post_init__(self) -> None:
        if self.crop_pad < 0:
            raise PixseqError(f"--crop-pad must be >= 0, got {self.crop_pad}")
        if not 0 <= self.randaugment <= 30:
            raise PixseqError(f"--randaugment is a magnitude in 1..30 (0: off), got {self.randaugment}")
        if self.randaugment_ops < 1:
            raise PixseqError(f"RandAugment needs at least one operation, got {self.randaugment_ops}")
        for flag, alpha in (("--mixup", self.mixup), ("--cutmix", self.cutmix)):
            if not (alpha >= 0 and alpha < float("inf")):  # NaN fails too
                raise PixseqError(f"{flag} is a Beta distribution's alpha (> 0; 0: off), got {alpha}")

    @property
    def per_image(self) -> bool:
        return bool(self.crop_pad or self.flip or self.randaugment)


class ImageAugment:
    """Per-image augmentation of a uint8 ``(3, H, W)`` tensor (same size out)."""

    def __init__(self, settings: AugmentSettings) -> None:
        from torchvision.transforms import v2

        self.settings = settings
        self.randaugment = (v2.RandAugment(settings.randaugment_ops, settings.randaugment)
                            if settings.randaugment else None)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        s = self.settings
        if s.crop_pad:
            H, W = image.shape[-2:]
            padded = F.pad(image, (s.crop_pad,) * 4)  # zeros, as torchvision's RandomCrop(padding=)
            top, left = torch.randint(0, 2 * s.crop_pad + 1, (2,)).tolist()
            image = padded[:, top:top + H, left:left + W]
        if s.flip and torch.rand(()) < 0.5:
            image = image.flip(-1)
        if self.randaugment is not None:
            image = self.randaugment(image)
        return image.contiguous()


class BatchMix:
    """Mixup / CutMix of a float batch: ``(images, labels) -> (images, soft targets (B, K))``."""

    def __init__(self, settings: AugmentSettings, num_classes: int) -> None:
        from torchvision.transforms import v2

        mixers = []
        if settings.mixup:
            mixers.append(v2.MixUp(alpha=settings.mixup, num_classes=num_classes))
        if settings.cutmix:
            mixers.append(v2.CutMix(alpha=settings.cutmix, num_classes=num_classes))
        self.mix = None if not mixers else mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)

    @property
    def active(self) -> bool:
        return self.mix is not None

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mix(images, labels)


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` ``(B, K)`` against class ids ``(B,)`` or soft targets
    ``(B, K)``, with label smoothing (the target mixed with the uniform distribution)."""
    return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)
