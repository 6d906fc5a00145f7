"""``pixseq evaluate``: a trained model's numbers on a data spec, without training.

* ``igpt``: negative log-likelihood of the images' palette tokens, in bits per pixel (one
  token per pixel) and nats;
* ``taming`` (VQGAN + latent GPT): the prior's negative log-likelihood of the codes, in bits
  per code and per pixel (bits per code x codes / pixels);
* ``vqgan``: reconstruction of centre crops, PSNR (mean over images of each image's PSNR,
  peak 1, on the float output), L1 and MSE.

These are the numbers ``--val-data`` records during training (the same ``eval_step`` of each
model's training task), so a converted checkpoint (``pixseq convert hf-imagegpt``) and a
pixseq-trained model are measured alike. Class-conditional models are fed each image's class,
matched by name to the model's stored classes; unlabelled data uses the model's "any class"
token when it has one.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pixseq.cli.common import path_arg, plural

HELP = "measure a model on data: bits per pixel (igpt, taming prior) or reconstruction PSNR (vqgan)"

KINDS = ("igpt", "taming", "vqgan")


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model directory (igpt, taming or vqgan)")
    parser.add_argument("--data", required=True, help="data spec: fashion-mnist[:train|test], a folder, photos")
    parser.add_argument("--limit", type=int, default=1000, metavar="N", help="the first N images (default 1000)")
    parser.add_argument("--batch-size", type=int, default=32, metavar="B", help="images per batch (default 32)")
    parser.add_argument("--image-size", type=int, default=None, metavar="N",
                        help="vqgan: side of the centre crops (default: the size it was trained at)")
    parser.add_argument("--json", type=path_arg, default=None, metavar="FILE", help="also write the numbers as JSON")


def run(args: argparse.Namespace) -> int:
    from pixseq.checkpoint import from_pretrained, model_id
    from pixseq.cli.common import check_output, resolve_device
    from pixseq.data import load_data
    from pixseq.errors import PixseqError
    from pixseq.train.trainer import eval_sums

    for flag, value in (("--limit", args.limit), ("--batch-size", args.batch_size), ("--image-size", args.image_size)):
        if value is not None and value < 1:
            raise PixseqError(f"{flag} must be >= 1, got {value}")
    if args.json is not None:
        check_output(args.json, "--json")
        _check_json_target(args.json, args.model, args.data)
    device = resolve_device(args.device)
    model = from_pretrained(args.model, expected_kind=KINDS).to(device).eval()
    if args.image_size is not None and model.kind != "vqgan":
        raise PixseqError(f"--image-size is for vqgan models; a {model.kind} model has its own size")
    data = load_data(args.data, limit=args.limit)
    task, dataset, how = _task_and_data(model, data, args)
    sums = eval_sums(task, dataset, range(len(dataset)), args.batch_size, device)  # (under no_grad)
    means = {k: v / len(dataset) for k, v in sums.items()}
    if model.kind == "taming":
        h, w = model.grid
        H, W = model.image_size
        means["bits_per_pixel"] = means["bits_per_code"] * h * w / (H * W)
    print(f"{args.model} ({model.kind}) on {plural(len(dataset), 'image')} of {args.data} ({how}):")
    for line in _lines(model.kind, means):
        print(f"  {line}")
    if args.json is not None:
        from pixseq.io import atomic_write, strict_json

        doc = {"model": str(args.model), "model_id": model_id(args.model), "kind": model.kind, "data": args.data,
               "images": len(dataset), "how": how, **strict_json(dict(sorted(means.items())))}
        with atomic_write(args.json, "w") as fh:
            json.dump(doc, fh, indent=2)
    return 0


def _check_json_target(path: Path, model: str, data: str) -> None:
    """``--json`` must not replace a file of the model directory (its config, weights or
    training state) or of a data folder (an input image): refused before any work."""
    from pixseq.cli.common import real_path
    from pixseq.errors import PixseqError

    where = real_path(path)
    if not where.is_file():
        return
    for root, what in ((Path(model), "--model directory"), (Path(data), "--data folder")):
        if root.is_dir() and real_path(root) in where.parents:
            raise PixseqError(f"--json {path} is a file of the {what} {root}; choose another file")


def _task_and_data(model, data, args) -> tuple[Any, Any, str]:
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
    from pixseq.errors import PixseqError
    from pixseq.models.taming_train import ImageDataset, ReconstructionEval, centre_crops

    size = args.image_size or model.pretrained_meta.get("image_size")
    if not size:
        raise PixseqError(f"{args.model} does not record its training size; give --image-size")
    task = ReconstructionEval(model)
    crops = centre_crops(data.images, size, what=f"images for centre {size}x{size} crops")
    return task, ImageDataset(crops, size), f"centre {size}x{size} crops"


def _prepared(images, height: int, width: int) -> str:
    """How the images reach the model: "at their own HxW" when all have the model's size
    (saying "resized" then was wrong), else "resized to HxW"."""
    if all(im.shape[:2] == (height, width) for im in images):
        return f"at their own {height}x{width}"
    return f"resized to {height}x{width}"


def _labels(model, data) -> tuple[Any, str]:
    """Class ids for a class-conditional model, and a few words saying where they came from."""
    from pixseq.errors import PixseqError
    from pixseq.models.base import class_names
    from pixseq.probe import NULL_CLASS_NAME

    if not model.num_classes:
        return None, ""
    names = class_names(model)
    labels = data.labels_for(names, "the model's classes") if names else data.labels
    if labels is not None:
        return labels, ", with their class labels"
    if NULL_CLASS_NAME in names:
        import numpy as np

        return np.full(len(data.images), names.index(NULL_CLASS_NAME)), f", unlabelled: class '{NULL_CLASS_NAME}'"
    raise PixseqError(f"this model is class-conditional and {data.spec!r} has no labels: give data labelled with "
                      f"its classes (class sub-folders, or fashion-mnist for a Fashion-MNIST model)")


def _lines(kind: str, means: dict[str, float]) -> list[str]:
    if kind == "igpt":
        return [f"bits/pixel {means['bits_per_pixel']:.4f}   (nats/pixel {means['loss']:.4f})"]
    if kind == "taming":
        return [f"bits/code {means['bits_per_code']:.4f}   bits/pixel {means['bits_per_pixel']:.4f}   "
                f"(nats/code {means['loss']:.4f})"]
    return [f"PSNR {means['psnr_db']:.2f} dB (mean over images)   L1 {means['l1']:.4f}   MSE {means['mse']:.5f}"]
