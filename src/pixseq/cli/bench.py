"""``pixseq bench <what>``: measurements a user can rerun; ``codecs`` compares pixseq's codec with JPEG/WebP/AVIF."""
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
    from pixseq.cli.common import add_weights_arguments, path_arg

    sub = parser.add_subparsers(dest="what", metavar="<what>")
    sub.required = True
    p = sub.add_parser("codecs", help="pixseq codec(s) vs JPEG / WebP / AVIF on a set of images",
                       description="For each image: pixseq codec(s) and JPEG, WebP, AVIF at several settings; "
                                   "bpp from real file sizes, PSNR, SSIM, MS-SSIM, label overlap, BRISQUE; "
                                   "writes results.json, rd_*.png and index.html")
    p.add_argument("--images", required=True, help="a folder of images, or 'photos' (the built-in photos)")
    p.add_argument("--out", required=True, type=path_arg, help="output folder")
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


def _select(args: argparse.Namespace) -> list[tuple[str, object]]:
    import numpy as np
    from PIL import Image

    from pixseq.data import load_data
    from pixseq.errors import PixseqError

    data = load_data(args.images)
    names = data.names or [f"image{i}" for i in range(len(data))]
    pairs = list(zip(names, data.images))
    if args.names:
        wanted = [n.strip() for n in args.names.split(",") if n.strip()]
        missing = sorted(set(wanted) - set(names))
        if missing:
            raise PixseqError(f"no image named {missing[0]!r} in {args.images} (have: {', '.join(names[:12])})")
        pairs = [p for p in pairs if p[0] in wanted]
    pairs = pairs[: args.limit] if args.limit is not None else pairs
    if args.max_side:
        out = []
        for n, im in pairs:
            f = args.max_side / max(im.shape[:2])
            if f < 1:
                size = (max(1, round(im.shape[1] * f)), max(1, round(im.shape[0] * f)))
                im = np.asarray(Image.fromarray(im).resize(size, Image.Resampling.LANCZOS))
            out.append((n, im))
        pairs = out
    if not pairs:
        raise PixseqError("no images to benchmark")
    return pairs


def _check_options(args: argparse.Namespace) -> None:
    """Every option that can be out of range, and --out, checked before any image is coded
    (a quality Pillow's WebP/AVIF refuse was a traceback after the JPEG runs; JPEG takes -1
    as 'default'; a bad scale or batch failed only after all classic codecs had run)."""
    from pixseq.cli.common import check_output, check_weights_dir
    from pixseq.codec.codec import MAX_BATCH, MAX_SCALE
    from pixseq.errors import PixseqError

    bad = [q for q in args.qualities or () if not 0 <= q <= 100]
    if bad:
        raise PixseqError(f"--qualities must be in 0..100, got {bad[0]}")
    bad = [s for s in args.scales or () if not 1 <= s <= MAX_SCALE]
    if bad:
        raise PixseqError(f"--scales must be in 1..{MAX_SCALE}, got {bad[0]}")
    if not 1 <= args.batch <= MAX_BATCH:
        raise PixseqError(f"--batch must be in 1..{MAX_BATCH}, got {args.batch}")
    if args.limit is not None and args.limit < 1:
        raise PixseqError(f"--limit must be at least 1, got {args.limit}")
    if args.max_side < 0:
        raise PixseqError(f"--max-side must be 0 (keep the size) or a positive side, got {args.max_side}")
    if not args.budget > 0:  # (also catches nan)
        raise PixseqError(f"--budget must be a positive number of bits per pixel, got {args.budget}")
    check_output(args.out, "--out", folder=True)
    check_weights_dir(args.weights_dir)


def _codec_names(dirs: list[str]) -> list[str]:
    """``pixseq:<folder name>`` per model directory, with as many parent folders as it takes
    to tell them apart (``runs/a/final`` and ``runs/b/final`` are ``pixseq:a/final`` and
    ``pixseq:b/final``): results are grouped by this name, so two models sharing one would be
    merged into a single codec. The same directory twice is an error."""
    from pixseq.cli.common import real_path
    from pixseq.errors import PixseqError

    parts = [real_path(d).parts for d in dirs]
    for i, p in enumerate(parts):
        if p in parts[:i]:
            raise PixseqError(f"--model {dirs[i]} is given twice")
    names = []
    for p in parts:
        n = 1
        while n < len(p) and sum(q[-n:] == p[-n:] for q in parts) > 1:
            n += 1
        names.append("pixseq:" + "/".join(p[-n:]))
    return names


def _run_codecs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pixseq.cli.common import notice, resolve_device, seed_everything
    from pixseq.cli.compress import load_codec_model
    from pixseq.codec import compare

    _check_options(args)
    names = _codec_names(args.model)
    seed_everything(args.seed)
    device = resolve_device(args.device)
    images = _select(args)
    models = [(name, load_codec_model(d, device)) for name, d in zip(names, args.model)]
    if not models:
        notice("no --model given: only the classic codecs are measured")
    codecs = compare.classic_codecs()
    missing = sorted(set(compare.CLASSIC) - set(codecs))
    if missing:
        notice(f"this Pillow cannot write {', '.join(missing)}; skipped")
    measurer = compare.Measurer(label_overlap=not args.no_label_overlap, log=notice,
                                weights_dir=args.weights_dir, offline=args.offline)
    results, decoded = compare.run_comparison(
        images, models, args.qualities or compare.DEFAULT_QUALITIES, args.scales or compare.DEFAULT_SCALES,
        args.batch, measurer, log=print)
    page = compare.write_report(results, decoded, images, Path(args.out), args.budget, measurer.notes,
                                measurer.score_name, {"images": args.images, "models": args.model})
    print(compare.markdown_table(compare.best_under(results, args.budget), args.budget, measurer.score_name))
    print(f"wrote {page}")
    return 0
