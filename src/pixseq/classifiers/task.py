"""What the one Trainer drives for a classifier: a labelled-image dataset and a one-part task.

:class:`LabelledImages` holds uint8 images at the model's size (augmented per item when
asked); :class:`ClassifierTask` is the Trainer's view of a classifier, one optimizer
(``"model"``) over all its weights, like :class:`~pixseq.models.igpt.IGPTTask`.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from pixseq.classifiers.augment import AugmentSettings, BatchMix, ImageAugment, classification_loss
from pixseq.errors import PixseqError


class LabelledImages(Dataset):
    """Images for a classifier: items ``{"image": uint8 (3, S, S), "label": () long}``.

    ``images``: uint8 ``(N, H, W, 3)`` arrays (a list or one array), resized (bicubic, no
    crop) to ``size`` once here; ``augment``: applied to each item as it is read.
    """

    def __init__(self, images: np.ndarray | Sequence[np.ndarray], labels, size: int,
                 augment: ImageAugment | None = None) -> None:
        from pixseq.data import resize_square

        images = resize_square(list(images), size) if len(images) else np.zeros((0, size, size, 3), np.uint8)
        self.images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long).reshape(-1)
        if len(self.labels) != len(self.images):
            raise PixseqError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.augment = augment

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        image = self.images[i]
        if self.augment is not None:
            image = self.augment(image)
        return {"image": image, "label": self.labels[i]}


def batch_images(batch: dict) -> torch.Tensor:
    """A batch's uint8 images as floats in [0, 1] (converted per batch: 4x less to collate)."""
    return batch["image"].float().div_(255.0)


class ClassifierTask:
    """The Trainer's view of an image classifier ``model`` (``model(images) -> logits``).

    The loss is cross-entropy with ``label_smoothing``, against mixup / CutMix soft targets
    when ``augment`` mixes batches. Logged: the loss and, without mixing, the batch's
    accuracy; held out (``eval_step``): loss and accuracy, without smoothing or mixing.
    """

    def __init__(self, model: nn.Module, label_smoothing: float = 0.0,
                 augment: AugmentSettings | None = None) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise PixseqError(f"--label-smoothing must be in [0, 1), got {label_smoothing}")
        self.model, self.label_smoothing = model, label_smoothing
        self.mix = BatchMix(augment or AugmentSettings(), model.num_classes)

    def parts(self) -> list[str]:
        return ["model"]

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def parameters(self, part: str) -> Iterable[nn.Parameter]:
        return self.model.parameters()

    def training_step(self, batch: dict, step: int, part: str) -> tuple[torch.Tensor, dict]:
        images, labels = batch_images(batch), batch["label"]
        targets = labels
        if self.mix.active:
            images, targets = self.mix(images, labels)
        logits = self.model(images)
        loss = classification_loss(logits, targets, self.label_smoothing)
        scalars = {"loss": loss.detach()}
        if not self.mix.active:  # the accuracy of a mixed batch would not mean much
            scalars["accuracy"] = (logits.detach().argmax(-1) == labels).float().mean()
        return loss, scalars

    def eval_step(self, batch: dict) -> dict[str, float]:
        labels = batch["label"]
        logits = self.model(batch_images(batch)).float()
        return {"loss": float(F.cross_entropy(logits, labels)),
                "accuracy": float((logits.argmax(-1) == labels).float().mean())}

    def count_flops(self, batch: dict) -> float:
        return self.model.flops_per_image() * batch["label"].numel() if hasattr(self.model, "flops_per_image") else 0.0


def augmenter(settings: AugmentSettings) -> ImageAugment | None:
    """The per-image augmentation of ``settings`` (None when it does nothing)."""
    return ImageAugment(settings) if settings.per_image else None
