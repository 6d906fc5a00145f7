"""``pixseq complete IMAGE [IMAGE ...]``: keep the top rows of images and let the model draw the rest.

The output is one grid with a block of rows per image: original | kept part (the rest
filled blue) | completions, at most :data:`COMPLETIONS_PER_ROW` completions per row (further
rows start under two blank cells), so that ``-n 1000`` makes a tall page rather than a
100,000-pixel-wide strip.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from pixseq.errors import PixseqError

#: Fill colour of the rows the model has to draw (blue: distinct from grey images' own pixels).
MASK_COLOUR = (90, 140, 200)

HELP = "complete the bottom of images with an igpt / taming model (grid rows: original | kept | completions)"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import path_arg

    from pixseq.cli.sample import add_sampling_options

    parser.add_argument("image", nargs="+", help="image file(s), any size: each is resized to the model's size "
                                                 "with a notice; one block of grid rows per image")
    parser.add_argument("--model", required=True, help="model directory (pixseq train igpt / train prior)")
    parser.add_argument("--keep", type=float, default=0.5,
                        help="fraction of rows kept from the top, in (0, 1) (default 0.5)")
    parser.add_argument("-n", "--num", type=int, default=4, help="number of completions (default 4)")
    parser.add_argument("--out", required=True, type=path_arg, help="output grid image, e.g. completions.png")
    parser.add_argument("--class", dest="cls", default=None,
                        help="class index or name for class-conditional models (default: the class under "
                             "which the kept rows are most likely)")
    add_sampling_options(parser)


def fit_to_model(image: np.ndarray, size: tuple[int, int], name: str = "image") -> np.ndarray:
    """Resize ``(H, W, 3)`` uint8 to the model's ``size`` (bicubic), with a notice when it changes."""
    from PIL import Image

    from pixseq.cli.common import notice

    H, W = size
    if image.shape[:2] == (H, W):
        return image
    notice(f"{name} is {image.shape[1]}x{image.shape[0]} (WxH) but the model's context is {W}x{H}; resized to {W}x{H}")
    return np.asarray(Image.fromarray(image).resize((W, H), Image.BICUBIC))


def check_keep(keep: float) -> None:
    """PixseqError unless ``--keep`` is a fraction strictly between 0 and 1."""
    if not 0 < keep < 1:  # written so that NaN fails too
        raise PixseqError(f"--keep must be a fraction strictly between 0 and 1, got {keep}")


def keep_rows_for(keep: float, height: int) -> int:
    """Pixel rows kept for a ``--keep`` fraction: at least one, and at least one left to sample."""
    check_keep(keep)
    if height < 2:  # was the model's "keep_rows must be in 0..0, got 1", after the resize notices
        raise PixseqError(f"the model's images are {height} pixel row high: completing needs a row to keep "
                          "and a row to draw")
    return max(1, min(height - 1, round(keep * height)))


def complete_in_batches(model, x: torch.Tensor, keep_rows: int, num: int, labels: torch.Tensor | None,
                        **sampling) -> torch.Tensor:
    """``model.complete`` in calls of at most ``SAMPLE_BATCH`` outputs, like ``pixseq sample``.

    One call for all of ``-n`` would hold every completion's KV cache at once (gigabytes for
    a large -n). ``x`` is either one image completed ``num`` times (``labels``: its one class,
    or None) or ``B`` images completed once each (``labels``: one per image). Up to one
    batch, the result is that of a single call.
    """
    from pixseq.cli.sample import SAMPLE_BATCH

    if x.size(0) == 1:
        parts = [model.complete(x, keep_rows, num=len(part), labels=labels, **sampling)
                 for part in torch.arange(num).split(SAMPLE_BATCH)]
    else:
        parts = [model.complete(x[part], keep_rows, num=1, labels=None if labels is None else labels[part],
                                **sampling)
                 for part in torch.arange(x.size(0)).split(SAMPLE_BATCH)]
    return torch.cat(parts)


