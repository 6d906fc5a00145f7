"""``pixseq evaluate``: a trained model's numbers on a data spec, without training.

* ``igpt``: negative log-likelihood of the images' palette tokens, in bits per pixel (one
  token per pixel) and nats;
* ``taming`` (VQGAN + latent GPT): the prior's negative log-likelihood of the codes, in bits
  per code and per pixel (bits per code x codes / pixels);
* ``vqgan``: reconstruction of centre crops, PSNR (mean over images of each image's PSNR,
  peak 1, on the float output), L1 and MSE;
* ``vit`` (a classifier): accuracy, accuracy per class and the confusion matrix
  (:mod:`pixseq.classifiers.evaluate`; ``pixseq evaluate --html DIR`` also writes them as a page).

These are the numbers ``--val-data`` records during training (the same ``eval_step`` of each
model's training task), so a converted checkpoint (``pixseq convert hf-imagegpt``) and a
pixseq-trained model are measured alike. Class-conditional models are fed each image's class,
matched by name to the model's stored classes; unlabelled data uses the model's "any class"
token when it has one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixseq.errors import PixseqError

#: Model kinds ``evaluate`` measures.
EVAL_KINDS = ("igpt", "taming", "vqgan", "vit", "gan", "restore")


@dataclass
class Evaluation:
    """Mean scores over ``images`` images of ``data``, and how they were prepared."""

    kind: str
    data: str
    images: int
    how: str
    means: dict[str, float]
    #: a classifier's :class:`~pixseq.classifiers.evaluate.ClassifierScores` (per class, confusion)
    details: Any = field(default=None, repr=False)

    def lines(self) -> list[str]:
        """The scores as printed, one line per model kind (a classifier: its tables too)."""
        m = self.means
        if self.kind == "vit":
            from pixseq.classifiers.evaluate import format_scores

            return format_scores(self.details)
        if self.kind == "gan":
            line = (f"FID {m['fid']:.2f}   KID {m['kid']:.4f} ± {m['kid_std']:.4f}"
                    + (f"   IS {m['is']:.2f} ± {m['is_std']:.2f}" if "is" in m else "   (IS needs the official "
                       "Inception weights' classifier)"))
            return [line]
        if self.kind == "restore":
            return [f"PSNR {m['psnr_db']:.2f} dB restored vs {m['input_psnr_db']:.2f} dB degraded (mean over images)"
                    f"   L1 {m['l1']:.4f}   MSE {m['mse']:.5f}"]
        if self.kind == "igpt":
            return [f"bits/pixel {m['bits_per_pixel']:.4f}   (nats/pixel {m['loss']:.4f})"]
        if self.kind == "taming":
            return [f"bits/code {m['bits_per_code']:.4f}   bits/pixel {m['bits_per_pixel']:.4f}   "
                    f"(nats/code {m['loss']:.4f})"]
        return [f"PSNR {m['psnr_db']:.2f} dB (mean over images)   L1 {m['l1']:.4f}   MSE {m['mse']:.5f}"]


def check_eval_options(model, limit: int | None, batch_size: int, image_size: int | None) -> None:
    """The options of :func:`evaluate_model` that can be wrong, checked before any data load."""
    for flag, value in (("--limit", limit), ("--batch-size", batch_size), ("--image-size", image_size)):
        if value is not None and value < 1:
            raise PixseqError(f"{flag} must be >= 1, got {value}")
    if model is not None and image_size is not None and model.kind not in ("vqgan", "restore"):
        raise PixseqError(f"--image-size is for vqgan models; a {model.kind} model has its own size")


def evaluate_model(model, data: str, limit: int | None = 1000, batch_size: int = 32,
                   image_size: int | None = None, device: torch.device | str = "cpu",
                   samples: int | None = None) -> Evaluation:
    """``pixseq evaluate`` as one call: ``model`` (on ``device``) on the first ``limit``
    images of the data spec ``data``; a ``gan``: FID/KID(/IS) of ``samples`` samples (default
    as many as the images) against them (:func:`pixseq.gans.evaluate.evaluate_generator`)."""
    from pixseq.data import load_data
    from pixseq.train.trainer import eval_sums

    check_eval_options(model, limit, batch_size, image_size)
    images = load_data(data, limit=limit)
    if model.kind == "vit":
        return _evaluate_classifier(model, images, batch_size, device)
    if model.kind == "gan":
        return _evaluate_generator(model, images, samples)
    task, dataset, how = _task_and_data(model, images, image_size)
    sums = eval_sums(task, dataset, range(len(dataset)), batch_size, torch.device(device))  # (under no_grad)
    means = {k: v / len(dataset) for k, v in sums.items()}
    if model.kind == "taming":
        h, w = model.grid
        H, W = model.image_size
        means["bits_per_pixel"] = means["bits_per_code"] * h * w / (H * W)
    return Evaluation(model.kind, data, len(dataset), how, means)


def check_json_target(path: Path, model: str, data: str) -> None:
    """A JSON output must not replace a file of the model directory (its config, weights or
    training state) or of a data folder (an input image): refused before any work."""
    from pixseq.io import real_path

    where = real_path(path)
    if not where.is_file():
        return
    for root, what in ((Path(model), "--model directory"), (Path(data), "--data folder")):
        if root.is_dir() and real_path(root) in where.parents:
            raise PixseqError(f"--json {path} is a file of the {what} {root}, an input; choose another file "
                              f"(--force never overwrites an input)")


def write_json(result: Evaluation, path: Path, model_dir: str) -> None:
    """The scores, the model's id and the data as strict JSON, written atomically."""
    from pixseq.checkpoint import model_id
    from pixseq.io import atomic_write, strict_json

    doc = {"model": str(model_dir), "model_id": model_id(model_dir), "kind": result.kind, "data": result.data,
           "images": result.images, "how": result.how, **strict_json(dict(sorted(result.means.items())))}
    if result.kind == "vit":
        doc.update(strict_json({k: v for k, v in result.details.summary().items() if k not in result.means}))
    with atomic_write(path, "w") as fh:
        json.dump(doc, fh, indent=2)


