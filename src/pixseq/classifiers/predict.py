"""Classify images with a trained classifier: the library side of ``pixseq classify``.

::

    import pixseq
    model = pixseq.load_model("runs/vit")                  # any pixseq classifier directory
    preds = pixseq.classify(model, ["shoe.png", "bag.jpg"], top_k=3)
    preds[0].label, preds[0].probability, preds[0].top      # 'Sneaker', 0.93, [('Sneaker', 0.93), ...]
    probs = pixseq.predict(model, images)                   # (B, K) tensor, images (B, 3, H, W) in [0, 1]

Images of another size than the model's are resized to it (no crop, antialiased; the
classifier was trained at that size), with a notice saying how many.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from pixseq.errors import PixseqError
from pixseq.runtime import notice, plural

ImageInput = "torch.Tensor | Sequence[np.ndarray | str | os.PathLike]"


@dataclass
class Prediction:
    """One image's top-k classes: ``top`` is ``[(class name, probability), ...]``, best first."""

    name: str
    top: list[tuple[str, float]] = field(default_factory=list)
    index: int = -1

    @property
    def label(self) -> str:
        return self.top[0][0]

    @property
    def probability(self) -> float:
        return self.top[0][1]


def check_classifier(model) -> None:
    """PixseqError unless ``model`` is a classifier (has ``predict`` and class names)."""
    if not callable(getattr(model, "predict", None)) or not hasattr(model, "class_names"):
        kind = getattr(model, "kind", type(model).__name__)
        raise PixseqError(f"a {kind!r} model is not a classifier (train one with `pixseq train vit`)")


def as_batch(model, images) -> tuple[torch.Tensor, list[str]]:
    """``images`` (a ``(B, 3, H, W)`` tensor in [0, 1], uint8 ``(H, W, 3)`` arrays or image
    files) as one tensor at the model's size, and a name per image; images of other sizes
    are resized, with one notice."""
    from pixseq.io import load_image, to_tensor

    if isinstance(images, torch.Tensor):
        if images.dim() != 4 or images.size(1) != 3 or not images.dtype.is_floating_point:
            raise PixseqError(f"images must be a float (B, 3, H, W) tensor in [0, 1], got {images.dtype} "
                              f"{tuple(images.shape)}")
        names = [str(i) for i in range(len(images))]
        items = [images[i:i + 1] for i in range(len(images))]
    else:
        if isinstance(images, (str, os.PathLike, np.ndarray)):
            images = [images]
        names, items = [], []
        for i, im in enumerate(images):
            if isinstance(im, (str, os.PathLike)):
                names.append(str(im))
                im = load_image(im)
            else:
                names.append(str(i))
            arr = np.asarray(im)
            if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
                raise PixseqError(f"image {names[-1]}: expected uint8 (H, W, 3), got {arr.dtype} {arr.shape}")
            items.append(to_tensor(np.ascontiguousarray(arr))[None])
    if not items:
        raise PixseqError("no images to classify")
    H, W = model.image_size
    other = sorted({tuple(x.shape[-2:]) for x in items} - {(H, W)})
    if other:
        n = sum(tuple(x.shape[-2:]) != (H, W) for x in items)
        sizes = ", ".join(f"{w}x{h}" for h, w in other[:3]) + (" ..." if len(other) > 3 else "")
        notice(f"{plural(n, 'image')} of another size ({sizes}) resized to the model's {W}x{H} (no crop)")
    return torch.cat([model.prepare(x.float()) for x in items]), names


def predict(model, images, batch_size: int = 256) -> torch.Tensor:
    """Class probabilities ``(B, K)`` (softmax), on the CPU, for :func:`as_batch`'s inputs."""
    check_classifier(model)
    x, _ = as_batch(model, images)
    return model.predict(x, batch_size).cpu()


def classify(model, images, top_k: int = 5, batch_size: int = 256) -> list[Prediction]:
    """The ``top_k`` likeliest classes of each image, with their names and probabilities."""
    check_classifier(model)
    if top_k < 1:
        raise PixseqError(f"--top-k must be >= 1, got {top_k}")
    x, names = as_batch(model, images)
    probs = model.predict(x, batch_size).cpu()
    k = min(top_k, probs.size(1))
    values, indices = probs.topk(k, dim=-1)
    classes = model.class_names
    return [Prediction(name, [(classes[j], float(v)) for v, j in zip(vs.tolist(), ix.tolist())], int(ix[0]))
            for name, vs, ix in zip(names, values, indices)]


def image_files(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """The image files ``inputs`` name: files as given, folders expanded (recursively, sorted)."""
    from pixseq.io import list_images

    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = list_images(path)
            if not found:
                raise PixseqError(f"no images found in folder {path}")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise PixseqError(f"not found: {path}")
    return files


def format_predictions(preds: list[Prediction]) -> str:
    """A markdown table: image, top-1 class and probability, the rest of the top-k."""
    lines = ["| image | class | probability | next |", "|---|---|---:|---|"]
    for p in preds:
        rest = ", ".join(f"{n} {v:.3f}" for n, v in p.top[1:])
        lines.append(f"| {p.name} | {p.label} | {p.probability:.3f} | {rest} |")
    return "\n".join(lines)
