"""Options shared by ``pixseq train pix2pix`` and ``pixseq train cyclegan`` (argument parsing only)."""
from __future__ import annotations

import argparse


def add_translator_arguments(parser: argparse.ArgumentParser, family: str) -> None:
    """Network, loss and crop options (defaults None: the official value, or on ``--resume``
    the run's recorded one)."""
    from pixseq.gans.generators import ARCHS, NORMS
    from pixseq.gans.losses import LOSSES
    from pixseq.nn.conv import PATCH_NORMS

    p2p = family == "pix2pix"
    g = parser.add_argument_group("networks and losses")
    g.add_argument("--arch", choices=list(ARCHS), help=f"generator (default {'unet' if p2p else 'resnet'})")
    g.add_argument("--width", type=int, help="generator width, the official ngf (default 64)")
    g.add_argument("--blocks", type=int, help="ResNet blocks (default 9 from 256 px, else 6)")
    g.add_argument("--downs", type=int, help="U-Net downsamplings (default: down to 1x1, 8 for 256 px)")
    g.add_argument("--norm", choices=list(NORMS), help=f"generator norm (default {'batch' if p2p else 'instance'})")
    g.add_argument("--dropout", action=argparse.BooleanOptionalAction, default=None,
                   help=f"dropout 0.5 in the generator (default {'on for a U-Net: the noise of pix2pix' if p2p else 'off'})")
    g.add_argument("--disc-width", type=int, help="PatchGAN width, the official ndf (default 64)")
    g.add_argument("--disc-layers", type=int, help="PatchGAN layers (default 3: 70x70 patches)")
    g.add_argument("--disc-norm", choices=list(PATCH_NORMS), help=f"PatchGAN norm (default {'batch' if p2p else 'instance'})")
    g.add_argument("--loss", choices=list(LOSSES), help=f"adversarial loss (default {'ns: the official vanilla' if p2p else 'lsgan'})")
    g.add_argument("--d-lr-ratio", type=float, help="D's learning rate over G's (default 1)")
    g.add_argument("--health", action=argparse.BooleanOptionalAction, default=None,
                   help="automatic health warnings (default on)")
    d = parser.add_argument_group("data")
    d.add_argument("--image-size", type=int, help="train on S x S crops (default: the images' own size when they are "
                                                  "all one square size)")
    d.add_argument("--jitter", action=argparse.BooleanOptionalAction, default=None,
                   help="resize to 286/256 of --image-size, then random crops (default on above 64 px)")
    d.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None, help="random left-right flips (default on)")
    d.add_argument("--limit", type=int, help="use only the first N images (per domain)")


def translator_settings(args: argparse.Namespace, keys) -> dict:
    """The parsed run settings of ``keys`` (``None``: not given)."""
    return {k: getattr(args, k, None) for k in keys}
