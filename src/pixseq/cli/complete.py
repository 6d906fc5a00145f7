"""``pixseq complete IMAGE [IMAGE ...]``: keep the top rows of images and let the model draw the rest.

The output is one grid with a block of rows per image: original | kept part (the rest
filled blue) | completions, at most
:data:`~pixseq.models.generate.COMPLETIONS_PER_ROW` completions per row (further rows start
under two blank cells), so that ``-n 1000`` makes a tall page rather than a 100,000-pixel-wide
strip. The work is :func:`pixseq.models.generate.completion_grid`.
"""
from __future__ import annotations

import argparse

HELP = "complete the bottom of images with an igpt / taming model (grid rows: original | kept | completions)"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import add_force_argument, path_arg
    from pixseq.cli.sample import add_sampling_options

    parser.add_argument("image", nargs="+", help="image file(s), any size: each is resized to the model's size "
                                                 "with a notice; one block of grid rows per image")
    parser.add_argument("--model", required=True, help="model directory (pixseq train igpt / train prior)")
    parser.add_argument("--keep", type=float, default=0.5,
                        help="fraction of rows kept from the top, in (0, 1) (default 0.5)")
    parser.add_argument("-n", "--num", type=int, default=4, help="number of completions (default 4)")
    parser.add_argument("--out", required=True, type=path_arg, help="output grid image, e.g. completions.png")
    add_force_argument(parser, "--out")
    parser.add_argument("--class", dest="cls", default=None,
                        help="class index or name for class-conditional models (default: the class under "
                             "which the kept rows are most likely)")
    add_sampling_options(parser)


def run(args: argparse.Namespace) -> int:
    from pixseq.checkpoint import load_model
    from pixseq.device import resolve_device
    from pixseq.io import check_image_output, load_image, save_image
    from pixseq.models.base import TOKEN_MODEL_KINDS
    from pixseq.models.generate import (check_completions, check_keep, check_sampling, completion_grid, parse_class,
                                        sampling_options)
    from pixseq.runtime import plural, seed_everything

    # Every option is checked before any notice (the resize, the guessed class): a bad option
    # is then the one line on stderr, not a second line after a notice. --class needs the
    # model's classes, so it is checked right after the model loads.
    check_completions(args.num, len(args.image))
    check_keep(args.keep)
    check_sampling(args.temperature, args.top_k, args.top_p)
    out = check_image_output(args.out, force=args.force, inputs=args.image)
    images = [(path, load_image(path)) for path in args.image]  # missing or broken images: before the model
    device = resolve_device(args.device)
    seed_everything(args.seed)
    model = load_model(args.model, TOKEN_MODEL_KINDS, device)
    cls = parse_class(model, args.cls)  # an unconditional model with --class is an error too
    grid, keep_rows = completion_grid(model, images, args.keep, args.num, cls,
                                      **sampling_options(args.temperature, args.top_k, args.top_p, args.seed, device))
    save_image(grid, out)
    what = f"{plural(len(images), 'image')}, " if len(images) > 1 else ""
    print(f"wrote {out}: {what}original | top {keep_rows} of {model.image_size[0]} rows kept | "
          f"{plural(args.num, 'completion')}{' each' if len(images) > 1 else ''}")
    return 0
