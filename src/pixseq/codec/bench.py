"""``pixseq bench codecs`` as a library call: pixseq codec(s) against JPEG / WebP / AVIF.

For each image: pixseq codec(s) and JPEG, WebP, AVIF at several settings; bpp from real
file sizes, PSNR, SSIM, MS-SSIM, label overlap, BRISQUE (see :mod:`pixseq.codec.compare`);
writes ``results.json``, ``rd_*.png`` and ``index.html`` into the output folder.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass
class BenchOptions:
    """The settings of ``pixseq bench codecs`` (its options, by the same names)."""

    images: str
    out: Path
    model: list[str] = field(default_factory=list)
    qualities: list[int] | None = None
    scales: list[int] | None = None
    names: str = ""
    limit: int | None = None
    max_side: int = 0
    budget: float = 0.25
    batch: int = 16
    no_label_overlap: bool = False
    weights_dir: Path | None = None
    offline: bool | None = None
    force: bool = False  # replace the report of an earlier run in ``out``


def select_images(opts: BenchOptions) -> list[tuple[str, object]]:
    import numpy as np
    from PIL import Image

    from pixseq.data import load_data
    from pixseq.errors import PixseqError

    data = load_data(opts.images)
    names = data.names or [f"image{i}" for i in range(len(data))]
    pairs = list(zip(names, data.images))
    if opts.names:
        wanted = [n.strip() for n in opts.names.split(",") if n.strip()]
        missing = sorted(set(wanted) - set(names))
        if missing:
            raise PixseqError(f"no image named {missing[0]!r} in {opts.images} (have: {', '.join(names[:12])})")
        pairs = [p for p in pairs if p[0] in wanted]
    pairs = pairs[: opts.limit] if opts.limit is not None else pairs
    if opts.max_side:
        out = []
        for n, im in pairs:
            f = opts.max_side / max(im.shape[:2])
            if f < 1:
                size = (max(1, round(im.shape[1] * f)), max(1, round(im.shape[0] * f)))
                im = np.asarray(Image.fromarray(im).resize(size, Image.Resampling.LANCZOS))
            out.append((n, im))
        pairs = out
    if not pairs:
        raise PixseqError("no images to benchmark")
    return pairs


def check_codec_settings(qualities, scales, batch: int, limit: int | None = None) -> None:
    """The codec settings ``bench codecs`` and ``study`` share, checked before any image is
    coded: qualities in 0..100, token-codec scales and batch in range, a positive limit."""
    from pixseq.codec.codec import MAX_BATCH, MAX_SCALE
    from pixseq.errors import PixseqError

    bad = [q for q in qualities or () if not 0 <= q <= 100]
    if bad:
        raise PixseqError(f"--qualities must be in 0..100, got {bad[0]}")
    bad = [s for s in scales or () if not 1 <= s <= MAX_SCALE]
    if bad:
        raise PixseqError(f"--scales must be in 1..{MAX_SCALE}, got {bad[0]}")
    if not 1 <= batch <= MAX_BATCH:
        raise PixseqError(f"--batch must be in 1..{MAX_BATCH}, got {batch}")
    if limit is not None and limit < 1:
        raise PixseqError(f"--limit must be at least 1, got {limit}")


def check_options(opts: BenchOptions) -> None:
    """Every option that can be out of range, and --out, checked before any image is coded
    (a quality Pillow's WebP/AVIF refuse was a traceback after the JPEG runs; JPEG takes -1
    as 'default'; a bad scale or batch failed only after all classic codecs had run)."""
    from pixseq.errors import PixseqError
    from pixseq.report.html import claim_page_folder
    from pixseq.weights import check_weights_dir

    check_codec_settings(opts.qualities, opts.scales, opts.batch, opts.limit)
    if opts.max_side < 0:
        raise PixseqError(f"--max-side must be 0 (keep the size) or a positive side, got {opts.max_side}")
    if not opts.budget > 0:  # (also catches nan)
        raise PixseqError(f"--budget must be a positive number of bits per pixel, got {opts.budget}")
    claim_page_folder(opts.out, "--out", opts.force, inputs=[opts.images, *opts.model],
                      files=("index.html", "results.json"))
    check_weights_dir(opts.weights_dir)


def codec_names(dirs: list[str]) -> list[str]:
    """``pixseq:<folder name>`` per model directory, with as many parent folders as it takes
    to tell them apart (``runs/a/final`` and ``runs/b/final`` are ``pixseq:a/final`` and
    ``pixseq:b/final``): results are grouped by this name, so two models sharing one would be
    merged into a single codec. The same directory twice is an error."""
    from pixseq.errors import PixseqError
    from pixseq.io import real_path

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


def bench_codecs(opts: BenchOptions, device: torch.device | str = "auto", seed: int = 0, log=print):
    """Measure every codec on every image, write the report into ``opts.out`` and return
    ``(page path, the summary table under the bpp budget as markdown)``. ``log`` receives one
    line per codec run (``print`` for the CLI)."""
    from pixseq.checkpoint import load_model
    from pixseq.codec import CODEC_MODEL_KINDS, compare
    from pixseq.device import resolve_device
    from pixseq.runtime import notice, seed_everything

    check_options(opts)
    names = codec_names(opts.model)
    seed_everything(seed)
    device = resolve_device(device)
    images = select_images(opts)
    models = [(name, load_model(d, CODEC_MODEL_KINDS, device)) for name, d in zip(names, opts.model)]
    if not models:
        notice("no --model given: only the classic codecs are measured")
    codecs = compare.classic_codecs()
    missing = sorted(set(compare.CLASSIC) - set(codecs))
    if missing:
        notice(f"this Pillow cannot write {', '.join(missing)}; skipped")
    measurer = compare.Measurer(label_overlap=not opts.no_label_overlap, log=notice,
                                weights_dir=opts.weights_dir, offline=opts.offline)
    results, decoded = compare.run_comparison(
        images, models, opts.qualities or compare.DEFAULT_QUALITIES, opts.scales or compare.DEFAULT_SCALES,
        opts.batch, measurer, log=log)
    page = compare.write_report(results, decoded, images, Path(opts.out), opts.budget, measurer.notes,
                                measurer.score_name, {"images": opts.images, "models": opts.model})
    table = compare.markdown_table(compare.best_under(results, opts.budget), opts.budget, measurer.score_name)
    return page, table
