"""``pixseq <verb> ...``: one module per verb, each with ``add_parser`` and ``run``.

A verb module defines::

    HELP = "one line shown in `pixseq --help`"
    def add_parser(parser: argparse.ArgumentParser) -> None   # add the verb's options
    def run(args: argparse.Namespace) -> int                  # do the work, return exit code
    SEEDED = False                     # optional: the verb takes no --seed (nothing it does is random)

:func:`main` adds ``--device`` and ``--seed`` to every verb, turns
:class:`~pixseq.errors.PixseqError` into one line on stderr and exit code 2, and never
shows a traceback for user errors.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pixseq.errors import PixseqError
from pixseq.plugins import import_optional

# verb name -> module; the order is the order shown in --help.
VERBS: dict[str, str] = {
    "demo": "pixseq.cli.demo",
    "train": "pixseq.cli.train",
    "sample": "pixseq.cli.sample",
    "generate": "pixseq.cli.generate",
    "complete": "pixseq.cli.complete",
    "probe": "pixseq.cli.probe",
    "classify": "pixseq.cli.classify",
    "evaluate": "pixseq.cli.evaluate",
    "reconstruct": "pixseq.cli.reconstruct",
    "restore": "pixseq.cli.restore",
    "convert": "pixseq.cli.convert",
    "assess": "pixseq.cli.assess",
    "compress": "pixseq.cli.compress",
    "decompress": "pixseq.cli.decompress",
    "bench": "pixseq.cli.bench",
    "study": "pixseq.cli.study",
    "models": "pixseq.cli.models",
    "upscale": "pixseq.cli.upscale",
    "translate": "pixseq.cli.translate",
    "ui": "pixseq.cli.ui",
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # the verb's name, when there is one ("pixseq: error: pixseq: ..." repeated the program's)
        where = "" if self.prog == "pixseq" else f"{self.prog}: "
        sys.stderr.write(f"pixseq: error: {where}{message}\n")
        raise SystemExit(2)


def add_common(parser: argparse.ArgumentParser, seed: bool = True) -> None:
    """Options every verb has (``--seed`` not for a verb without randomness of its own)."""
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="where to run (auto: cuda when available, else cpu)")
    if seed:
        parser.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")


def _seed(text: str) -> int:
    """A seed torch, NumPy and Python all take: an integer from 0 to 2^63 - 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: expected an integer") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"seed {value} out of range: expected 0 to 2^63 - 1")
    return value


def _available_verbs(only: str | None = None) -> dict[str, object]:
    mods = {}
    for name, modname in VERBS.items():
        if only is not None and name != only:
            continue
        mod = import_optional(modname)
        if mod is not None:
            mods[name] = mod
    return mods


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``pixseq`` parser with one sub-parser per available verb, or only verb ``only``'s.

    Building a verb's parser imports what its options name (models, metrics, torch, open_clip):
    all of them cost seconds and ~400 MB of resident memory that ``pixseq upscale`` would
    carry through its run, so :func:`main` builds only the verb it was given."""
    from pixseq.version import __version__

    parser = _Parser(prog="pixseq", description="Images as token sequences: tokenize, model, generate, compress, assess.")
    parser.add_argument("--version", action="version", version=f"pixseq {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="<verb>", parser_class=_Parser)
    sub.required = True
    verbs = _available_verbs(only)
    if only is not None and not verbs:  # that verb's module would not import: say so as the full parser does
        verbs = _available_verbs()
    for name, mod in verbs.items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_parser(p)
        if not getattr(mod, "HAS_SUBCOMMANDS", False):
            add_common(p, seed=getattr(mod, "SEEDED", True))
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pixseq`` console script."""
    finished = False
    try:
        # Building the parser imports torch (seconds): a Ctrl-C then is handled like any other.
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser(_verb_in(argv)).parse_args(argv)
        code = int(args._run(args) or 0)
        finished = True
        return code
    except PixseqError as exc:
        sys.stderr.write(f"pixseq: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("pixseq: error: interrupted; outputs written so far are complete, nothing half-written\n")
        return 2
    except BrokenPipeError:
        return 2
    except OSError as exc:  # the file system said no: disk full, permissions, a bad output path
        where = f": {exc.filename}" if exc.filename else ""
        sys.stderr.write(f"pixseq: error: cannot write or read a file ({exc.strerror or exc}){where}\n")
        return 2
    finally:
        _leave_process_group(wait=finished)


def _verb_in(argv: Sequence[str]) -> str | None:
    """The verb ``argv`` starts with, when it is one (else None: the whole parser, for
    ``--help``, ``--version`` and the message naming the verbs there are)."""
    return argv[0] if argv and argv[0] in VERBS else None


def _leave_process_group(wait: bool) -> None:
    """Under torchrun: leave the process group cleanly (see ``train.distributed.shutdown``)."""
    module = sys.modules.get("pixseq.train.distributed")  # imported only if a command used it
    if module is not None:
        module.shutdown(wait)


if __name__ == "__main__":
    raise SystemExit(main())
