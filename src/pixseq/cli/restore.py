"""``pixseq restore IMAGE [IMAGE ...] --model DIR --out FOLDER``: restore images with a
``restore`` model (denoise / inpaint / colorize / superres), one output per input.

``--degrade`` takes clean images, applies the model's own training degradation first and
writes ``degraded | restored | original`` side by side. The work is
:func:`pixseq.gans.model.restore_images`."""
from __future__ import annotations

import argparse

HELP = "restore images with a trained restoration GAN (pixseq train restore)"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import add_force_argument, path_arg

    parser.add_argument("image", nargs="+", help="image file(s), any size (superres: the low-resolution input)")
    parser.add_argument("--model", required=True, help="model directory (pixseq train restore)")
    parser.add_argument("--out", required=True, type=path_arg, help="output folder: one PNG per input, same name")
    add_force_argument(parser, "images in --out")
    parser.add_argument("--mask", default=None, help="inpainting: an image as large as the inputs, white where pixels "
                                                     "are missing")
    parser.add_argument("--degrade", action="store_true",
                        help="the inputs are clean: degrade them as in training first, write degraded | restored | "
                             "original")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pixseq.checkpoint import load_model
    from pixseq.device import resolve_device
    from pixseq.errors import PixseqError
    from pixseq.gans.model import restore_images
    from pixseq.io import claim_file_in, claim_output, load_image, save_image
    from pixseq.report.grid import make_grid
    from pixseq.runtime import plural, seed_everything

    inputs = [*args.image, args.mask]
    claim_output(args.out, "--out", folder=True, inputs=inputs)
    targets = [args.out / f"{Path(p).stem}.png" for p in args.image]
    if len(set(targets)) < len(targets):
        raise PixseqError("two inputs have the same file name: their outputs would overwrite each other")
    for target in targets:
        claim_file_in(args.out, target, force=args.force, inputs=inputs)
    images = [load_image(p) for p in args.image]  # missing or broken images: before the model
    mask = load_image(args.mask) if args.mask else None
    seed_everything(args.seed)
    model = load_model(args.model, "restore", resolve_device(args.device))
    if mask is not None and model.task != "inpaint":
        raise PixseqError(f"--mask is for inpainting models; this one does {model.task}")
    results = restore_images(model, images, mask, args.degrade, args.seed)
    args.out.mkdir(exist_ok=True)  # its parent exists (claim_output): only the last level is made
    for (restored, degraded), original, target in zip(results, images, targets):
        save_image(make_grid([degraded, restored, original], ncol=3) if degraded is not None else restored, target)
    print(f"wrote {plural(len(targets), 'image')} to {args.out} ({model.task}"
          f"{', degraded | restored | original' if args.degrade else ''})")
    return 0
