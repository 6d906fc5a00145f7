"""A classifier's numbers on labelled data: accuracy, per-class accuracy, confusion matrix.

``pixseq evaluate --model runs/vit --data fashion-mnist:test`` goes through
:func:`pixseq.models.evaluation.evaluate_model`, which hands classifiers to
:func:`evaluate_classifier`. The data's classes are matched to the model's by name (a
held-out folder may hold a subset of them, in another order); a class the model does not
know is an error naming it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from pixseq.errors import PixseqError


@dataclass
class ClassifierScores:
    """Per-image predictions and what follows from them.

    ``confusion[i, j]``: images of true class ``i`` predicted as ``j`` (rows: truth)."""

    class_names: tuple[str, ...]
    labels: np.ndarray
    predictions: np.ndarray
    loss: float
    #: the evaluated images, uint8 (S, S, 3) at the model's size (for pages of the mistakes)
    images: Sequence[Any] = field(default=(), repr=False)

    @property
    def confusion(self) -> np.ndarray:
        K = len(self.class_names)
        return np.bincount(self.labels * K + self.predictions, minlength=K * K).reshape(K, K)

    @property
    def accuracy(self) -> float:
        return float((self.labels == self.predictions).mean())

    def per_class(self) -> list[tuple[str, int, float]]:
        """``(class name, images of it, accuracy on them)`` for each class present in the data."""
        cm = self.confusion
        counts = cm.sum(1)
        return [(name, int(counts[i]), float(cm[i, i] / counts[i])) for i, name in enumerate(self.class_names)
                if counts[i]]

    def summary(self) -> dict:
        """The numbers as plain JSON values."""
        return {"accuracy": self.accuracy, "loss": self.loss, "class_names": list(self.class_names),
                "per_class": [{"class": n, "images": c, "accuracy": a} for n, c, a in self.per_class()],
                "confusion": self.confusion.tolist()}


def data_labels(model, data) -> np.ndarray:
    """The labelled data set ``data``'s labels as the model's class ids (matched by name when the
    model names its classes)."""
    names = list(getattr(model.config, "class_names", ()))
    labels = data.labels_for(names, "the model's classes") if names else data.labels
    if labels is None:
        data.require_labels("evaluating a classifier")
    labels = np.asarray(labels)
    if len(labels) and (labels.min() < 0 or labels.max() >= model.num_classes):
        raise PixseqError(f"labels of {data.spec!r} run to {labels.max()}, but the model has classes "
                          f"0..{model.num_classes - 1}")
    return labels


@torch.no_grad()
def evaluate_classifier(model, images, labels: np.ndarray, batch_size: int = 256,
                        device: torch.device | str = "cpu") -> ClassifierScores:
    """Predict uint8 ``(H, W, 3)`` ``images`` (resized to the model's size) and score them
    against ``labels`` (the model's class ids)."""
    from pixseq.classifiers.task import LabelledImages, batch_images

    model = model.to(device).eval()
    data = LabelledImages(images, labels, model.config.image_size)
    preds, loss = [], 0.0
    for i in range(0, len(data), batch_size):
        x = batch_images({"image": data.images[i:i + batch_size]}).to(device)
        y = data.labels[i:i + batch_size].to(device)
        logits = model(x).float()
        loss += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
        preds.append(logits.argmax(-1).cpu())
    if not preds:
        raise PixseqError("no images to evaluate")
    return ClassifierScores(tuple(model.class_names), data.labels.numpy(), torch.cat(preds).numpy(),
                            loss / len(data), images=data.images.permute(0, 2, 3, 1).numpy())


def format_scores(scores: ClassifierScores) -> list[str]:
    """Accuracy, per-class accuracy and the confusion matrix as printed lines."""
    lines = [f"accuracy {scores.accuracy:.4f}   (cross-entropy {scores.loss:.4f} nats)", "",
             "| class | images | accuracy |", "|---|---:|---:|"]
    lines += [f"| {n} | {c} | {a:.4f} |" for n, c, a in scores.per_class()]
    cm, names = scores.confusion, scores.class_names
    short = [n[:10] for n in names]
    lines += ["", "confusion matrix (rows: true class, columns: predicted)",
              "| true \\ predicted | " + " | ".join(short) + " |", "|---|" + "---:|" * len(names)]
    lines += [f"| {short[i]} | " + " | ".join(str(v) for v in row) + " |" for i, row in enumerate(cm)
              if row.sum()]
    return lines
