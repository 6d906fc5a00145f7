"""``pixseq reconstruct IMAGE --model DIR --out FILE.png``: encode to codes and decode again."""
from __future__ import annotations

import argparse

HELP = "reconstruct an image through a VQGAN tokenizer; prints bits/pixel of the raw codes and PSNR"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import path_arg

    parser.add_argument("image", help="input image file")
    parser.add_argument("--model", required=True, help="a 'vqgan' or 'taming' model directory")
    parser.add_argument("--out", required=True, type=path_arg, help="output image file (e.g. out.png)")


def run(args: argparse.Namespace) -> int:
    import math

    import torch

    from pixseq.checkpoint import from_pretrained
    from pixseq.cli.common import check_image_output, refuse_overwriting_input, resolve_device
    from pixseq.io import load_image, save_image, to_tensor, to_uint8
    from pixseq.metrics.pixel import psnr

    check_image_output(args.out)  # before the model runs, not when its result is written
    refuse_overwriting_input(args.out, args.image)
    device = resolve_device(args.device)
    model = from_pretrained(args.model, ("vqgan", "taming"))
    tok = model.tokenizer if model.kind == "taming" else model
    tok.to(device).eval()
    image = load_image(args.image)
    x = to_tensor(image)[None].to(device)  # (1, 3, H, W)
    H, W = image.shape[:2]
    with torch.no_grad():
        codes = tok.encode(x)  # sides not divisible by f are padded ...
        out = tok.decode(codes)[..., :H, :W]  # ... and cropped back
    save_image(to_uint8(out[0]), args.out)
    n = codes.numel()
    bpp = n * math.log2(tok.vocab_size) / (H * W)
    # PSNR of the file as written and read back: a lossy --out (.jpg, .webp) changes the pixels again
    quality = float(psnr(to_tensor(load_image(args.out))[None], x.cpu()))
    print(f"{H}x{W} -> {codes.shape[1]}x{codes.shape[2]} codes of {tok.vocab_size}: "
          f"{bpp:.4f} bits/pixel (raw codes), PSNR {quality:.2f} dB; wrote {args.out}")
    return 0
