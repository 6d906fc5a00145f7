"""``pixseq train <what>``: one sub-command per trainable system.

A new system adds its trainer with ONE line in :data:`TARGETS`; a module that does not
exist yet is simply not listed.
"""
from __future__ import annotations

import argparse

from pixseq.cli.common import add_subcommands, run_subcommand

HELP = ("train a model: igpt (palette + GPT), vqgan, prior (latent GPT), vit (classifier), clip (LiT guide), gan, "
        "restore, esrgan (4x upscaler), pix2pix, cyclegan (translators); see pixseq train <what> --help")
HAS_SUBCOMMANDS = True

#: sub-command -> module with HELP, add_parser(parser), run(args)
TARGETS: dict[str, str] = {
    "igpt": "pixseq.cli.train_igpt",
    "vqgan": "pixseq.cli.train_vqgan",
    "prior": "pixseq.cli.train_prior",
    "vit": "pixseq.cli.train_vit",
    "clip": "pixseq.cli.train_clip",
    "gan": "pixseq.cli.train_gan",
    "restore": "pixseq.cli.train_restore",
    "esrgan": "pixseq.cli.train_esrgan",
    "pix2pix": "pixseq.cli.train_pix2pix",
    "cyclegan": "pixseq.cli.train_cyclegan",
}


def add_parser(parser: argparse.ArgumentParser) -> None:
    add_subcommands(parser, TARGETS, dest="target")


def run(args: argparse.Namespace) -> int:
    return run_subcommand(args)
