"""``pixseq train igpt``: fit a colour palette on the data, then train the GPT prior over pixels.

The work is :func:`pixseq.models.igpt_train.train_igpt` (its docstring gives the layout of
``--out DIR``), so ``pixseq sample --model DIR`` works on the same path.
"""
from __future__ import annotations

import argparse

import numpy as np

from pixseq.cli.common import path_arg

HELP = "train an iGPT (k-means colour palette + GPT prior over pixels) on a data spec"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.train_args import add_train_arguments, add_val_arguments
    from pixseq.models.igpt_train import default_train_config

    parser.add_argument("--data", default=None, help="data spec: fashion-mnist[:train|test], a folder, photos")
    parser.add_argument("--out", required=True, type=path_arg, help="model directory to write")
    parser.add_argument("--size", choices=["s", "m", "l"], default=None, help="GPT size preset (default s)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="square side images are resized to (default: the data's side up to 32)")
    parser.add_argument("--palette", type=int, default=None, help="palette colours = vocabulary (default 512)")
    parser.add_argument("--classes", action="store_true", default=None,
                        help="class-conditional: a class token from the data's labels is prepended")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    add_val_arguments(parser)
    parser.add_argument("--bf16", dest="train_precision", action="store_const", const="bf16",
                        default=argparse.SUPPRESS, help="bf16 autocast (same as --precision bf16)")
    add_train_arguments(parser, default_train_config())


def run(args: argparse.Namespace) -> int:
    from pixseq.cli.train_args import given, train_options
    from pixseq.models.igpt_train import RUN_KEYS, train_igpt
    from pixseq.runtime import plural
    from pixseq.train.distributed import is_main_process

    result = train_igpt(**given(args, RUN_KEYS), out=args.out, train=train_options(args), device=args.device,
                        resume=args.resume, force=args.force, seed=args.seed)
    if not is_main_process():
        return 0
    s, model, config, last = result.settings, result.model, result.train_config, result.last
    loss = last.get("loss", float("nan"))
    print(f"wrote {args.out}: iGPT {s['image_size']}x{s['image_size']}, palette {s['palette']}, preset {s['size']} "
          f"({model.prior.num_params() / 1e6:.2f} M params), {plural(config.steps, 'step')}, "
          f"last training-batch loss {loss:.3f} nats/pixel ({loss / np.log(2):.3f} bits)"
          + (", of the raw weights; the model holds their EMA" if config.ema_decay > 0 else ""))
    if "eval/bits_per_pixel" in last:
        print(f"held-out ({plural(result.held_out, 'image')} of {s['val_data']}): "
              f"{last['eval/bits_per_pixel']:.3f} bits/pixel with the saved weights")
    return 0
