"""``pixseq sample``: draw images from a token-image model (iGPT, VQGAN + GPT) as one grid.

Also holds the helpers the other model-using verbs share (loading a model directory,
class arguments, sampling options, legible grids of tiny images).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from pixseq.errors import PixseqError
# the class lookup the Python API's ``labels`` use too; class_names is re-exported for the verbs
from pixseq.models.base import class_index, class_names  # noqa: F401

HELP = "sample images from an igpt / taming model into one grid image"

#: Model kinds with a tokenizer + prior (the TokenImageModel contract in models/base.py).
TOKEN_MODEL_KINDS = ("igpt", "taming")


# ---------------------------------------------------------------- shared helpers
def load_token_model(directory: str, device: torch.device) -> torch.nn.Module:
    """A TokenImageModel from a model directory, on ``device``, in eval mode."""
    from pixseq.checkpoint import from_pretrained

    return from_pretrained(directory, expected_kind=TOKEN_MODEL_KINDS).to(device).eval()


def refuse_existing_model(directory: str | Path, force: bool) -> None:
    """Refuse to overwrite a finished model directory unless ``force``."""
    if (Path(directory) / "config.json").exists() and not force:
        raise PixseqError(f"{directory} already holds a model; use --force to overwrite it (or another --out)")


def parse_class(model, value: str | None) -> int | None:
    """``--class`` as an index; accepts an index or a stored class name (case-insensitive)."""
    if value is None:
        return None
    if not model.num_classes:
        raise PixseqError("--class given but this model is unconditional (it was trained without classes)")
    return class_index(model, value, what="--class")  # the same lookup as the Python API's labels


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    """--temperature, --top-k, --top-p."""
    parser.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (default 1.0)")
    parser.add_argument("--top-k", type=int, default=None, help="sample only among the K likeliest tokens")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling: smallest set with mass P")


def check_sampling_options(args: argparse.Namespace) -> None:
    """PixseqError for a bad --temperature, --top-k or --top-p (call before any work or notice)."""
    if not 0 < args.temperature < math.inf:  # inf passed here and failed in the sampler, after notices
        raise PixseqError(f"--temperature must be a finite number > 0, got {args.temperature}")
    if args.top_k is not None and args.top_k < 1:
        raise PixseqError(f"--top-k must be >= 1, got {args.top_k}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise PixseqError(f"--top-p must be in (0, 1], got {args.top_p}")


def sampling_kwargs(args: argparse.Namespace, device: torch.device) -> dict:
    """Validated sampling options + a seeded generator on ``device``."""
    check_sampling_options(args)
    gen = torch.Generator(device).manual_seed(args.seed)
    return dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, generator=gen)


def to_uint8_batch(images: torch.Tensor) -> list[np.ndarray]:
    """``(B, 3, H, W)`` float in [0, 1] -> list of ``(H, W, 3)`` uint8."""
    from pixseq.io import to_uint8

    return [to_uint8(im) for im in images]


#: Images sampled per model call (bounded KV-cache memory).
SAMPLE_BATCH = 64
#: Most images one command draws into its one grid image (``sample -n``, ``complete -n``):
#: beyond it a grid is too large to look at, and a huge -n failed in an allocation.
MAX_SAMPLES = 10_000


def check_num(num: int) -> None:
    """``-n`` of the verbs that draw images into one grid: 1..:data:`MAX_SAMPLES`."""
    if not 1 <= num <= MAX_SAMPLES:
        raise PixseqError(f"-n must be from 1 to {MAX_SAMPLES} (one grid image), got {num}")


def legible_scale(height: int, min_side: int = 84) -> int:
    """Integer nearest-neighbour zoom so tiny images (16x16, 28x28) stay legible in a grid."""
    return max(1, math.ceil(min_side / max(1, height)))


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"HxW"`` or ``"N"`` -> ``(H, W)``."""
    if text is None:
        return None
    parts = text.lower().split("x")
    try:
        hw = tuple(int(p) for p in parts)
    except ValueError:
        hw = ()
    if len(hw) == 1:
        hw = (hw[0], hw[0])
    if len(hw) != 2 or min(hw) < 1:
        raise PixseqError(f"--size must look like 64x96 (height x width), got {text!r}")
    from pixseq.io import MAX_PIXELS

    if hw[0] * hw[1] > MAX_PIXELS:  # a typo such as 5600x5600 -> 56000x56000 sampled for days
        raise PixseqError(f"--size {hw[0]}x{hw[1]} is more than pixseq's image limit of {MAX_PIXELS} pixels")
    return hw  # type: ignore[return-value]


