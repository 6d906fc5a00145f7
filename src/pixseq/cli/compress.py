"""``pixseq compress IMAGE --model DIR --out FILE.pxs``: an image -> a .pxs file (tokens entropy-coded by the prior)."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "compress an image to a .pxs file with a tokenizer + prior model (neural codec)"

MODEL_KINDS = ("igpt", "taming")


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


def load_codec_model(directory: str, device):
    """Load a tokenizer + prior model directory for the codec, on ``device``."""
    from pixseq.checkpoint import from_pretrained

    return from_pretrained(directory, expected_kind=MODEL_KINDS).to(device).eval()


def run(args: argparse.Namespace) -> int:
    from pixseq.cli.common import check_output, refuse_overwriting_input, resolve_device, seed_everything
    from pixseq.codec import compress_with_stats
    from pixseq.errors import PixseqError
    from pixseq.io import IMAGE_SUFFIXES, atomic_write, load_image

    out = Path(args.out)
    refuse_overwriting_input(out, args.image)
    check_output(out, "--out")  # a folder, or a parent that is a file, is named before "exists"
    if out.suffix.lower() in IMAGE_SUFFIXES:  # e.g. compress/decompress mixed up: not an image inside
        raise PixseqError(f"--out {out}: compress writes a .pxs file, not an image; name it e.g. "
                          f"{out.with_suffix('.pxs').name} (decompress writes images)")
    if out.exists() and not args.force:
        raise PixseqError(f"output exists: {out} (use --force to overwrite)")
    seed_everything(args.seed)
    image = load_image(args.image)
    model = load_codec_model(args.model, resolve_device(args.device))
    path = "" if args.no_path else str(Path(args.model).resolve())
    data, stats = compress_with_stats(image, model, path, scale=args.scale, batch=args.batch, label=args.label)
    with atomic_write(out) as fh:
        fh.write(data)
    h, w = image.shape[:2]
    print(f"wrote {out}: {stats.file_bytes} bytes for {w}x{h} pixels = {stats.bpp:.4f} bpp (header "
          f"{stats.header_bytes} bytes included); {stats.tokens} tokens, model cross-entropy "
          f"{stats.ideal_bits / stats.tokens:.3f} bits/token, coder overhead {100 * stats.overhead:+.3f}% "
          f"(payload vs cross-entropy); {stats.tokens_per_second:.0f} tokens/s")
    return 0
