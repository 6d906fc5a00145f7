"""``pixseq train restore``: an image-restoration GAN on pairs made on the fly from any image data.

The work is :func:`pixseq.gans.train.train_restore`."""
from __future__ import annotations

import argparse

from pixseq.cli.common import path_arg

HELP = "train an image-restoration GAN (denoise / inpaint / colorize / superres) from clean images"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.train_args import add_train_arguments, add_val_arguments
    from pixseq.gans.losses import LOSSES
    from pixseq.gans.restoration import TASKS
    from pixseq.gans.train import default_restore_train_config

    parser.add_argument("--data", default=None, help="clean images: a folder, fashion-mnist[:train|test] or photos")
    parser.add_argument("--out", required=True, type=path_arg, help="model directory to write")
    parser.add_argument("--task", choices=list(TASKS), help="what to restore (default denoise)")
    parser.add_argument("--strength", type=float, help="noise std (denoise, 0.2), hole fraction (inpaint, 0.4), "
                                                       "scale factor (superres, 2)")
    parser.add_argument("--image-size", type=int, help="training side (default: the data's, else 64-px random crops)")
    parser.add_argument("--width", type=int, help="generator width (default 32)")
    parser.add_argument("--depth", type=int, help="encoder downsamplings (default 2)")
    parser.add_argument("--disc-width", type=int, help="critic width (default 32)")
    parser.add_argument("--loss", choices=list(LOSSES), help="adversarial loss (default ns)")
    parser.add_argument("--pixel-weight", type=float, help="weight of the L1 loss beside the adversarial one (default 100)")
    parser.add_argument("--pretrain-steps", type=int, help="steps of L1 alone first (default: a fifth of --steps)")
    parser.add_argument("--d-lr-ratio", type=float, help="critic learning rate over G's (default 1)")
    parser.add_argument("--r1", type=float, help="R1 penalty weight (default 0)")
    parser.add_argument("--health", action=argparse.BooleanOptionalAction, default=None, help="health warnings (default on)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    add_val_arguments(parser)  # held-out PSNR / L1 of restored centre crops
    add_train_arguments(parser, default_restore_train_config())


def run(args: argparse.Namespace) -> int:
    from pixseq.cli.train_args import given, train_options
    from pixseq.gans.train import RESTORE_RUN_DEFAULTS, train_restore
    from pixseq.runtime import plural
    from pixseq.train.distributed import is_main_process

    settings = given(args, [k for k in RESTORE_RUN_DEFAULTS if k != "data"])
    result = train_restore(args.data, args.out, train=train_options(args), device=args.device, resume=args.resume,
                           force=args.force, seed=args.seed, **settings)
    if not is_main_process():  # under torchrun rank 0 alone reports
        return 0
    s, last = result.settings, result.last
    print(f"wrote {args.out}: {s['task']} (strength {s['strength']:g}), {s['image_size']}-px training crops; "
          f"last L1 {last.get('gen/pixel', float('nan')):.4f}")
    if "eval/psnr_db" in last:
        print(f"held-out ({plural(result.held_out, 'image')} of {s['val_data']}): PSNR {last['eval/psnr_db']:.2f} dB "
              f"restored vs {last['eval/input_psnr_db']:.2f} dB degraded, L1 {last['eval/l1']:.4f}")
    warnings = result.extra.get("health", [])
    print(f"health: {plural(len(warnings), 'warning')}")
    return 0