def _task_and_data(model, data, image_size: int | None) -> tuple[Any, Any, str]:
    """The model's training task (for its ``eval_step``), the evaluation dataset and a few
    words on how the images were prepared."""
    if model.kind == "igpt":
        from pixseq.models.igpt import IGPTTask, IGPTTokenDataset

        labels, said = _labels(model, data)
        side = model.config.image_size
        return (IGPTTask(model), IGPTTokenDataset(model, data.images, labels),
                f"{_prepared(data.images, side, side)}{said}")
    if model.kind == "taming":
        from pixseq.models.taming import TamingTokenDataset
        from pixseq.models.taming_train import PriorTask

        labels, said = _labels(model, data)
        H, W = model.image_size
        return (PriorTask(model), TamingTokenDataset(model, data.images, labels),
                f"{_prepared(data.images, H, W)}{said}")
    if model.kind == "restore":
        from pixseq.gans.tasks import RestoreTask
        from pixseq.gans.train import RestoreImages
        from pixseq.models.taming_train import centre_crops

        size = image_size or model.config.image_size
        crops = centre_crops(data.images, size, what=f"images for centre {size}x{size} crops")
        return (RestoreTask(model, None), RestoreImages(crops, size),
                f"centre {size}x{size} crops, {model.task} degradation seeded per batch")
    from pixseq.models.taming_train import ImageDataset, ReconstructionEval, centre_crops

    size = image_size or model.pretrained_meta.get("image_size")
    if not size:
        raise PixseqError("this vqgan model does not record its training size; give --image-size")
    task = ReconstructionEval(model)
    crops = centre_crops(data.images, size, what=f"images for centre {size}x{size} crops")
    return task, ImageDataset(crops, size), f"centre {size}x{size} crops"


def _evaluate_generator(model, data, samples: int | None) -> Evaluation:
    """A generator's samples against the images (resized to its size when they differ)."""
    from pixseq.data import resize_square
    from pixseq.gans.evaluate import evaluate_generator
    from pixseq.runtime import plural

    side = model.image_size[0]
    images = list(resize_square(data.images, side))
    n = samples or len(images)
    scores = evaluate_generator(model, images, n)
    how = (f"{plural(n, 'sample')} vs the images {_prepared(data.images, side, side)}; {scores.pop('inception')}"
           f"{'; real features from the cache' if scores.pop('cached') else ''}")
    return Evaluation("gan", data.spec, len(images), how, {k: v for k, v in scores.items() if k not in ("samples", "real")})


def _prepared(images, height: int, width: int) -> str:
    """How the images reach the model: "at their own WxH" when all have the model's size
    (saying "resized" then was wrong), else "resized to WxH"."""
    if all(im.shape[:2] == (height, width) for im in images):
        return f"at their own {width}x{height}"
    return f"resized to {width}x{height}"


def _labels(model, data) -> tuple[Any, str]:
    """Class ids for a class-conditional model, and a few words saying where they came from."""
    from pixseq.models.base import class_names
    from pixseq.probe import NULL_CLASS_NAME

    if not model.num_classes:
        return None, ""
    names = class_names(model)
    labels = data.labels_for(names, "the model's classes") if names else data.labels
    if labels is not None:
        return labels, ", with their class labels"
    if NULL_CLASS_NAME in names:
        return np.full(len(data.images), names.index(NULL_CLASS_NAME)), f", unlabelled: class '{NULL_CLASS_NAME}'"
    raise PixseqError(f"this model is class-conditional and {data.spec!r} has no labels: give data labelled with "
                      f"its classes (class sub-folders, or fashion-mnist for a Fashion-MNIST model)")


def _evaluate_classifier(model, data, batch_size: int, device) -> Evaluation:
    """A classifier on labelled data (its classes matched to the model's by name)."""
    from pixseq.classifiers.evaluate import data_labels, evaluate_classifier

    H, W = model.image_size
    scores = evaluate_classifier(model, data.images, data_labels(model, data), batch_size, device)
    return Evaluation("vit", data.spec, len(scores.labels), f"{_prepared(data.images, H, W)}, with their class labels",
                      {"accuracy": scores.accuracy, "loss": scores.loss}, details=scores)


def write_html(result: Evaluation, out_dir: Path, model_dir: str) -> Path:
    """A classifier evaluation's page (``--html``): accuracy, per class, confusion matrix, mistakes."""
    from pixseq.report.classifier import write_classifier_page

    if result.kind != "vit":
        raise PixseqError(f"--html is for classifiers; a {result.kind} model's numbers are printed (and --json)")
    facts = [("model", str(model_dir)), ("data", result.data), ("prepared", result.how)]
    return write_classifier_page(result.details, result.details.images, out_dir,
                                 f"pixseq evaluate: {Path(model_dir).name} on {result.data}", facts)