@torch.no_grad()
def guess_class(model, x: torch.Tensor, keep_rows: int) -> int | None:
    """The class under which the kept token rows are likeliest (Bayes with a uniform class prior).

    Returns None when no whole token row is kept (then there is nothing to judge by).
    """
    x = x.to(model.device)
    encode = getattr(model, "encode", model.tokenizer.encode)  # taming pads to whole codes; igpt: pixels
    tokens = encode(x).flatten(1)  # (1, h*w)
    h = model.tokenizer.grid_size(*model.image_size)[0]
    w = tokens.size(1) // h
    kept = (keep_rows * h // model.image_size[0]) * w  # tokens wholly inside the kept rows
    if kept == 0:
        return None
    K = model.num_classes
    labels = torch.arange(K, device=model.device)
    if hasattr(model, "make_cond"):  # taming: class token (+ codes of a conditioning image)
        cond_images = x.expand(K, -1, -1, -1) if getattr(model.config, "condition", "") else None
        cond = model.make_cond(K, labels, cond_images)  # (K, Tc)
    else:
        cond = labels[:, None]  # (K, 1)
    prefix = tokens[:, :kept].expand(K, -1)  # (K, kept)
    logp = model.prior(prefix, cond).float().log_softmax(-1)  # (K, kept, V)
    score = logp.gather(-1, prefix[..., None]).squeeze(-1).sum(1)  # (K,)
    return int(score.argmax())


#: Completions per grid row (the first row also has the original and the kept part).
COMPLETIONS_PER_ROW = 8


def grid_tiles(image: np.ndarray, kept: np.ndarray, completions: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """The cells of the output grid, row by row, and its column count: ``original | kept |``
    up to :data:`COMPLETIONS_PER_ROW` completions per row, blank cells elsewhere."""
    per_row = min(len(completions), COMPLETIONS_PER_ROW)
    blank = np.full_like(image, 255)
    tiles: list[np.ndarray] = []
    for start in range(0, len(completions), per_row):
        row = completions[start:start + per_row]
        tiles += ([image, kept] if start == 0 else [blank, blank]) + row + [blank] * (per_row - len(row))
    return tiles, 2 + per_row


def complete_one(model, image: np.ndarray, keep_rows: int, num: int, cls: int | None, name: str,
                 sampling: dict) -> torch.Tensor:
    """``num`` completions of one model-sized uint8 image: ``(num, 3, H, W)`` in [0, 1].

    A class-conditional model uses ``cls``, else the class under which the kept rows are
    likeliest (with a notice), else (nothing kept to judge by) each class in turn."""
    from pixseq.cli.common import notice
    from pixseq.cli.sample import class_names
    from pixseq.io import to_tensor

    x = to_tensor(image)[None]  # (1, 3, H, W)
    labels = None
    if model.num_classes:
        if cls is None:
            cls = guess_class(model, x, keep_rows)
            names = class_names(model)
            if cls is not None:
                notice(f"no --class given: {name}: using class {cls}{f' ({names[cls]})' if cls < len(names) else ''}, "
                       f"under which the kept rows are most likely")
        labels = torch.full((1,), cls, dtype=torch.long) if cls is not None else torch.arange(num) % model.num_classes
        if cls is None:  # nothing kept to judge by: one completion per class in turn
            x = x.expand(num, -1, -1, -1)
    return complete_in_batches(model, x, keep_rows, num, labels, **sampling)


def run(args: argparse.Namespace) -> int:
    from pixseq.cli.common import (check_image_output, plural, refuse_overwriting_input, resolve_device,
                                   seed_everything)
    from pixseq.cli.sample import (check_num, check_sampling_options, legible_scale, load_token_model, parse_class,
                                   sampling_kwargs, to_uint8_batch)
    from pixseq.io import load_image, save_image
    from pixseq.report import make_grid

    # Every option is checked before any notice (the resize, the guessed class): a bad option
    # is then the one line on stderr, not a second line after a notice. --class needs the
    # model's classes, so it is checked right after the model loads.
    check_num(args.num)
    from pixseq.cli import sample as sample_verb

    total = args.num * len(args.image)
    if total > sample_verb.MAX_SAMPLES:  # -n alone is bounded; -n per image multiplied past the bound
        raise PixseqError(f"{len(args.image)} images x -n {args.num} = {total} completions, more than the "
                          f"{sample_verb.MAX_SAMPLES} of one grid image: give fewer images or a smaller -n")
    check_keep(args.keep)
    check_sampling_options(args)
    out = check_image_output(args.out)
    for path in args.image:
        refuse_overwriting_input(out, path)
    images = [load_image(path) for path in args.image]  # missing or broken images: before the model loads
    device = resolve_device(args.device)
    seed_everything(args.seed)
    model = load_token_model(args.model, device)
    cls = parse_class(model, args.cls)  # an unconditional model with --class is an error too
    H, W = model.image_size
    keep_rows = keep_rows_for(args.keep, H)
    sampling = sampling_kwargs(args, device)
    tiles, ncol = [], 0
    for path, image in zip(args.image, images):
        image = fit_to_model(image, (H, W), name=path)
        completions = complete_one(model, image, keep_rows, args.num, cls, path, sampling)
        kept = image.copy()
        kept[keep_rows:] = MASK_COLOUR  # the part the model has to draw
        block, ncol = grid_tiles(image, kept, to_uint8_batch(completions))
        tiles += block
    save_image(make_grid(tiles, ncol=ncol, scale=legible_scale(H)), out)
    what = f"{plural(len(images), 'image')}, " if len(images) > 1 else ""
    print(f"wrote {out}: {what}original | top {keep_rows} of {H} rows kept | {plural(args.num, 'completion')}"
          f"{' each' if len(images) > 1 else ''}")
    return 0
