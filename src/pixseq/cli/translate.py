"""``pixseq translate IMAGES --model DIR|cyclegan-vintage [--direction AtoB|BtoA] --out DIR``.

The work is :func:`pixseq.gans.translator.translate_files`."""
from __future__ import annotations

import argparse

HELP = ("translate images with a pix2pix / CycleGAN model, any size (blended tiles, normalised as one image); "
        "offline: --model cyclegan-vintage (modern -> vintage photos)")


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import add_force_argument, path_arg, whole_number
    from pixseq.gans.translator import DEFAULT_OVERLAP, DIRECTIONS
    from pixseq.io import MAX_PIXELS

    parser.add_argument("images", nargs="+", help="image files or folders of images")
    parser.add_argument("--model", required=True,
                        help="a pix2pix / cyclegan model folder, or a zoo name (cyclegan-vintage: vintagify's "
                             "generator, converted once from PyPI vintagify)")
    parser.add_argument("--direction", choices=list(DIRECTIONS), default="AtoB", help="AtoB (default) or BtoA")
    parser.add_argument("--out", required=True, type=path_arg, help="output folder (files keep their stems)")
    add_force_argument(parser, "images in --out")
    parser.add_argument("--tile", type=whole_number, default=None,
                        help="tile side in pixels (0: whole image; default: the largest that fits --tile-memory)")
    parser.add_argument("--overlap", type=whole_number, default=DEFAULT_OVERLAP,
                        help=f"overlap of neighbouring tiles, blended (default {DEFAULT_OVERLAP})")
    parser.add_argument("--tile-memory", type=float, default=None, metavar="GB",
                        help="memory one tile may use, in GB (default: 1 on the CPU, half the free GPU memory)")
    parser.add_argument("--ext", default="png", help="output format (default png)")
    parser.add_argument("--max-pixels", type=whole_number, default=MAX_PIXELS,
                        help=f"refuse images of more pixels (default {MAX_PIXELS})")


def run(args: argparse.Namespace) -> int:
    import pixseq
    from pixseq.device import resolve_device
    from pixseq.errors import PixseqError
    from pixseq.io import claim_output
    from pixseq.gans.translator import TRANSLATOR_KINDS, translate_files
    from pixseq.runtime import seed_everything
    from pixseq.upscale.upscaler import expand_inputs

    if args.tile_memory is not None and not args.tile_memory > 0:
        raise PixseqError(f"--tile-memory must be a positive number of GB, got {args.tile_memory:g}")
    claim_output(args.out, "--out", folder=True, inputs=args.images)  # mistakes before the model loads
    expand_inputs(args.images)  # a missing image before the model is converted or loaded
    device = resolve_device(args.device)
    model = pixseq.load_model(args.model, TRANSLATOR_KINDS, device)
    model.generator(args.direction)  # a direction the model lacks, before any image is read
    print(f"model: {model.describe(args.direction)}")
    seed_everything(args.seed)  # a model with test-time dropout draws from the RNGs

    def report(r) -> None:
        h, w = r.size
        how = "whole" if r.tiles == 1 else f"{r.tiles} tiles of {r.tile} px"
        print(f"{r.source} {w}x{h} ({how}, norm statistics: {r.norm_stats}, {r.seconds:.1f} s): wrote {r.path}")

    budget = int(args.tile_memory * 1e9) if args.tile_memory is not None else None
    translate_files(model, args.images, args.out, args.direction, args.ext, args.max_pixels, on_result=report,
                    force=args.force,
                    tile=args.tile, overlap=args.overlap, memory_budget=budget)
    return 0
