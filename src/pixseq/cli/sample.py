"""``pixseq sample``: draw images from a generative model (iGPT, VQGAN + GPT) as one grid.

The work is :func:`pixseq.models.generate.sample_grid`; this module also holds the sampling
options the other model-using verbs share.
"""
from __future__ import annotations

import argparse

HELP = "sample images from an igpt / taming / gan model into one grid image"

def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    """--temperature, --top-k, --top-p."""
    parser.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (default 1.0)")
    parser.add_argument("--top-k", type=int, default=None, help="sample only among the K likeliest tokens")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling: smallest set with mass P")


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import add_force_argument, path_arg

    parser.add_argument("--model", required=True, help="model directory (pixseq train igpt / train prior / convert)")
    parser.add_argument("-n", "--num", type=int, default=16, help="number of images (default 16)")
    parser.add_argument("--out", required=True, type=path_arg, help="output grid image, e.g. samples.png")
    add_force_argument(parser, "--out")
    parser.add_argument("--class", dest="cls", default=None,
                        help="class index or name (class-conditional models; default: cycle through all classes)")
    add_sampling_options(parser)
    parser.add_argument("--size", default=None,
                        help="output size WxH (width x height, e.g. 96x64); larger than trained needs a model with sliding-window sampling")
    parser.add_argument("--ncol", type=int, default=None, help="grid columns (default: one per class, or square)")
    parser.add_argument("--interpolate", type=int, default=None, metavar="STEPS",
                        help="gan models: -n rows, each walking in STEPS images between two latents")


def run(args: argparse.Namespace) -> int:
    from pixseq.checkpoint import load_model
    from pixseq.device import resolve_device
    from pixseq.errors import PixseqError
    from pixseq.io import check_image_output, save_image
    from pixseq.models.base import TOKEN_MODEL_KINDS
    from pixseq.models.generate import (check_num, check_sampling, describe_classes, parse_class, parse_size,
                                        refuse_image_conditioned, sample_grid, sampling_options)
    from pixseq.runtime import plural, seed_everything

    check_num(args.num)
    if args.ncol is not None and args.ncol < 1:
        raise PixseqError(f"--ncol must be >= 1, got {args.ncol}")
    check_sampling(args.temperature, args.top_k, args.top_p)
    out = check_image_output(args.out, force=args.force)
    size = parse_size(args.size)
    device = resolve_device(args.device)
    seed_everything(args.seed)
    model = load_model(args.model, (*TOKEN_MODEL_KINDS, "gan"), device)
    refuse_image_conditioned(model, args.model)
    cls = parse_class(model, args.cls)
    if args.interpolate is not None:
        from pixseq.gans.interpolate import interpolation_grid
        from pixseq.report.grid import legible_scale, make_grid, to_uint8_batch

        check_sampling(args.temperature, args.top_k, args.top_p)
        images = interpolation_grid(model, args.num, args.interpolate, cls,
                                    sampling_options(seed=args.seed, device=device)["generator"], args.temperature)
        tiles = to_uint8_batch(images)
        save_image(make_grid(tiles, ncol=args.interpolate, scale=legible_scale(tiles[0].shape[0])), out)
        print(f"wrote {out}: {plural(args.num, 'row')} of {args.interpolate} images between two latents each")
        return 0
    grid, tiles = sample_grid(model, args.num, cls, size, args.ncol,
                              **sampling_options(args.temperature, args.top_k, args.top_p, args.seed, device))
    save_image(grid, out)
    print(f"wrote {out}: {plural(args.num, 'sample')} ({describe_classes(model, args.num, cls)}), "
          f"{tiles[0].shape[1]}x{tiles[0].shape[0]} each")
    return 0
