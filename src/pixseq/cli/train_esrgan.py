"""``pixseq train esrgan``: an ESRGAN generator, L1 pre-training then perceptual + relativistic GAN loss.

The work is :func:`pixseq.upscale.train.train_esrgan` (its module docstring gives the layout
of ``--out DIR``); the result upscales with ``pixseq upscale --model DIR``."""
from __future__ import annotations

import argparse

from pixseq.cli.common import path_arg

HELP = ("train an ESRGAN upscaler: L1 pre-training (the PSNR model), then perceptual + relativistic average GAN "
        "loss; bicubic or Real-ESRGAN degradations; --init fine-tunes e.g. realesrgan-x4plus")


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.train_args import add_train_arguments, add_val_arguments
    from pixseq.gans.losses import LOSSES
    from pixseq.gans.sr_discriminators import SR_DISCRIMINATORS
    from pixseq.upscale.degrade import DEGRADATIONS
    from pixseq.upscale.train import ESRGAN_RUN_DEFAULTS as D
    from pixseq.upscale.train import default_esrgan_train_config

    parser.add_argument("--data", default=None, help="data spec: a folder of (high-resolution) images, or photos")
    parser.add_argument("--out", required=True, type=path_arg, help="model directory to write (also holds the run)")
    # defaults are None ("not given"): --resume then reuses the run's recorded value
    parser.add_argument("--scale", type=int, choices=[1, 2, 4], help=f"upscaling factor (default {D['scale']})")
    parser.add_argument("--feat", type=int, help=f"generator channels (default {D['feat']}; x4plus: 64)")
    parser.add_argument("--blocks", type=int, help=f"RRDB blocks (default {D['blocks']}; x4plus: 23)")
    parser.add_argument("--grow", type=int, help=f"dense-block growth channels (default {D['grow']}; x4plus: 32)")
    parser.add_argument("--init", default=None, help="fine-tune this rrdbnet model (a folder, or realesrgan-x4plus); "
                        "its architecture replaces --scale/--feat/--blocks/--grow")
    parser.add_argument("--patch", type=int, help=f"high-resolution training crop side (default {D['patch']})")
    parser.add_argument("--degradation", choices=DEGRADATIONS,
                        help="training pairs: bicubic downsampling or Real-ESRGAN's second-order blur / resize / "
                             "noise / JPEG (default bicubic)")
    parser.add_argument("--pretrain-steps", type=int, help="steps of L1 alone first (default: half of --steps; "
                        "0 with --init)")
    parser.add_argument("--disc", choices=SR_DISCRIMINATORS, help="discriminator: ESRGAN's VGG-style (vgg) or "
                        "Real-ESRGAN's U-Net with spectral norm (unet) (default vgg)")
    parser.add_argument("--disc-feat", type=int, help=f"discriminator channels (default {D['disc_feat']})")
    parser.add_argument("--loss", choices=LOSSES, help="adversarial loss (default ragan: relativistic average)")
    parser.add_argument("--perceptual", choices=["auto", "lpips", "effnet", "none"],
                        help="perceptual loss (auto: LPIPS when its weights are available, else EfficientNet-Lite0 "
                             "features; VGG19 ImageNet weights do not exist offline)")
    parser.add_argument("--pixel-weight", type=float, help=f"L1 weight in the GAN stage (default {D['pixel_weight']})")
    parser.add_argument("--perceptual-weight", type=float, help=f"default {D['perceptual_weight']}")
    parser.add_argument("--gan-weight", type=float, help=f"adversarial weight (default {D['gan_weight']})")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    add_val_arguments(parser)  # held-out PSNR of centre crops against bicubic's
    add_train_arguments(parser, default_esrgan_train_config())


def run(args: argparse.Namespace) -> int:
    from pixseq.cli.train_args import given, train_options
    from pixseq.runtime import plural
    from pixseq.upscale.train import ESRGAN_RUN_DEFAULTS, train_esrgan

    settings = given(args, [k for k in ESRGAN_RUN_DEFAULTS if k != "data"])
    result = train_esrgan(args.data, args.out, train=train_options(args), device=args.device, resume=args.resume,
                          force=args.force, seed=args.seed, **settings)
    s, last = result.settings, result.last
    print(f"wrote {args.out}: x{s['scale']} RRDBNet ({s['blocks']} blocks, {s['feat']} channels), "
          f"{s['pretrain_steps']} L1 steps then {max(0, result.train_config.steps - s['pretrain_steps'])} GAN steps; "
          f"L1 {last.get('gen/l1', float('nan')):.4f}")
    if "eval/psnr_db" in last:
        print(f"held-out ({plural(result.held_out, 'image')} of {s['val_data']}, centre {s['patch']} px crops): "
              f"PSNR {last['eval/psnr_db']:.2f} dB (bicubic {last['eval/bicubic_psnr_db']:.2f} dB)")
    return 0
