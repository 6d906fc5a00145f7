"""``pixseq compress IMAGE --model DIR --out FILE.pxs``: an image -> a .pxs file (tokens entropy-coded by the prior).

The work is :func:`pixseq.codec.files.compress_file`."""
from __future__ import annotations

import argparse

HELP = "compress an image to a .pxs file with a tokenizer + prior model (neural codec)"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import path_arg

    parser.add_argument("image", help="image file to compress")
    parser.add_argument("--model", required=True, help="model directory (iGPT, or VQGAN + latent GPT)")
    parser.add_argument("--out", required=True, type=path_arg, help="output .pxs file")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.add_argument("--scale", type=int, default=1,
                        help="code the image downscaled by this integer factor (lower rate; default 1)")
    parser.add_argument("--batch", type=int, default=16, help="tiles coded at once (memory vs speed; default 16)")
    parser.add_argument("--label", type=int, default=None, help="class label for a class-conditional prior")
    parser.add_argument("--no-path", action="store_true",
                        help="do not record the model directory in the file (saves its bytes)")


def run(args: argparse.Namespace) -> int:
    from pixseq.checkpoint import load_model
    from pixseq.codec import CODEC_MODEL_KINDS
    from pixseq.codec.files import check_pxs_output, compress_file
    from pixseq.device import resolve_device
    from pixseq.io import load_image
    from pixseq.runtime import seed_everything

    out = check_pxs_output(args.out, args.image, args.force)
    seed_everything(args.seed)
    image = load_image(args.image)
    model = load_model(args.model, CODEC_MODEL_KINDS, resolve_device(args.device))
    stats = compress_file(image, model, out, None if args.no_path else args.model, scale=args.scale,
                          batch=args.batch, label=args.label)
    h, w = image.shape[:2]
    print(f"wrote {out}: {stats.file_bytes} bytes for {w}x{h} pixels = {stats.bpp:.4f} bpp (header "
          f"{stats.header_bytes} bytes included); {stats.tokens} tokens, model cross-entropy "
          f"{stats.ideal_bits / stats.tokens:.3f} bits/token, coder overhead {100 * stats.overhead:+.3f}% "
          f"(payload vs cross-entropy); {stats.tokens_per_second:.0f} tokens/s")
    return 0
