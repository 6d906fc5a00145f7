"""The codec comparison behind ``pixseq bench codecs``: pixseq's codec(s) vs JPEG, WebP and AVIF.

For every image and every setting (pixseq: downscale factors; classic codecs: qualities) it
writes real bytes, decodes them, and measures the result against the original:

* rate: bits per pixel = bytes x 8 / (H x W) — containers included (JFIF, RIFF, HEIF, .pxs);
* PSNR, SSIM (11x11 Gaussian, Wang et al.), MS-SSIM (skipped below 161 px), from
  :mod:`pixseq.metrics`;
* the label-overlap score (top-100 ImageNet labels of original vs decoded) with the study's
  ViT when its weights are present, else EfficientNet-Lite0, reported under its own name;
* BRISQUE of the decoded image (no-reference; lower = more natural-looking).

This is the founding study's experiment — regenerate, then assess — with honest bit counts.
Metrics that cannot be computed (a module or weights missing) are reported as missing with
a printed note rather than failing the run.
"""
from __future__ import annotations

import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, features

from pixseq.codec.codec import compress_with_stats, decompress
from pixseq.errors import first_line
from pixseq.io import atomic_write, strict_json, to_tensor

CLASSIC = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}
DEFAULT_QUALITIES = (5, 10, 20, 30, 50, 75, 90)
DEFAULT_SCALES = (2, 4, 8)
METRICS = ("psnr", "ssim", "ms_ssim", "label_overlap", "brisque")
MS_SSIM_MIN_SIDE = 161  # 5 scales of an 11-px window need (11 - 1) * 2**4 + 1 pixels


@dataclass
class Result:
    """One (image, codec, setting) measurement."""

    image: str
    codec: str
    setting: str
    bytes: int
    bpp: float
    encode_s: float
    decode_s: float
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)


def classic_codecs() -> list[str]:
    """The classic codecs this Pillow can write (AVIF needs Pillow >= 11.3 built with libavif)."""
    return [c for c in CLASSIC if features.check(c if c != "jpeg" else "jpg")]


def classic_round_trip(image: np.ndarray, codec: str, quality: int) -> tuple[bytes, np.ndarray, float, float]:
    """Encode with Pillow at ``quality`` and decode again: (bytes, decoded uint8, enc s, dec s)."""
    t0 = time.perf_counter()
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=CLASSIC[codec], quality=int(quality))
    data = buf.getvalue()
    t1 = time.perf_counter()
    with Image.open(io.BytesIO(data)) as im:
        out = np.asarray(im.convert("RGB"))
    return data, out, t1 - t0, time.perf_counter() - t1


