"""The outputs of ``pixseq study`` (:mod:`pixseq.inversion.study`): the summary laid out like
the founding study's Table 3.3 -- a row per method and setting, a column per metric -- plus
the bits per pixel it never had; rate-distortion plots, a gallery per image, JSON, CSV, HTML.

Files written into the report folder:

* ``table.txt`` / ``table.csv`` -- the summary (means over the images; set metrics over the set);
* ``results.csv`` -- every (image, method, setting) measurement; ``study.json`` -- all of it,
  strict JSON, with the options, notes and the inversion's quality-against-steps log;
* ``rd_<metric>.png`` -- each pair metric against bpp; ``galleries/<image>.png`` -- the
  original and every decoded output of one image, a row per method;
* ``index.html`` -- the page showing all of the above (last, atomically).
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pixseq.io import atomic_write

SHORT = {"vit_score": "ViT-Score", "ssim": "SSIM", "mse": "MSE", "psnr": "PSNR", "ms_ssim": "MS-SSIM",
         "lpips": "LPIPS", "brisque_dist": "BRISQUE", "fid": "FID", "kid": "KID", "is": "IS"}
PAIR = ("vit_score", "ssim", "mse", "psnr", "ms_ssim", "lpips", "brisque_dist")
SETS = ("fid", "kid", "is")
#: at most this many per-image galleries on the page (all are written to galleries/)
PAGE_GALLERIES = 24


@dataclass
class Study:
    """What a study measured (see :func:`pixseq.inversion.study.run_study`)."""

    results: list  # pixseq.codec.compare.Result
    decoded: dict  # (image, codec, setting) -> uint8 image
    images: list  # (name, uint8 image)
    columns: dict[str, str]  # pair column -> its full label
    sets: dict  # (codec, setting) -> {fid, kid, is}
    originals: dict  # image name -> BRISQUE of the original
    notes: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- the table

def method_label(codec: str, meta: dict) -> str:
    """A table row's method as the study would name it."""
    kind, _, name = codec.partition(":")
    if kind == "invert":
        return f"GAN inversion ({name}, {meta.get('quantizer', 'qsgd')})"
    if kind == "invert-elias":
        return f"study's Elias code ({name}; bits counted, no file)"
    if kind == "pixseq":
        return f"pixseq tokens ({name})"
    return {"jpeg": "JPEG", "webp": "WebP", "avif": "AVIF"}.get(codec, codec)


def setting_label(setting: str) -> str:
    """``q90`` -> ``q=90``, ``4bit`` -> ``4 bits``, ``scale2`` -> ``1/2 size``."""
    if m := re.fullmatch(r"q(\d+)", setting):
        return f"q={m[1]}"
    if m := re.fullmatch(r"(\d+)bit", setting):
        return f"{m[1]} bit{'s' if m[1] != '1' else ''}"
    if m := re.fullmatch(r"scale(\d+)", setting):
        return f"1/{m[1]} size"
    return setting


def row_keys(study: Study) -> list[tuple[str, str]]:
    """(codec, setting) in the table's order: inversion first, then the study's Elias rows,
    JPEG, WebP, AVIF, token codecs; settings in the order they were run."""
    order = {"invert": 0, "invert-elias": 1, "jpeg": 2, "webp": 3, "avif": 4}
    keys = list(dict.fromkeys((r.codec, r.setting) for r in study.results))
    return sorted(keys, key=lambda k: (order.get(k[0].partition(":")[0], 5), k[0], keys.index(k)))


