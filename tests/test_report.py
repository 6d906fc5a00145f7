"""pixseq.report: the HTML page (escaping, encoding, assets) and image grids."""
from __future__ import annotations

from html.parser import HTMLParser

import numpy as np

from pixseq.report import Page, make_grid


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_page_escapes_text_and_is_utf8_whatever_the_names(tmp_path):
    """A file name that is not valid UTF-8 (lone surrogates in Python) made Page.save raise
    UnicodeEncodeError after the assets were written; the page is UTF-8 as it declares."""
    bad = b"bad\xffname.png".decode("utf-8", "surrogateescape")
    page = Page("r <&> 日本")
    page.section("<script>alert(1)</script>")
    page.table(["name", "x"], [(f"<img src=x onerror=alert(1)>&{bad}", 0.5)])
    page.image(np.zeros((2, 3, 3), np.uint8), caption="cat & 'dog' 日本")
    path = page.save(tmp_path)
    html = path.read_bytes().decode("utf-8")  # strict: valid UTF-8
    assert "<script>" not in html and "onerror=alert(1)>" not in html
    assert "bad\\udcffname.png" in html and "日本" in html
    parsed = _Tags()
    parsed.feed(html)
    assert [t for t, _ in parsed.tags if t in ("script", "img")] == ["img"]
    img = next(a for t, a in parsed.tags if t == "img")
    assert img["alt"] == "cat & 'dog' 日本" and (tmp_path / img["src"]).is_file()
    assert any("<img src=x onerror=alert(1)>&bad" in t for t in parsed.text)  # shown as text


def test_make_grid_layout():
    a = np.full((2, 3, 3), 10, np.uint8)
    b = np.full((1, 1), 200, np.uint8)  # grey, smaller: top-left of its cell
    grid = make_grid([a, b, a], ncol=2, pad=1, scale=2)
    assert grid.shape == (1 + 2 * (4 + 1), 1 + 2 * (6 + 1), 3)
    assert (grid[1:5, 1:7] == 10).all() and (grid[1:3, 8:10] == 200).all() and (grid[3:5, 8:10] == 255).all()
    assert (grid[6:10, 1:7] == 10).all() and (grid[6:10, 8:14] == 255).all()


def test_backticked_spans_are_code_and_cannot_carry_markup(tmp_path):
    """The demo page showed its commands with literal backticks; `spans` are now <code>,
    escaped first so that a span holding markup stays text."""
    page = Page("t")
    page.text("Try `pixseq sample --model m -n 2` or `<b>x</b>`, 3 ` 4")
    page.note("see `tensorboard --logdir runs`")
    html = page.save(tmp_path).read_text(encoding="utf-8")
    assert "<code>pixseq sample --model m -n 2</code>" in html
    assert "<code>&lt;b&gt;x&lt;/b&gt;</code>" in html and "<b>x</b>" not in html
    assert ", 3 ` 4" in html  # an unpaired backtick stays as it is
    assert "<code>tensorboard --logdir runs</code>" in html
