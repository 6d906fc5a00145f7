"""``pixseq models [NAME]``: the pretrained models that ship with pixseq, with their cards."""
from __future__ import annotations

import argparse

HELP = "list the pretrained models that ship with pixseq (zoo:NAME), or show one's card"


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", default=None, help="a zoo model: show its card")
    parser.add_argument("--json", action="store_true", help="print the index as JSON")


def run(args: argparse.Namespace) -> int:
    import json

    from pixseq import zoo

    if args.name is not None:
        print(zoo.card(args.name[4:] if args.name.startswith("zoo:") else args.name), end="")
        return 0
    found = zoo.entries()
    if args.json:
        print(json.dumps({n: {"kind": e.kind, "summary": e.summary, "quality": e.quality,
                              "built_on_first_use": not e.stored} for n, e in found.items()}, indent=2))
        return 0
    if not found:
        print("no zoo models in this install")
        return 0
    width = max(len(n) for n in found) + 4
    for name, e in sorted(found.items()):
        size = zoo.size_bytes(name)
        where = f"{size / 2**20:5.1f} MiB" if size else ("built on first use" if not e.stored else "")
        print(f"zoo:{name:<{width - 4}}  {e.kind:<10} {where:>18}  {e.summary}")
    print("use one with --model zoo:NAME; `pixseq models NAME` shows its card")
    return 0