class Measurer:
    """Full-reference and no-reference metrics of a decoded image; notes what is unavailable."""

    def __init__(self, label_overlap: bool = True, log: Callable[[str], None] = print,
                 weights_dir: str | os.PathLike | None = None, offline: bool | None = None) -> None:
        """``weights_dir`` / ``offline``: where the label-overlap classifier's weights are
        looked for and whether they may be downloaded (see :mod:`pixseq.weights`)."""
        self.notes: list[str] = []
        self.log = log
        self.classifier, self.score_name = None, ""
        if label_overlap:
            self._load_classifier(weights_dir, offline)

    def _note(self, text: str) -> None:
        self.notes.append(text)
        self.log(f"note: {text}")

    def _load_classifier(self, weights_dir, offline) -> None:
        try:
            from pixseq.metrics.backbones import default_classifier
            from pixseq.metrics.vit_score import score_label

            self.classifier, note = default_classifier(weights_dir, offline)
            self.score_name = score_label(self.classifier.name)
            if note:
                self._note(note)
        except Exception as exc:  # noqa: BLE001 - optional metric: report, keep going
            # (first_line: an f-string's ``!r`` applied to a whole conditional quoted every message)
            self._note(f"label-overlap score unavailable: {first_line(exc)}")

    def __call__(self, ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
        a, b = to_tensor(ref)[None].double(), to_tensor(out)[None].double()
        res: dict[str, float] = {}
        for name, fn in (("psnr", self._psnr), ("ssim", self._ssim), ("ms_ssim", self._ms_ssim),
                         ("label_overlap", self._overlap), ("brisque", self._brisque)):
            try:
                value = fn(a, b)
            except Exception as exc:  # noqa: BLE001 - one failing metric must not sink the run
                self._note(f"{name} failed: {first_line(exc)}")
                value = None
            if value is not None:
                res[name] = float(value)
        return res

    @staticmethod
    def _psnr(a, b):
        from pixseq.metrics.pixel import psnr

        return min(psnr(a, b).item(), 99.0)  # identical images give inf; cap for JSON/plots

    @staticmethod
    def _ssim(a, b):
        from pixseq.metrics.ssim import ssim

        return ssim(a, b).item()

    @staticmethod
    def _ms_ssim(a, b):
        if min(a.shape[-2:]) < MS_SSIM_MIN_SIDE:
            return None
        from pixseq.metrics.ssim import ms_ssim

        return ms_ssim(a, b).item()

    def _overlap(self, a, b):
        if self.classifier is None:
            return None
        from pixseq.metrics.vit_score import vit_score

        return vit_score(a.float(), b.float(), self.classifier).item()

    @staticmethod
    def _brisque(a, b):
        from pixseq.metrics.brisque import brisque

        return brisque(b.float()).item()


def pixseq_round_trip(image: np.ndarray, model, scale: int, batch: int) -> tuple[bytes, np.ndarray, float, float, dict]:
    """Compress with the pixseq codec and decode the bytes back: (bytes, decoded, enc s, dec s, stats)."""
    data, stats = compress_with_stats(image, model, scale=scale, batch=batch)
    t0 = time.perf_counter()
    out = decompress(data, model)
    return data, out, stats.seconds, time.perf_counter() - t0, stats.as_dict()


#: One run of a codec setting on an image: (codec, setting, fn); ``fn()`` gives
#: ``(bytes, decoded uint8, encode s, decode s, extra numbers)``.
Run = tuple[str, str, Callable[[], tuple]]


def codec_runs(img: np.ndarray, models: Sequence[tuple[str, object]], qualities: Sequence[int],
               scales: Sequence[int], batch: int = 16) -> list[Run]:
    """The runs of every classic codec at ``qualities`` and every pixseq token codec at ``scales``
    on ``img`` (``pixseq bench codecs`` and ``pixseq study`` both measure these)."""
    runs: list[Run] = [(c, f"q{q}", lambda c=c, q=q: classic_round_trip(img, c, q) + ({},))
                       for c in classic_codecs() for q in qualities]
    runs += [(mname, f"scale{s}", lambda m=m, s=s: pixseq_round_trip(img, m, s, batch))
             for mname, m in models for s in scales]
    return runs


def run_comparison(images: Sequence[tuple[str, np.ndarray]], models: Sequence[tuple[str, object]],
                   qualities: Sequence[int] = DEFAULT_QUALITIES, scales: Sequence[int] = DEFAULT_SCALES,
                   batch: int = 16, measurer: Callable[[np.ndarray, np.ndarray], dict] | None = None,
                   log: Callable[[str], None] = print,
                   extra_runs: Callable[[str, np.ndarray], list[Run]] | None = None,
                   ) -> tuple[list[Result], dict[tuple, np.ndarray]]:
    """Measure every codec setting on every image; returns results and the decoded images.

    ``measurer``: ``(original, decoded) -> {metric: value}`` (default :class:`Measurer`);
    ``extra_runs(name, image)``: more runs per image beside :func:`codec_runs`' (``pixseq study``
    adds GAN inversion at each bit depth)."""
    measurer = measurer or Measurer(log=log)
    results, decoded = [], {}
    for name, img in images:
        pixels = img.shape[0] * img.shape[1]
        runs = codec_runs(img, models, qualities, scales, batch) + (extra_runs(name, img) if extra_runs else [])
        for codec, setting, fn in runs:
            data, out, enc_s, dec_s, extra = fn()
            r = Result(name, codec, setting, len(data), len(data) * 8 / pixels, enc_s, dec_s,
                       measurer(img, out), {k: v for k, v in extra.items() if isinstance(v, (int, float))})
            if "counted_bits" in extra:  # a run that counts its bits (the study's Elias code writes no file)
                r.bpp = float(extra["counted_bits"]) / pixels
            results.append(r)
            decoded[(name, codec, setting)] = out
            log(f"{name:>14s} {codec:>10s} {setting:>8s}: {r.bpp:7.4f} bpp  PSNR {r.metrics.get('psnr', float('nan')):6.2f}"
                f"  enc {enc_s:6.2f}s dec {dec_s:6.2f}s")
    return results, decoded


def best_under(results: Sequence[Result], budget: float, metric: str = "psnr") -> dict[str, dict]:
    """Per codec: mean of each image's best-``metric`` point with bpp <= budget (``images``: how
    many images had one, of ``of``). A codec none of whose points is within the budget gets its
    nearest setting instead (the one of lowest mean bpp, named in ``nearest``): a row of
    ``nan`` said nothing about how far off it was."""
    table: dict[str, dict] = {}
    codecs = sorted({r.codec for r in results})
    images = sorted({r.image for r in results})
    for c in codecs:
        picks = []
        for im in images:
            pts = [r for r in results if r.codec == c and r.image == im and r.bpp <= budget and metric in r.metrics]
            if pts:
                picks.append(max(pts, key=lambda r: r.metrics[metric]))
        row: dict = {"images": len(picks), "of": len(images)}
        if not picks:
            setting = _nearest_setting([r for r in results if r.codec == c])
            if setting is not None:
                row["nearest"] = setting
                picks = [r for r in results if r.codec == c and r.setting == setting]
        if picks:
            row.update(_means(picks))
        table[c] = row
    return table


def _nearest_setting(points: Sequence[Result]) -> str | None:
    """The setting of lowest mean bpp over the images (all of them over the budget: the nearest)."""
    settings = sorted({r.setting for r in points})
    if not settings:
        return None
    return min(settings, key=lambda s: np.mean([r.bpp for r in points if r.setting == s]))


def _means(picks: Sequence[Result]) -> dict[str, float]:
    row = {"bpp": float(np.mean([p.bpp for p in picks]))}
    for m in METRICS:
        vals = [p.metrics[m] for p in picks if m in p.metrics]
        row[m] = float(np.mean(vals)) if vals else math.nan
    return row


def summary_label(codec: str, row: dict, budget: float) -> str:
    """The codec cell of a summary row: its name, or for a codec that never got within the
    budget, that and the nearest setting the row shows instead."""
    if row.get("images"):
        return codec
    if "nearest" in row:
        return f"{codec}: none within {budget:g} bpp; nearest setting {row['nearest']}"
    return f"{codec}: no measurement"


def summary_rows(table: dict[str, dict], budget: float) -> list[list[str]]:
    """The summary table's rows as text: ``n/a`` for a metric not measured (not ``nan``)."""
    rows = []
    for c, row in table.items():
        vals = [row.get("bpp", math.nan), *[row.get(m, math.nan) for m in METRICS]]
        rows.append([summary_label(c, row, budget), f"{row['images']}/{row['of']}",
                     *["n/a" if math.isnan(v) else f"{v:.3f}" for v in vals]])
    return rows


def markdown_table(table: dict[str, dict], budget: float, score_name: str = "") -> str:
    """The best-under-budget table as markdown (see :func:`best_under`)."""
    head = f"| codec (best point with bpp <= {budget:g}) | images | mean bpp | PSNR dB | SSIM | MS-SSIM | label overlap | BRISQUE |"
    lines = [head, "|" + "---|" * 8]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(table, budget)]
    if score_name:
        lines.append(f"\nlabel overlap = {score_name}")
    return "\n".join(lines)