# ---------------------------------------------------------------- the verb
def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import path_arg

    parser.add_argument("--model", required=True, help="model directory (pixseq train igpt / train prior / convert)")
    parser.add_argument("-n", "--num", type=int, default=16, help="number of images (default 16)")
    parser.add_argument("--out", required=True, type=path_arg, help="output grid image, e.g. samples.png")
    parser.add_argument("--class", dest="cls", default=None,
                        help="class index or name (class-conditional models; default: cycle through all classes)")
    add_sampling_options(parser)
    parser.add_argument("--size", default=None,
                        help="output size HxW; larger than trained needs a model with sliding-window sampling")
    parser.add_argument("--ncol", type=int, default=None, help="grid columns (default: one per class, or square)")


def sample_images(model, num: int, cls: int | None, size: tuple[int, int] | None, **sampling) -> tuple[torch.Tensor, int]:
    """Sample ``num`` images; returns them and a sensible grid width.

    A class-conditional model without ``cls`` cycles through its classes (one grid column each).
    """
    ncol = None
    labels = None
    if model.num_classes:
        if cls is None:
            labels = torch.arange(num) % model.num_classes
            ncol = min(num, model.num_classes)
        else:
            labels = torch.full((num,), cls, dtype=torch.long)
    kwargs = dict(sampling)
    if size is not None and tuple(size) != tuple(model.image_size):
        import inspect

        if "size" not in inspect.signature(model.generate).parameters:
            raise PixseqError(f"this {model.kind} model samples only its trained size "
                              f"{model.image_size[0]}x{model.image_size[1]}; drop --size")
        kwargs["size"] = tuple(size)
    # In batches: the KV caches of a whole -n at once can need gigabytes (an 'm' iGPT: ~17 MB
    # per 32x32 image). Up to one batch, the samples are those of a single call.
    images = [model.generate(len(part), None if labels is None else labels[part], **kwargs)
              for part in torch.arange(num).split(SAMPLE_BATCH)]
    return torch.cat(images), ncol or math.ceil(math.sqrt(num))


def run(args: argparse.Namespace) -> int:
    from pixseq.cli.common import check_image_output, plural, resolve_device, seed_everything
    from pixseq.io import save_image
    from pixseq.report import make_grid

    check_num(args.num)
    if args.ncol is not None and args.ncol < 1:
        raise PixseqError(f"--ncol must be >= 1, got {args.ncol}")
    check_sampling_options(args)
    out = check_image_output(args.out)
    size = parse_size(args.size)
    device = resolve_device(args.device)
    seed_everything(args.seed)
    model = load_token_model(args.model, device)
    condition = getattr(getattr(model, "config", None), "condition", "")  # taming: "", "lowres" or "edges"
    if condition:  # the library's "give one per sample" names no way to do that from here
        raise PixseqError(f"{args.model} is conditioned on {condition!r} images, which pixseq sample does not "
                          f"take: use pixseq complete IMAGE --model {args.model}, or model.generate(n, "
                          f"cond_images=...) in Python")
    cls = parse_class(model, args.cls)
    images, ncol = sample_images(model, args.num, cls, size, **sampling_kwargs(args, device))
    tiles = to_uint8_batch(images)
    ncol = min(args.ncol, args.num) if args.ncol else ncol  # more columns than images: empty space
    save_image(make_grid(tiles, ncol=ncol, scale=legible_scale(tiles[0].shape[0])), out)
    what = f"class {cls}" if cls is not None else ("unconditional" if not model.num_classes else
                                                   "all classes" if args.num >= model.num_classes else
                                                   # fewer samples than classes: the first -n classes only
                                                   "class 0" if args.num == 1 else f"classes 0..{args.num - 1}")
    print(f"wrote {out}: {plural(args.num, 'sample')} ({what}), {tiles[0].shape[0]}x{tiles[0].shape[1]} each")
    return 0
