"""Helpers shared by CLI verbs: device and seed handling, notices."""
from __future__ import annotations

import random
import sys

import numpy as np
import torch

from pixseq.device import resolve_device  # noqa: F401 - re-exported for the verbs


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def notice(message: str) -> None:
    """A one-line notice on stderr (not an error)."""
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