def save_json(results: Sequence[Result], path: Path, meta: dict) -> None:
    """``results.json``: strict JSON (a coder overhead over a zero cross-entropy is "nan")."""
    with atomic_write(path, "w") as fh:
        json.dump(strict_json({"meta": meta, "results": [asdict(r) for r in results]}), fh, indent=1,
                  default=float, allow_nan=False)
        fh.write("\n")


def rd_figure(results: Sequence[Result], metric: str, budget: float | None = None, label: str = ""):
    """Rate-distortion curves: mean over images per (codec, setting), bpp on a log axis;
    ``label`` names the metric on the axis (default: its key)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for c in sorted({r.codec for r in results}):
        settings = sorted({r.setting for r in results if r.codec == c})
        pts = []
        for s in settings:
            rs = [r for r in results if r.codec == c and r.setting == s and metric in r.metrics]
            if rs:
                pts.append((np.mean([r.bpp for r in rs]), np.mean([r.metrics[metric] for r in rs])))
        if pts:
            pts.sort()
            ax.plot(*zip(*pts), marker="o" if c in CLASSIC else "s", label=c)
    if budget:
        ax.axvline(budget, color="grey", ls="--", lw=1)
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel("bits per pixel (whole file)")
    ax.set_ylabel(label or metric)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def _plain_log_ticks(axis) -> None:
    """Plain numbers on a log axis (0.2, 0.5, 1, 2, 5): spanning less than a decade, matplotlib
    labels every minor tick as "3x10^-1", and the labels run into each other."""
    from matplotlib.ticker import FuncFormatter

    def major(v: float, _pos) -> str:
        return f"{v:g}"

    def minor(v: float, _pos) -> str:
        mantissa = round(v / 10 ** math.floor(math.log10(v))) if v > 0 else 0
        return f"{v:g}" if mantissa in (2, 5) else ""

    axis.set_major_formatter(FuncFormatter(major))
    axis.set_minor_formatter(FuncFormatter(minor))


def _closest(results: Sequence[Result], image: str, codec: str, bpp: float) -> Result | None:
    pts = [r for r in results if r.image == image and r.codec == codec]
    return min(pts, key=lambda r: abs(math.log(r.bpp / bpp))) if pts else None


def write_report(results: Sequence[Result], decoded: dict, images: Sequence[tuple[str, np.ndarray]],
                 out_dir: Path, budget: float, notes: Sequence[str] = (), score_name: str = "",
                 meta: dict | None = None) -> Path:
    """``results.json``, ``rd_<metric>.png`` plots and ``index.html`` (side by side at matched bpp)."""
    from pixseq.report import Page

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_json(results, out_dir / "results.json", {**(meta or {}), "notes": list(notes), "label_overlap": score_name})
    page = Page("pixseq codecs vs JPEG / WebP / AVIF")
    page.text("Every number comes from real bytes: bits per pixel = file size x 8 / pixels, container "
              "headers included. Decoded images are compared with the originals.")
    page.notes(notes)
    table = best_under(results, budget)
    page.section(f"Best setting at <= {budget} bpp (mean over images)")
    page.table(["codec", "images within budget", "bpp", *METRICS], summary_rows(table, budget))
    if score_name:
        page.note(f"label_overlap = {score_name}; brisque: lower is better")
    page.section("Rate-distortion")
    for m in METRICS:
        if any(m in r.metrics for r in results):
            label = score_name if m == "label_overlap" and score_name else m  # the score by its name
            fig = rd_figure(results, m, budget, label)
            with atomic_write(out_dir / f"rd_{m}.png") as fh:  # complete or absent, as every output
                fig.savefig(fh, format="png", dpi=110, bbox_inches="tight")
            page.plot(fig, f"{label} vs bpp (mean over images per setting)")
    _side_by_side(page, results, decoded, images)
    page.section("All measurements")
    page.table(["image", "codec", "setting", "bytes", "bpp", *METRICS, "encode s", "decode s"],
               [[r.image, r.codec, r.setting, r.bytes, r.bpp, *[r.metrics.get(m, math.nan) for m in METRICS],
                 r.encode_s, r.decode_s] for r in results])
    page.save(out_dir)
    return out_dir / "index.html"


def _side_by_side(page, results: Sequence[Result], decoded: dict, images: Sequence[tuple[str, np.ndarray]]) -> None:
    """For each pixseq point: the original, pixseq's image and each classic codec at the closest bpp."""
    page.section("Side by side at matched bits per pixel")
    ours = [r for r in results if r.codec not in CLASSIC]
    originals = dict(images)
    for r in ours:
        page.text(f"{r.image}: {r.codec} {r.setting} at {r.bpp:.3f} bpp, and each classic codec's closest setting")
        page.image(originals[r.image], "original", width=260)
        for c in [r.codec, *[c for c in CLASSIC if c in {x.codec for x in results}]]:
            m = r if c == r.codec else _closest(results, r.image, c, r.bpp)
            if m is not None:
                cap = f"{c} {m.setting}: {m.bpp:.3f} bpp, PSNR {m.metrics.get('psnr', math.nan):.2f}"
                page.image(decoded[(m.image, m.codec, m.setting)], cap, width=260)
