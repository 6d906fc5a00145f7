"""``pixseq convert hf-imagegpt SRC DIR``: a Hugging Face ImageGPT checkpoint -> an ``igpt`` model dir."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "convert a Hugging Face ImageGPT checkpoint (openai/imagegpt-small|medium|large layout) into an igpt model"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import path_arg

    # path_arg: an empty SRC or DIR is an error; "" was the current folder (DIR "" wrote
    # config.json and model.safetensors into it)
    parser.add_argument("src", type=path_arg, help="HF model folder: config.json, model.safetensors or pytorch_model.bin, "
                                    "preprocessor_config.json (the palette)")
    parser.add_argument("out", type=path_arg, help="pixseq model directory to write")
    parser.add_argument("--image-size", type=int, default=None,
                        help="image side; must be the square root of the checkpoint's positions "
                             "(default: that, 32 for openai/imagegpt-*)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing model directory")


def run(args: argparse.Namespace) -> int:
    from pixseq.checkpoint import refuse_existing_model, save_pretrained
    from pixseq.convert.hf_imagegpt import convert_hf_imagegpt
    from pixseq.errors import PixseqError

    src = Path(args.src)
    if not src.exists():
        raise PixseqError(f"{args.src} does not exist (expected a Hugging Face ImageGPT model folder)")
    if not src.is_dir():
        raise PixseqError(f"not a folder: {args.src} (expected a Hugging Face ImageGPT model folder)")
    # before reading the checkpoint (hundreds of MB); whether the side fits its positions is
    # checked once config.json is read
    if args.image_size is not None and args.image_size < 1:
        raise PixseqError(f"--image-size must be >= 1, got {args.image_size}")
    refuse_existing_model(args.out, args.force, inputs=[args.src])
    model = convert_hf_imagegpt(args.src, image_size=args.image_size)
    g = model.prior.config
    save_pretrained(model, args.out, meta={"converted_from": "huggingface-imagegpt", "source": Path(args.src).name})
    print(f"wrote {args.out}: iGPT {model.image_size[1]}x{model.image_size[0]}, palette {model.config.palette_size}, "
          f"{g.n_layer} layers x {g.n_embd} wide, {model.prior.num_params() / 1e6:.2f} M params")
    return 0