def summary(study: Study) -> list[dict]:
    """One dict per table row: method, setting, images, bpp and the means of every metric
    (``nan``: not measured); the first row is the originals' (BRISQUE, IS)."""
    n = len(study.images)
    vals = [v for v in study.originals.values() if v is not None]
    first = {"method": "original", "setting": "", "images": n, "bpp": math.nan,
             **{c: math.nan for c in (*PAIR, *SETS)}}
    first["brisque_dist"] = float(np.mean(vals)) if vals else math.nan
    first["is"] = study.sets.get(("original", ""), {}).get("is", math.nan)
    rows = [first]
    for codec, setting in row_keys(study):
        pts = [r for r in study.results if r.codec == codec and r.setting == setting]
        row = {"codec": codec, "method": method_label(codec, study.meta), "setting": setting_label(setting),
               "images": len(pts), "bpp": float(np.mean([r.bpp for r in pts]))}
        for c in PAIR:
            got = [r.metrics[c] for r in pts if c in r.metrics]
            row[c] = float(np.mean(got)) if got else math.nan
        row.update({c: study.sets.get((codec, setting), {}).get(c, math.nan) for c in SETS})
        rows.append(row)
    return rows


def _cell(v, key: str) -> str:
    if isinstance(v, str):
        return v
    if v is None or math.isnan(v):
        return "n/a"
    if math.isinf(v):  # a lossless output's PSNR
        return "inf" if v > 0 else "-inf"
    if key == "mse" or key == "kid":
        return f"{v:.2e}"
    return f"{v:.3f}" if key in ("bpp", "vit_score", "ssim", "ms_ssim", "lpips") else f"{v:.2f}"


def short_names(study: Study) -> dict[str, str]:
    """Column key -> its header: the study's names, "label overlap" for a ViT-Score computed
    with another classifier (it is the study's ViT-Score only with the study's ViT)."""
    short = dict(SHORT)
    if not study.columns.get("vit_score", "").startswith("ViT-Score"):
        short["vit_score"] = "label overlap"
    return short


def header(study: Study) -> list[str]:
    short = short_names(study)
    return ["method", "setting", "images", "bpp", *[short[c] for c in (*PAIR, *SETS)]]


def table_cells(study: Study) -> list[list[str]]:
    return [[r["method"], r["setting"], str(r["images"]), _cell(r["bpp"], "bpp"),
             *[_cell(r[c], c) for c in (*PAIR, *SETS)]] for r in summary(study)]


def legend(study: Study) -> list[str]:
    """What each column holds exactly (labels of the pair metrics, the set metrics' sizes)."""
    short = short_names(study)
    lines = [("bpp: file bytes x 8 / pixels, headers included (the Elias rows: the bits the study's code would "
              "have used, no file); means over the images")]
    lines += [f"{short[c]}: {label}" for c, label in study.columns.items() if c in short]
    lines.append(f"FID / KID / IS: over the set of {len(study.images)} images against the originals "
                 "(FID/KID: lower is better; IS: higher)")
    return lines


def text_table(study: Study) -> str:
    """The summary as an aligned plain-text table, its legend and notes below."""
    head, body = header(study), table_cells(study)
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    lines = [line(head), "  ".join("-" * w for w in widths), *[line(r) for r in body], ""]
    return "\n".join(lines + legend(study) + [f"note: {n}" for n in study.notes])


# --------------------------------------------------------------------------- files

