"""``pixseq decompress FILE.pxs --out FILE.png [--model DIR]``: a .pxs file -> the decoded image."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "decompress a .pxs file to an image (the file names the model that can decode it)"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import path_arg

    parser.add_argument("file", help=".pxs file written by `pixseq compress`")
    parser.add_argument("--out", required=True, type=path_arg, help="output image (format from the suffix, e.g. .png)")
    parser.add_argument("--model", default=None,
                        help="model directory (default: the directory recorded in the file, hash-checked)")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def _read(path: Path) -> bytes:
    from pixseq.errors import PixseqError

    if not path.is_file():
        raise PixseqError(f"compressed file not found: {path}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PixseqError(f"cannot read {path}: {exc.strerror}") from None


def _model_dir(args: argparse.Namespace, recorded: str) -> str:
    from pixseq.errors import PixseqError

    if args.model:
        return args.model
    if not recorded:
        raise PixseqError("the file does not record its model directory; pass --model DIR")
    if not Path(recorded).is_dir():
        raise PixseqError(f"the model directory recorded in the file is missing: {recorded}; pass --model DIR")
    return recorded


def run(args: argparse.Namespace) -> int:
    import torch

    from pixseq.cli.common import check_image_output, notice, resolve_device, seed_everything
    from pixseq.cli.compress import load_codec_model
    from pixseq.codec import decompress, read_header
    from pixseq.errors import PixseqError
    from pixseq.io import save_image

    out = check_image_output(args.out)  # a folder is named as one, not as an existing output
    if out.exists() and not args.force:
        raise PixseqError(f"output exists: {out} (use --force to overwrite)")
    seed_everything(args.seed)
    data = _read(Path(args.file))
    header = read_header(data)  # format, checksums and geometry are checked before any model loads
    model_dir = _model_dir(args, header.model_path)
    # auto: decode on the device type the file was encoded on (files are not portable across them)
    device = resolve_device(header.device if args.device == "auto" and torch.cuda.is_available() else args.device)
    model = load_codec_model(model_dir, device)
    image = decompress(data, model, model_dir)
    save_image(image, out)
    if not args.model:
        notice(f"decoded with the model recorded in the file: {model_dir}")
    print(f"wrote {out}: {image.shape[1]}x{image.shape[0]} pixels from {len(data)} bytes "
          f"({len(data) * 8 / (image.shape[0] * image.shape[1]):.4f} bpp)")
    return 0
