"""Helpers shared by CLI verbs: device and seed handling, notices, output paths."""
from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

import numpy as np
import torch

from pixseq.device import resolve_device  # noqa: F401 - re-exported for the verbs


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def path_arg(text: str) -> Path:
    """argparse type for a path option: an empty string is an error, not the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path")
    return Path(text)


def check_output(path: Path, what: str, folder: bool = False) -> None:
    """Fail before any work is done when ``path`` cannot become the output file (or folder,
    ``folder=True``): it is a folder (a file), or its nearest existing ancestor is a file or
    not writable. Missing folders on the way are fine (outputs create them)."""
    from pixseq.errors import PixseqError

    if folder and path.exists() and not path.is_dir():
        raise PixseqError(f"{what} {path}: exists and is not a folder")
    if not folder and path.is_dir():
        raise PixseqError(f"{what} {path}: is a folder; give a file name")
    probe = path if folder else path.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise PixseqError(f"{what} {path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK):
        raise PixseqError(f"{what} {path}: no permission to write in {probe}")


def add_weights_arguments(parser: argparse.ArgumentParser) -> None:
    """``--weights-dir`` and ``--offline``, for every verb that may load pretrained weights
    (resolved by :func:`pixseq.weights.resolve_weights`)."""
    parser.add_argument("--weights-dir", type=path_arg, default=None,
                        help="folder holding pretrained weight files (default: $PIXSEQ_WEIGHTS_DIR, "
                             "else ~/.cache/pixseq)")
    parser.add_argument("--offline", action="store_true", default=None,
                        help="never download weights (also $PIXSEQ_OFFLINE=1)")


def check_weights_dir(path: Path | None) -> None:
    """A ``--weights-dir`` that is a file is refused before any work (a missing one is made
    when a download lands in it)."""
    from pixseq.errors import PixseqError

    if path is not None and path.exists() and not path.is_dir():
        raise PixseqError(f"--weights-dir {path}: is a file, not a folder")


def check_image_output(path: str | Path, what: str = "--out") -> Path:
    """:func:`check_output` for an image file, then: its suffix names an image format.

    The folder checks come first: ``--out some/folder`` is a folder, not an unknown format.
    """
    from pixseq.io import output_format

    path = Path(path)
    check_output(path, what)
    output_format(path, what)
    return path


def real_path(path: str | os.PathLike) -> Path:
    """``path`` with links followed, as far as they go: ``Path.resolve`` raises RuntimeError on
    a symbolic-link loop (a traceback where the loop should reach the loader's one-line error)."""
    return Path(os.path.realpath(path))


def refuse_overwriting_input(out: Path, image: str | Path) -> None:
    """An output that is the input image would destroy it: refuse before any work."""
    from pixseq.errors import PixseqError

    if real_path(out) == real_path(image):
        raise PixseqError(f"--out {out} is the input image; choose another file")


def plural(count: int, noun: str) -> str:
    """``"1 sample"``, ``"3 samples"``: a count and a regular English noun."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def notice(message: str) -> None:
    """A one-line notice on stderr (not an error); under torchrun from rank 0 only, so that
    N processes do not say the same thing N times (errors still come from every rank)."""
    if os.environ.get("RANK", "0") == "0":
        sys.stderr.write(f"pixseq: {message}\n")


def add_subcommands(parser, table: dict[str, str], dest: str) -> None:
    """Add one sub-command per ``name -> module`` in ``table`` (a verb such as ``train``).

    Each module has ``HELP``, ``add_parser`` and ``run`` like a verb. Modules not written
    yet are skipped (so a later system adds its sub-command with one line in ``table``);
    a module whose own imports are broken is a bug and raises.
    """
    from pixseq.plugins import import_optional

    from pixseq.cli import _Parser, add_common

    sub = parser.add_subparsers(dest=dest, metavar="<what>", parser_class=_Parser)
    sub.required = True
    for name, modname in table.items():
        mod = import_optional(modname)
        if mod is None:
            continue
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_parser(p)
        add_common(p)
        # A distinct attribute: argparse merges sub-parser defaults into the parent namespace.
        p.set_defaults(_sub_run=mod.run)


def run_subcommand(args) -> int:
    """Run the sub-command chosen by :func:`add_subcommands`."""
    return int(args._sub_run(args) or 0)
