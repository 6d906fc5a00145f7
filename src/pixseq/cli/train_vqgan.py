"""``pixseq train vqgan``: train a VQGAN tokenizer (Taming Transformers, stage 1).

The work is :func:`pixseq.models.taming_train.train_vqgan`."""
from __future__ import annotations

import argparse

from pixseq.cli.common import path_arg

HELP = "train a VQGAN tokenizer (CNN encoder/decoder + codebook, perceptual and patch-GAN losses)"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.train_args import add_train_arguments, add_val_arguments
    from pixseq.models.taming_train import default_vqgan_train_config

    parser.add_argument("--data", default=None, help="data spec: a folder, fashion-mnist[:train|test] or photos")
    parser.add_argument("--out", required=True, type=path_arg, help="model directory to write (also holds the training state)")
    # defaults are None ("not given"): --resume then reuses the run's recorded value
    parser.add_argument("--factor", type=int, choices=[4, 8, 16], help="downsampling factor f (default 8)")
    parser.add_argument("--codes", type=int, help="codebook size K (default 1024)")
    parser.add_argument("--dim", type=int, help="code dimension (default 64)")
    parser.add_argument("--ch", type=int, help="base channels of encoder/decoder (default 64)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="training size (default: the data's size when fixed, else 64-pixel random crops)")
    parser.add_argument("--disc-start", type=int, default=None, help="step at which the discriminator starts "
                        "(default: half of --steps)")
    parser.add_argument("--perceptual", choices=["auto", "lpips", "effnet", "none"],
                        help="perceptual loss (auto: LPIPS when its weights are available, else EfficientNet-Lite0)")
    parser.add_argument("--dead-restart", action=argparse.BooleanOptionalAction,
                        help="re-seed codes unused for a while from recent encoder outputs (default on)")
    parser.add_argument("--ema", action="store_true", default=None,
                        help="EMA codebook updates instead of the codebook loss")
    parser.add_argument("--l2-norm", action="store_true", default=None,
                        help="compare codes on the unit sphere (cosine)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    add_val_arguments(parser)  # held-out reconstruction PSNR / L1 of centre crops
    add_train_arguments(parser, default_vqgan_train_config())


def run(args: argparse.Namespace) -> int:
    from pixseq.cli.train_args import given, train_options
    from pixseq.models.taming_train import VQGAN_RUN_DEFAULTS, train_vqgan
    from pixseq.runtime import plural

    settings = given(args, [k for k in VQGAN_RUN_DEFAULTS if k != "data"])
    result = train_vqgan(args.data, args.out, train=train_options(args), device=args.device, resume=args.resume,
                         force=args.force, seed=args.seed, **settings)
    s, last = result.settings, result.last
    print(f"wrote {args.out}: f={s['factor']}, K={s['codes']}, image size {s['image_size']}; "
          f"rec {last.get('gen/rec', float('nan')):.4f}, codebook usage {result.model.quantizer.usage():.1%}")
    if "eval/psnr_db" in last:
        print(f"held-out ({plural(result.held_out, 'image')} of {s['val_data']}, centre {s['image_size']}x"
              f"{s['image_size']} crops): PSNR {last['eval/psnr_db']:.2f} dB, L1 {last['eval/l1']:.4f} "
              f"with the saved weights")
    return 0