def _csv(rows: list[list]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue()


def results_rows(study: Study) -> list[list]:
    """Every measurement, one row per (image, codec, setting), ``results.csv``'s rows."""
    head = ["image", "codec", "setting", "bytes", "bpp", *PAIR, "encode_s", "decode_s"]
    rows = [[r.image, r.codec, r.setting, r.bytes, repr(r.bpp),
             *[repr(r.metrics[c]) if c in r.metrics else "" for c in PAIR], repr(r.encode_s), repr(r.decode_s)]
            for r in study.results]
    return [head, *rows]


def safe_name(name: str) -> str:
    """An image's name as a file name (folder separators and odd characters replaced)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image"


def gallery(study: Study, name: str, original: np.ndarray, side: int = 160) -> np.ndarray:
    """The original, then a row per method with its settings in the table's order."""
    from PIL import Image

    from pixseq.report.grid import legible_scale, make_grid

    def cell(img: np.ndarray) -> np.ndarray:
        pil = Image.fromarray(img)
        if max(img.shape[:2]) > side:
            pil.thumbnail((side, side), Image.BICUBIC)
        s = legible_scale(pil.height)
        return np.asarray(pil.resize((pil.width * s, pil.height * s), Image.NEAREST))

    keys = row_keys(study)
    codecs = list(dict.fromkeys(c for c, _ in keys))
    ncol = max(sum(1 for c, _ in keys if c == codec) for codec in codecs)
    blank = np.full_like(cell(original), 255)
    cells = [cell(original)] + [blank] * (ncol - 1)
    for codec in codecs:
        row = [cell(study.decoded[(name, codec, s)]) for c, s in keys if c == codec]
        cells += row + [blank] * (ncol - len(row))
    return make_grid(cells, ncol=ncol)


def write_study(study: Study, folder: Path) -> Path:
    """Every output file into ``folder`` (a fresh folder: :func:`pixseq.inversion.study.run_study`
    renames it into place); returns the page's path."""
    from pixseq.codec import compare
    from pixseq.io import save_image

    folder = Path(folder)
    table = text_table(study)
    with atomic_write(folder / "table.txt", "w") as fh:
        fh.write(table + "\n")
    with atomic_write(folder / "table.csv", "w") as fh:
        fh.write(_csv([header(study), *table_cells(study)]))
    with atomic_write(folder / "results.csv", "w") as fh:
        fh.write(_csv(results_rows(study)))
    sets = [{"codec": k[0], "setting": k[1], **v} for k, v in study.sets.items()]
    compare.save_json(study.results, folder / "study.json",
                      {**study.meta, "columns": study.columns, "table": summary(study), "set_metrics": sets,
                       "originals_brisque": study.originals, "notes": study.notes})
    galleries: dict[str, Path] = {}
    for name, img in study.images:
        stem = safe_name(str(Path(name).with_suffix("")))
        taken = {p.name for p in galleries.values()}
        stem = next(f"{stem}-{i}" if i else stem for i in range(len(taken) + 1)
                    if (f"{stem}-{i}" if i else stem) + ".png" not in taken)  # a.png and a.jpg: two files
        path = folder / "galleries" / f"{stem}.png"
        save_image(gallery(study, name, img), path)
        galleries[name] = path
    return _page(study, folder, galleries)


def _page(study: Study, folder: Path, galleries: dict[str, Path]) -> Path:
    from pixseq.codec import compare
    from pixseq.report import Page

    meta = study.meta
    page = Page(f"pixseq study: {meta.get('images', '')} -- GAN inversion vs JPEG / WebP / AVIF")
    page.text("The founding study's experiment with honest bits: every image inverted into the generator "
              f"{meta.get('generator', '')!s}, its latent quantised at {', '.join(map(str, meta.get('bits', [])))} "
              "bits and written as a real .pxs file, beside JPEG, WebP and AVIF at the study's qualities and "
              "pixseq's token codecs; each decoded output scored against its original.")
    page.notes(study.notes)
    page.section("Summary (laid out like the study's Table 3.3, plus bits per pixel)")
    page.table(header(study), table_cells(study))
    page.notes(legend(study))
    page.section("Rate-distortion")
    for c in PAIR:
        if any(c in r.metrics for r in study.results):
            label = short_names(study)[c]
            fig = compare.rd_figure(study.results, c, None, label)
            with atomic_write(folder / f"rd_{c}.png") as fh:
                fig.savefig(fh, format="png", dpi=110, bbox_inches="tight")
            page.plot(fig, f"{study.columns.get(c, label)} vs bpp (mean over images per setting)")
    page.section("Galleries (the original, then a row per method, settings as in the table)")
    rows = [method_label(c, meta) for c in dict.fromkeys(k[0] for k in row_keys(study))]
    page.note("rows: original; " + "; ".join(rows))
    for name, path in list(galleries.items())[:PAGE_GALLERIES]:
        page.image(path, name)
    if len(galleries) > PAGE_GALLERIES:
        page.note(f"first {PAGE_GALLERIES} of {len(galleries)} galleries shown; all are in galleries/")
    return page.save(folder)
