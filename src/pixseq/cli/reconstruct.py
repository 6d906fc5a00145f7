"""``pixseq reconstruct IMAGE --model DIR --out FILE.png``: encode to codes and decode again.

The work is :func:`pixseq.tokenizers.vqgan.reconstruct_file`."""
from __future__ import annotations

import argparse

HELP = "reconstruct an image through a VQGAN tokenizer; prints bits/pixel of the raw codes and PSNR"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import add_force_argument, path_arg

    parser.add_argument("image", help="input image file")
    parser.add_argument("--model", required=True, help="a 'vqgan' or 'taming' model directory")
    parser.add_argument("--out", required=True, type=path_arg, help="output image file (e.g. out.png)")
    add_force_argument(parser, "--out")


def run(args: argparse.Namespace) -> int:
    from pixseq.checkpoint import load_model
    from pixseq.device import resolve_device
    from pixseq.io import check_image_output, load_image
    from pixseq.tokenizers.vqgan import reconstruct_file

    # before the model runs, not when its result is written
    check_image_output(args.out, force=args.force, inputs=[args.image])
    device = resolve_device(args.device)
    model = load_model(args.model, ("vqgan", "taming"))
    tok = (model.tokenizer if model.kind == "taming" else model).to(device).eval()
    r = reconstruct_file(tok, load_image(args.image), args.out)
    print(f"{r.width}x{r.height} -> {r.grid[1]}x{r.grid[0]} codes of {r.vocab_size}: "
          f"{r.bits_per_pixel:.4f} bits/pixel (raw codes), PSNR {r.psnr_db:.2f} dB; wrote {args.out}")
    return 0
