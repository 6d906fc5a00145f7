"""Helpers shared by CLI verbs: argument types, shared options, sub-command tables.

Only argument parsing lives here. What verbs share beyond that is library code: notices,
seeding and plurals in :mod:`pixseq.runtime`, output-path checks in :mod:`pixseq.io`, the
device in :mod:`pixseq.device`."""
from __future__ import annotations

import argparse
from pathlib import Path


def path_arg(text: str) -> Path:
    """argparse type for a path option: an empty string is an error, not the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path")
    return Path(text)


def whole_number(text: str) -> int:
    """argparse type for a count that may be 0 (a tile side, an overlap, a pixel limit)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_weights_arguments(parser: argparse.ArgumentParser) -> None:
    """``--weights-dir`` and ``--offline``, for every verb that may load pretrained weights
    (resolved by :func:`pixseq.weights.resolve_weights`)."""
    parser.add_argument("--weights-dir", type=path_arg, default=None,
                        help="folder holding pretrained weight files (default: $PIXSEQ_WEIGHTS_DIR, "
                             "else ~/.cache/pixseq)")
    parser.add_argument("--offline", action="store_true", default=None,
                        help="never download weights (also $PIXSEQ_OFFLINE=1)")


def add_subcommands(parser, table: dict[str, str], dest: str) -> None:
    """Add one sub-command per ``name -> module`` in ``table`` (a verb such as ``train``).

    Each module has ``HELP``, ``add_parser`` and ``run`` like a verb. Modules not written
    yet are skipped (so a later system adds its sub-command with one line in ``table``);
    a module whose own imports are broken is a bug and raises.
    """
    from pixseq.cli import _Parser, add_common
    from pixseq.plugins import import_optional

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


def add_force_argument(parser: argparse.ArgumentParser, what: str = "the outputs") -> None:
    """``--force``: replace existing outputs. Every verb that writes refuses an existing output
    without it, and an output that is one of its inputs even with it
    (:func:`pixseq.io.claim_output`)."""
    parser.add_argument("--force", action="store_true",
                        help=f"overwrite {what} if they exist (an input is never overwritten)")
