"""``pixseq train clip``: a LiT model (image tower against the locked MiniLM text tower).

The work is :func:`pixseq.guidance.lit_train.train_clip`."""
from __future__ import annotations

import argparse

from pixseq.cli.common import path_arg

HELP = "train a LiT guide: an image tower against the locked MiniLM text tower, on captioned images"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.train_args import add_train_arguments, add_val_arguments
    from pixseq.guidance.lit_train import default_clip_train_config

    parser.add_argument("--data", default=None,
                        help="fashion-mnist[:train|test] (class-name captions), or a folder with captions.tsv "
                             "('path<TAB>caption' lines) or class sub-folders")
    parser.add_argument("--out", required=True, type=path_arg, help="model directory to write")
    parser.add_argument("--image-size", type=int, default=None, help="input side of the image tower (default 28)")
    parser.add_argument("--channels", default=None, help="channels per level of the image tower (default 32,64,128)")
    parser.add_argument("--blocks", type=int, default=None, help="residual blocks per level (default 1)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    add_val_arguments(parser)
    add_train_arguments(parser, default_clip_train_config())


def run(args: argparse.Namespace) -> int:
    from pixseq.cli.train_args import given, train_options
    from pixseq.guidance.lit_train import CLIP_RUN_DEFAULTS, train_clip

    settings = given(args, [k for k in CLIP_RUN_DEFAULTS if k != "data"])
    result = train_clip(args.data, args.out, train=train_options(args), device=args.device, resume=args.resume,
                        force=args.force, seed=args.seed, **settings)
    last = result.last
    print(f"wrote {args.out}: LiT image tower for {len(result.model.config.concepts)} concepts, "
          f"loss {last.get('loss', float('nan')):.4f}")
    if "eval/zero_shot_acc" in last:
        print(f"held-out zero-shot accuracy {last['eval/zero_shot_acc']:.1%} on {result.held_out} images "
              f"of {result.settings['val_data']}")
    print(result.model.scope_note)
    return 0
