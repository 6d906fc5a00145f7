"""``pixseq train pix2pix``: paired image-to-image translation (U-Net G, PatchGAN D, L1 + GAN).

The work is :func:`pixseq.gans.translate_train.train_pix2pix`."""
from __future__ import annotations

import argparse

from pixseq.cli.common import path_arg

HELP = "train a pix2pix translator on paired data (A/ + B/ folders, side-by-side AB images, or edges:/colorize:/superres:DATA)"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.train_args import add_train_arguments, add_val_arguments
    from pixseq.cli.train_translate_args import add_translator_arguments
    from pixseq.gans.translate_train import default_translate_train_config

    parser.add_argument("--data", default=None,
                        help="paired data: a folder with A/ and B/ (matched by file name), a folder of side-by-side "
                             "A|B images, or a built-in task edges:DATA, colorize:DATA, superres:DATA "
                             "(e.g. edges:fashion-mnist, colorize:photos)")
    parser.add_argument("--out", required=True, type=path_arg, help="model directory to write (also holds the training state)")
    parser.add_argument("--lambda-l1", type=float, help="weight of the L1 loss (default 100)")
    parser.add_argument("--no-gan", dest="adversarial", action="store_false", default=None,
                        help="L1 alone, no discriminator: the non-adversarial baseline")
    add_translator_arguments(parser, "pix2pix")
    add_val_arguments(parser)  # held-out L1 / PSNR / SSIM against the true B
    add_train_arguments(parser, default_translate_train_config())


def run(args: argparse.Namespace) -> int:
    from pixseq.cli.train_args import train_options
    from pixseq.cli.train_translate_args import translator_settings
    from pixseq.gans.translate_train import PIX2PIX_RUN_DEFAULTS, train_pix2pix
    from pixseq.runtime import plural

    settings = translator_settings(args, [k for k in PIX2PIX_RUN_DEFAULTS if k != "data"])
    result = train_pix2pix(args.data, args.out, train=train_options(args), device=args.device, resume=args.resume,
                           force=args.force, seed=args.seed, **settings)
    s, last = result.settings, result.last
    g = result.model.config.generator
    print(f"wrote {args.out}: pix2pix {g.describe}, {s['image_size']}x{s['image_size']}, task {result.extra['task']}; "
          f"last L1 {last.get('gen/l1', float('nan')):.4f}"
          + (f", D loss {last['disc/d_loss']:.3f}" if "disc/d_loss" in last else " (L1 only, no GAN)"))
    if "eval/l1" in last:
        print(f"held-out ({plural(result.held_out, 'pair')} of {s['val_data']}): L1 {last['eval/l1']:.4f}, "
              f"PSNR {last['eval/psnr_db']:.2f} dB, SSIM {last['eval/ssim']:.4f}")
    warnings = result.extra.get("health", [])
    print(f"health: {plural(len(warnings), 'warning')}" + (f" (see {args.out}/train/history.jsonl)" if warnings else ""))
    return 0
