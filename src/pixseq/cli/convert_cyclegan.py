"""``pixseq convert cyclegan|pix2pix G.pth [G_B.pth] DIR``: pytorch-CycleGAN-and-pix2pix
generators -> a pixseq ``cyclegan`` / ``pix2pix`` model directory. The work is
:func:`pixseq.gans.official.convert_official`."""
from __future__ import annotations

import argparse

HELP = ("convert official pytorch-CycleGAN-and-pix2pix generators (latest_net_G_A.pth / _G_B.pth, latest_net_G.pth; "
        "ResNet or U-Net, instance or batch norm) into a pixseq model directory")


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import path_arg

    parser.add_argument("src", type=path_arg, help="latest_net_G_A.pth (CycleGAN A -> B) or latest_net_G.pth (pix2pix)")
    parser.add_argument("out", type=path_arg, help="model directory to write")
    parser.add_argument("--net-b", type=path_arg, default=None, help="a CycleGAN's latest_net_G_B.pth (B -> A)")
    parser.add_argument("--padding", choices=["reflect", "replicate"], default="reflect",
                        help="ResNet blocks' padding when it was not the default (keys cannot tell)")
    parser.add_argument("--no-dropout", dest="dropout", action="store_false", default=None,
                        help="the U-Net was trained without dropout (official --no_dropout)")
    parser.add_argument("--domain-a", default="A", help="name of domain A (e.g. horse)")
    parser.add_argument("--domain-b", default="B", help="name of domain B (e.g. zebra)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing model directory")


def run(args: argparse.Namespace) -> int:
    from pixseq.checkpoint import refuse_existing_model, save_pretrained
    from pixseq.gans.official import convert_official

    refuse_existing_model(args.out, args.force, inputs=[args.src])
    model = convert_official(args.src, args.net_b, args.format, args.padding, args.dropout, args.domain_a,
                             args.domain_b)
    save_pretrained(model, args.out, meta=model.pretrained_meta)
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out}: {model.describe()}, directions {' + '.join(model.directions)}, "
          f"{params / 1e6:.2f} M parameters")
    return 0
