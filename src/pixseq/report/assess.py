"""The outputs of ``pixseq assess``: a plain-text table, strict JSON, CSV and an HTML page."""
from __future__ import annotations

import csv
import io
import json
import math
import textwrap
from typing import TYPE_CHECKING

import numpy as np

from pixseq.io import atomic_write, load_image, strict_json

if TYPE_CHECKING:  # the types only: a report never runs an assessment
    from pixseq.assess import AssessOptions, Pairs


def fmt(v: float) -> str:
    """A score as printed: 4 significant digits, inf / -inf / nan spelled out."""
    if not math.isfinite(v):
        return "inf" if v > 0 else ("-inf" if v < 0 else "nan")
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.4e}"


def format_table(rows: list[dict], columns: dict[str, str]) -> str:
    """An aligned plain-text table with a mean row."""
    header = ["image"] + [columns[c] for c in columns]
    body = [[r["name"]] + [fmt(r[c]) for c in columns] for r in rows]
    if len(rows) > 1:
        body.append(["mean"] + [fmt(float(np.mean([r[c] for r in rows]))) for c in columns])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    lines = ["  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w) for i, (x, w) in enumerate(zip(line, widths)))
             for line in [header] + body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def pair_caption(row: dict, columns: dict[str, str]) -> str:
    """A pair's scores under the names the tables give them (``label-overlap score
    (EfficientNet-Lite0, K=100) 0.62; SSIM 0.91``): the column keys (``vit_score``) named
    the study's ViT-Score for any backbone."""
    return "; ".join(f"{label} {fmt(row[c])}" for c, label in columns.items())


def write_outputs(opts: "AssessOptions", rows, columns, sets, pairs: "Pairs", notes: list[str]) -> None:
    """The JSON, CSV and HTML outputs ``opts`` names (each written atomically)."""
    if opts.json:
        doc = {"ref": str(opts.ref), "dist": str(opts.dist), "preset": opts.preset, "columns": columns,
               "pairs": rows, "set_metrics": sets,
               "unmatched": {"ref_only": pairs.ref_only, "dist_only": pairs.dist_only},
               "notes": notes}
        with atomic_write(opts.json, "w") as fh:
            json.dump(strict_json(doc), fh, indent=2, ensure_ascii=False)
    if opts.csv:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["image"] + [columns[c] for c in columns])
        for r in rows:
            writer.writerow([r["name"]] + [fmt(r[c]) if not math.isfinite(r[c]) else repr(r[c]) for c in columns])
        with atomic_write(opts.csv, "w") as fh:
            fh.write(buf.getvalue())
    if opts.html:
        write_html(opts, rows, columns, sets, pairs, notes)


def _thumb(image: np.ndarray, side: int = 256) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(image)
    img.thumbnail((side, side), Image.BICUBIC)
    return np.asarray(img)


def write_html(opts: "AssessOptions", rows, columns, sets, pairs: "Pairs", notes: list[str],
               max_pairs: int = 100) -> None:
    """Pairs side by side with their scores, the score table, set metrics and distributions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pixseq.report import Page

    page = Page(f"pixseq assess: {opts.ref} vs {opts.dist}")
    page.note(f"preset: {opts.preset}")
    page.notes(notes)
    if pairs.ref_only or pairs.dist_only:
        page.note(f"unmatched — only in REF: {', '.join(pairs.ref_only) or 'none'}; "
                  f"only in DIST: {', '.join(pairs.dist_only) or 'none'}")
    page.section("Scores").table(["image"] + list(columns.values()),
                                 [[r["name"]] + [r[c] for c in columns] for r in rows])
    if sets:
        page.section("Set metrics").table(
            ["metric", "value", "std"], [[s["label"], s["value"], s.get("std", "")] for s in sets.values()])
    if rows and columns:
        fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 2.6), squeeze=False)
        for ax, (c, label) in zip(axes[0], columns.items()):
            vals = [r[c] for r in rows if math.isfinite(r[c])]
            ax.hist(vals, bins=min(20, max(1, len(vals))), color="#4a7bb7")
            ax.set_title(textwrap.fill(label, 32), fontsize=8)  # the table's name, not the column key
        page.section("Score distributions").plot(fig, "histograms of the per-image scores")
    page.section("Image pairs")
    for r in rows[:max_pairs]:
        scores = pair_caption(r, columns)
        page.image(_thumb(load_image(r["ref_path"])), f"REF {r['name']}")
        page.image(_thumb(load_image(r["dist_path"])), f"DIST {r['name']}: {scores}")
        page.text("<div></div>", raw_html=True)
    if len(rows) > max_pairs:
        page.note(f"first {max_pairs} of {len(rows)} pairs shown")
    page.save(opts.html)


