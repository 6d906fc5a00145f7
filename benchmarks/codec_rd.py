"""Where the pixseq codec sits vs JPEG / WebP / AVIF on held-out photos, at <= 0.25 bpp.

Uses the small iGPT of ``_codec_model.py`` (trained on crops of the other built-in photos)
and :mod:`pixseq.codec.compare` (the engine of ``pixseq bench codecs``). Prints two tables:
each codec's best point at <= budget bpp (PSNR, SSIM, MS-SSIM, label overlap, BRISQUE), and
for each pixseq point the classic codecs interpolated to the *same* bpp (linear in log-bpp
between their quality settings), as differences. Reported as measured, good or bad.

    python benchmarks/codec_rd.py [--scales 4,6,8] [--out /tmp/pixseq-bench/codec-rd]
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _codec_model import HELD_OUT, photo_igpt  # noqa: E402

from pixseq.checkpoint import from_pretrained  # noqa: E402
from pixseq.codec import compare  # noqa: E402
from pixseq.data import builtin_photos  # noqa: E402

QUALITIES = (2, 5, 10, 15, 20, 30, 40, 50, 75)


def interpolate(results, image: str, codec: str, bpp: float, metric: str) -> float:
    """The codec's ``metric`` at ``bpp`` on ``image``, linear in log-bpp; NaN outside its range."""
    pts = sorted((r.bpp, r.metrics[metric]) for r in results
                 if r.image == image and r.codec == codec and metric in r.metrics)
    if len(pts) < 2 or not pts[0][0] <= bpp <= pts[-1][0]:
        return math.nan
    x, y = np.log([p[0] for p in pts]), [p[1] for p in pts]
    return float(np.interp(math.log(bpp), x, y))


def matched_table(results, metrics=("psnr", "ms_ssim", "label_overlap")) -> str:
    classic = [c for c in compare.CLASSIC if any(r.codec == c for r in results)]
    head = "| pixseq point | bpp | " + " | ".join(f"{m} pixseq | " + " | ".join(f"{c} Δ" for c in classic)
                                                for m in metrics) + " |"
    lines = [head, "|" + "---|" * (2 + len(metrics) * (1 + len(classic)))]
    ours = [r for r in results if r.codec not in compare.CLASSIC]
    for setting in sorted({r.setting for r in ours}, key=lambda s: int(s.replace("scale", ""))):
        rs = [r for r in ours if r.setting == setting]
        cells = [f"{rs[0].codec} {setting} (mean of {len(rs)})", f"{np.mean([r.bpp for r in rs]):.3f}"]
        for m in metrics:
            own = [r.metrics.get(m, math.nan) for r in rs]
            cells.append(f"{np.nanmean(own):.3f}" if not all(map(math.isnan, own)) else "n/a")
            for c in classic:
                d = [interpolate(results, r.image, c, r.bpp, m) - r.metrics.get(m, math.nan) for r in rs]
                d = [v for v in d if not math.isnan(v)]
                cells.append(f"{np.mean(d):+.3f} ({len(d)})" if d else "out of range")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + ("\n\nΔ = classic codec minus pixseq at the same bpp (positive: the classic codec "
                               "is better); (n) = images where the classic codec's settings span that bpp")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="4,6,8")
    ap.add_argument("--budget", type=float, default=0.25)
    ap.add_argument("--out", default="/tmp/pixseq-bench/codec-rd")
    args = ap.parse_args()
    torch.set_num_threads(1)  # shared 2-core machine: more threads were slower
    model_dir = photo_igpt()
    model = from_pretrained(model_dir)
    photos = builtin_photos()
    images = [(n, im) for n, im in zip(photos.names, photos.images) if n in HELD_OUT]
    measurer = compare.Measurer(log=lambda s: print(s, file=sys.stderr))
    results, decoded = compare.run_comparison(images, [("pixseq-igpt", model)], QUALITIES,
                                              [int(s) for s in args.scales.split(",")], 16, measurer,
                                              log=lambda s: print(s, file=sys.stderr))
    page = compare.write_report(results, decoded, images, Path(args.out), args.budget, measurer.notes,
                                measurer.score_name, {"model": str(model_dir), "held_out": list(HELD_OUT)})
    print(f"held-out photos: {', '.join(n for n, _ in images)}; model {model_dir}; classic qualities {QUALITIES}\n")
    print(compare.markdown_table(compare.best_under(results, args.budget), args.budget, measurer.score_name))
    print()
    print(matched_table(results))
    for n in measurer.notes:
        print(f"\nnote: {n}")
    print(f"\nreport: {page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
