"""``pixseq decompress FILE.pxs --out FILE.png [--model DIR]``: a .pxs file -> the decoded image.

The work is :func:`pixseq.codec.files.decompress_file`."""
from __future__ import annotations

import argparse

HELP = "decompress a .pxs file to an image (the file names the model that can decode it)"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import add_force_argument, path_arg

    parser.add_argument("file", help=".pxs file written by `pixseq compress`")
    parser.add_argument("--out", required=True, type=path_arg, help="output image (format from the suffix, e.g. .png)")
    parser.add_argument("--model", default=None,
                        help="model directory (default: the directory recorded in the file, hash-checked)")
    add_force_argument(parser, "--out")


def run(args: argparse.Namespace) -> int:
    from pixseq.codec.files import decompress_file
    from pixseq.io import check_image_output, save_image
    from pixseq.runtime import notice, seed_everything

    out = check_image_output(args.out, force=args.force, inputs=[args.file])
    seed_everything(args.seed)
    image, model_dir, data = decompress_file(args.file, args.model, args.device)
    save_image(image, out)
    if not args.model:
        notice(f"decoded with the model recorded in the file: {model_dir}")
    print(f"wrote {out}: {image.shape[1]}x{image.shape[0]} pixels from {len(data)} bytes "
          f"({len(data) * 8 / (image.shape[0] * image.shape[1]):.4f} bpp)")
    return 0
