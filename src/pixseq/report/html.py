"""A small HTML page builder: sections, text, tables, images, grids and matplotlib plots.

Images are written as files under ``<out_dir>/assets/``, named by a hash of their bytes,
and the page as ``<out_dir>/index.html``, last and atomically. A page written over an older
one therefore never changes a file the older page shows: stopped at any moment, the folder
holds a whole old page or a whole new one, each with its own images (the old page's images
are removed only once the new page is in place). The page has no external resources: it
opens offline.
"""
from __future__ import annotations

import hashlib
import html
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pixseq.io import atomic_write, claim_output, refuse_existing
from pixseq.report.grid import make_grid

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.5}
h1{border-bottom:2px solid #444;padding-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.3em .7em;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
figure{display:inline-block;margin:.6em;vertical-align:top;text-align:center}
figure img{image-rendering:pixelated;max-width:100%;border:1px solid #ddd}
figcaption{font-size:.85em;color:#555;max-width:520px}.note{color:#555;font-size:.92em}
code{background:#f4f4f4;padding:0 .25em}
"""


@dataclass
class _Asset:
    name: str
    data: bytes


@dataclass
class Page:
    """Build an HTML report piece by piece, then :meth:`save` it."""

    title: str
    _body: list[str] = field(default_factory=list)
    _assets: list[_Asset] = field(default_factory=list)

    # -- content -------------------------------------------------------------------------
    def section(self, title: str) -> "Page":
        """Start a new section (an ``<h2>``)."""
        self._body.append(f"<h2 id='{_slug(title)}'>{html.escape(title)}</h2>")
        return self

    def text(self, content: str, raw_html: bool = False) -> "Page":
        """A paragraph; plain text is escaped and its `backticked` spans set as code
        (``raw_html=True`` inserts HTML as is)."""
        self._body.append(content if raw_html else f"<p>{_inline(content)}</p>")
        return self

    def note(self, content: str) -> "Page":
        """A small grey paragraph (caveats, settings)."""
        self._body.append(f"<p class='note'>{_inline(content)}</p>")
        return self

    def notes(self, items: Sequence[str]) -> "Page":
        """Several notes as a small grey list, one item each (joined into one paragraph they
        ran together); nothing when ``items`` is empty."""
        if items:
            self._body.append("<ul class='note'>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
        return self

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "") -> "Page":
        """A table; floats are shown with 4 significant digits."""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self._body.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        return self

    def image(self, image: np.ndarray | str | os.PathLike, caption: str = "", width: int | None = None) -> "Page":
        """An image (uint8 ``(H, W, 3)`` array or an existing image file)."""
        if isinstance(image, (str, os.PathLike)):
            data = Path(image).read_bytes()
            suffix = Path(image).suffix.lower() or ".png"
        else:
            data, suffix = _png_bytes(image), ".png"
        name = self._add_asset(data, suffix)
        w = f" width='{int(width)}'" if width else ""
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._body.append(f"<figure><img src='{name}' alt='{html.escape(caption)}'{w}>{cap}</figure>")
        return self

    def grid(self, images: Sequence[np.ndarray], ncol: int | None = None, caption: str = "",
             scale: int = 1, width: int | None = None) -> "Page":
        """Several images tiled into one grid image."""
        return self.image(make_grid(images, ncol=ncol, scale=scale), caption, width)

    def plot(self, fig: Any, caption: str = "", dpi: int = 110) -> "Page":
        """A matplotlib figure, rendered to PNG (the figure is closed afterwards)."""
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        name = self._add_asset(buf.getvalue(), ".png")
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._body.append(f"<figure><img src='{name}' alt='{html.escape(caption)}'>{cap}</figure>")
        return self

    def _add_asset(self, data: bytes, suffix: str) -> str:
        """Register an image file's bytes; returns its path relative to the page."""
        suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".bin"
        name = f"assets/{hashlib.sha256(data).hexdigest()[:20]}{suffix}"
        self._assets.append(_Asset(name, data))
        return name

    # -- output --------------------------------------------------------------------------
    def render(self) -> str:
        """The page as an HTML string."""
        return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(self.title)}"
                f"</title><style>{_CSS}</style></head><body><h1>{html.escape(self.title)}</h1>"
                + "\n".join(self._body) + "</body></html>\n")

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write the assets, then ``index.html`` (atomically), then remove the assets of an
        earlier page in ``out_dir`` that this one does not show; returns the page's path.

        Only files named the way pages name their assets are ever removed (also the
        ``imgNNN`` names of older pixseq versions), so other files in the folder are safe.
        """
        out_dir = Path(out_dir)
        for asset in self._assets:
            path = out_dir / asset.name
            if not path.is_file():  # the same name holds the same bytes: nothing to write
                with atomic_write(path) as fh:
                    fh.write(asset.data)
        with atomic_write(out_dir / "index.html", "w") as fh:  # UTF-8, as the page declares
            fh.write(self.render())
        shown = {Path(a.name).name for a in self._assets}
        assets = out_dir / "assets"
        for old in assets.iterdir() if assets.is_dir() else ():
            if _ASSET_FILE.fullmatch(old.name) and old.name not in shown and old.is_file():
                old.unlink(missing_ok=True)
        return out_dir / "index.html"


def claim_page_folder(folder: str | os.PathLike, what: str, force: bool, inputs: Sequence = (),
                      files: Sequence[str] = ("index.html",)) -> Path:
    """The overwrite policy (:func:`pixseq.io.claim_output`) for the folder a page is saved
    into: only its last level may be created, it is none of ``inputs``, and the page (or
    another of ``files``) already there is replaced only with ``force``. Before any work."""
    folder = claim_output(folder, what, folder=True, inputs=inputs)
    there = [name for name in files if (folder / name).exists()]
    if there:
        refuse_existing(folder, what, force, " and ".join(there))
    return folder


#: Names of page assets: a 20-hex-digit hash, or ``imgNNN`` as older versions wrote them.
_ASSET_FILE = re.compile(r"(?:[0-9a-f]{20}|img\d{3})\.[a-z0-9]{1,5}")


def _png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _inline(text: str) -> str:
    """Escaped text with each `backticked` span as ``<code>`` (commands on the demo page
    showed their backticks); escaping comes first, so a span cannot carry markup."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        return f"{value:.4g}"
    return str(value)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")

