"""``pixseq demo``'s sections from the zoo, each run at its quick size on the real zoo models:
what each shows and the numbers it states (the iGPT part that trains live: test_cli_igpt.py)."""
from __future__ import annotations

import importlib

import pytest

from pixseq.report import Page

# section module -> (a heading it writes, stats keys with their allowed ranges)
SECTIONS = {
    "zoo_igpt": ("iGPT from the zoo", {"bits_per_pixel": (0.3, 3.0)}),
    "taming": ("Taming Transformers from the zoo", {"psnr_db": (10.0, 60.0), "raw_bpp": (0.5, 0.6)}),
    "gan": ("GANs from the zoo", {"class_agreement": (0.0, 1.0)}),
    "classify": ("Vision Transformer from the zoo", {"accuracy": (0.5, 1.0)}),
    "text_to_image": ("Text to image from the zoo", {"zero_shot_accuracy": (0.2, 1.0), "mean_clip_score": (0.0, 100.0)}),
    "translate": ("Image-to-image translation from the zoo", {"photos": (1, 1)}),
    "codec": ("Neural compression from the zoo", {}),
}


@pytest.mark.slow
@pytest.mark.parametrize("module", sorted(SECTIONS))
def test_zoo_section_quick(module, tmp_path):
    if module == "translate":
        pytest.importorskip("vintagify", reason="cyclegan-vintage is converted from PyPI vintagify")
    heading, ranges = SECTIONS[module]
    page = Page("demo")
    stats = importlib.import_module(f"pixseq.demo.{module}").demo_section(page, tmp_path, "cpu", quick=True)
    html = page.render()
    assert heading in html
    for key, (lo, hi) in ranges.items():
        assert lo <= stats[key] <= hi, (key, stats[key])
    if module == "codec":  # pixseq within the 0.25 bpp budget; the classic codecs beside it (at 128 px
        # their headers alone put them over it: the table marks them so)
        means = stats["means"]
        assert {"pixseq", "jpeg", "webp"} <= set(means) and means["pixseq"]["bpp"] <= 0.25
        assert "over budget" in html


def test_a_failing_section_becomes_a_note_and_the_demo_goes_on(tmp_path, monkeypatch):
    from pixseq import demo
    from pixseq.errors import PixseqError

    def broken(page, out, device, quick):
        raise PixseqError("zoo model x comes from the PyPI package y, which is not installed")

    after = []
    monkeypatch.setattr(demo, "SECTION_PROVIDERS", ())
    monkeypatch.setattr(demo, "SECTIONS", [broken, lambda page, out, device, quick: after.append(1)])
    path = demo.run_demo(tmp_path / "d", __import__("torch").device("cpu"), quick=True,
                         settings=demo.dataclasses.replace(demo.QUICK, steps=2, train_limit=64, probe_limit=40,
                                                           held_out=16))
    html = path.read_text()
    assert "This part could not run here" in html and "which is not installed" in html
    assert after == [1]
