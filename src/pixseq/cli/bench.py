"""``pixseq bench <what>``: measurements a user can rerun; ``codecs`` compares pixseq's codec with
JPEG/WebP/AVIF (the work is :func:`pixseq.codec.bench.bench_codecs`)."""
from __future__ import annotations

import argparse

HELP = "benchmarks: `pixseq bench codecs` (pixseq codec vs JPEG, WebP, AVIF: bpp, PSNR, SSIM, MS-SSIM, ...)"
HAS_SUBCOMMANDS = True


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli import add_common
    from pixseq.cli.common import add_force_argument, add_weights_arguments, path_arg

    sub = parser.add_subparsers(dest="what", metavar="<what>")
    sub.required = True
    p = sub.add_parser("codecs", help="pixseq codec(s) vs JPEG / WebP / AVIF on a set of images",
                       description="For each image: pixseq codec(s) and JPEG, WebP, AVIF at several settings; "
                                   "bpp from real file sizes, PSNR, SSIM, MS-SSIM, label overlap, BRISQUE; "
                                   "writes results.json, rd_*.png and index.html")
    p.add_argument("--images", required=True, help="a folder of images, or 'photos' (the built-in photos)")
    p.add_argument("--out", required=True, type=path_arg, help="output folder")
    add_force_argument(p, "the report in --out")
    p.add_argument("--model", action="append", default=[], help="pixseq model directory (repeatable)")
    p.add_argument("--qualities", type=_ints, default=None, help="JPEG/WebP/AVIF qualities, e.g. 5,10,30,75")
    p.add_argument("--scales", type=_ints, default=None, help="pixseq downscale factors, e.g. 2,4,8")
    p.add_argument("--names", default="", help="only these images (comma-separated names)")
    p.add_argument("--limit", type=int, default=None, help="at most this many images")
    p.add_argument("--max-side", type=int, default=0, help="shrink larger images to this side first (0: keep)")
    p.add_argument("--budget", type=float, default=0.25, help="bpp budget of the summary table (default 0.25)")
    p.add_argument("--batch", type=int, default=16, help="tiles coded at once by pixseq")
    p.add_argument("--no-label-overlap", action="store_true", help="skip the classifier-based label-overlap score")
    add_weights_arguments(p)
    add_common(p)
    p.set_defaults(_what=_run_codecs)


def run(args: argparse.Namespace) -> int:
    return args._what(args)


def _run_codecs(args: argparse.Namespace) -> int:
    import dataclasses

    from pixseq.codec.bench import BenchOptions, bench_codecs

    opts = BenchOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(BenchOptions)})
    page, table = bench_codecs(opts, args.device, args.seed, log=print)
    print(table)
    print(f"wrote {page}")
    return 0
