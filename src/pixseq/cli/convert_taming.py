"""``pixseq convert taming CKPT DIR``: an official taming-transformers VQGAN -> a pixseq model dir."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "convert an official taming-transformers VQGAN checkpoint (.ckpt) into a pixseq 'vqgan' model directory"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import path_arg

    # path_arg: an empty OUT was the current folder, which the model's files were written into
    parser.add_argument("src", type=path_arg, help="the .ckpt file (e.g. vqgan_imagenet_f16_1024 last.ckpt)")
    parser.add_argument("out", type=path_arg, help="model directory to write")
    parser.add_argument("--force", action="store_true", help="overwrite an existing model directory")


def run(args: argparse.Namespace) -> int:
    from pixseq.checkpoint import refuse_existing_model, save_pretrained
    from pixseq.convert.taming import convert_taming

    # before reading the checkpoint (GBs): a model (or a training run's model) in OUT stays unless --force
    refuse_existing_model(args.out, args.force, inputs=[args.src])
    model = convert_taming(args.src)
    c = model.config
    save_pretrained(model, args.out, meta={"converted_from": "taming-transformers", "source": Path(args.src).name})
    print(f"wrote {args.out}: VQGAN f={c.factor}, {c.quantizer.num_codes} codes of dim {c.quantizer.dim}, "
          f"ch={c.ch} x {list(c.ch_mult)}")
    return 0
