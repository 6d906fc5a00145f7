"""``pixseq convert <format> SRC DIR``: foreign checkpoints -> pixseq model directories.

A new converter adds ONE line to :data:`FORMATS`; a module that does not exist yet is
simply not listed.
"""
from __future__ import annotations

import argparse

from pixseq.cli.common import add_subcommands, run_subcommand

HELP = "convert a foreign checkpoint into a pixseq model directory"
HAS_SUBCOMMANDS = True

#: sub-command -> module with HELP, add_parser(parser), run(args)
FORMATS: dict[str, str] = {
    "hf-imagegpt": "pixseq.cli.convert_hf",
    "taming": "pixseq.cli.convert_taming",
    "timm-vit": "pixseq.cli.convert_vit",
    "hf-vit": "pixseq.cli.convert_vit",
    "realesrgan": "pixseq.cli.convert_realesrgan",
    "cyclegan": "pixseq.cli.convert_cyclegan",
    "pix2pix": "pixseq.cli.convert_cyclegan",
}


def add_parser(parser: argparse.ArgumentParser) -> None:
    add_subcommands(parser, FORMATS, dest="format")


def run(args: argparse.Namespace) -> int:
    return run_subcommand(args)
