"""``pixseq study``: the whole report from a tiny generator, its numbers against independent
computations, the set metrics, and every bad input (one line, exit 2, nothing half-written)."""
from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixseq.checkpoint import save_pretrained
from pixseq.cli import main
from pixseq.io import load_image, save_image, to_uint8

sys.path.insert(0, str(Path(__file__).parent))
from _codec_models import tiny_igpt
from _invert_models import lively_gan, target_of
from test_cli_codec import _one_line_error

LATENT = 8  # lively_gan's latent_dim


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from pixseq.classifiers.vit_train import build_vit

    root = tmp_path_factory.mktemp("study")
    gan = lively_gan(latent_dim=LATENT, seed=1)
    save_pretrained(gan, root / "gan")
    save_pretrained(tiny_igpt(), root / "igpt")
    save_pretrained(build_vit(2, 28, "micro", ["bag", "shoe"]).eval(), root / "vit")
    for i in range(3):
        save_image(to_uint8(target_of(gan, seed=10 + i)[1][0]), root / "images" / f"g{i}.png")
    (root / "empty").mkdir()
    return root


def _argv(root: Path, out: Path, *extra) -> list[str]:
    return ["study", str(root / "images"), "--generator", str(root / "gan"), "--out", str(out), "--steps", "30",
            "--restarts", "2", "--qualities", "90,10", "--bits", "1,4", "--backbone", str(root / "vit"),
            "--set-min", "50", *map(str, extra)]


@pytest.fixture(scope="module")
def report(setup, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports") / "rep"
    assert main(_argv(setup, out)) == 0
    return out


def _table(report: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO((report / "table.csv").read_text())))


def test_the_report_is_whole_and_laid_out_like_table_3_3(report, setup):
    for name in ("index.html", "study.json", "table.txt", "table.csv", "results.csv", "rd_psnr.png",
                 "galleries/g0.png", "galleries/g2.png"):
        assert (report / name).is_file(), name
    rows = _table(report)
    head = list(rows[0])
    assert head[:4] == ["method", "setting", "images", "bpp"]
    assert {"label overlap", "SSIM", "MSE", "PSNR", "MS-SSIM", "LPIPS", "BRISQUE", "FID", "KID", "IS"} <= set(head)
    methods = [(r["method"], r["setting"]) for r in rows]
    assert methods[0] == ("original", "")
    assert ("GAN inversion (gan, qsgd)", "1 bit") in methods and ("JPEG", "q=10") in methods
    assert ("study's Elias code (gan; bits counted, no file)", "4 bits") in methods
    # 28 px images: MS-SSIM and the set metrics (3 < --set-min 50) are n/a, and the notes say why
    assert all(r["MS-SSIM"] == "n/a" and r["FID"] == "n/a" for r in rows)
    notes = json.loads((report / "study.json").read_text())["meta"]["notes"]
    assert any("--set-min" in n and "has 3" in n for n in notes) and any("MS-SSIM n/a" in n for n in notes)
    # the gallery: the original's row and one row per method (invert, Elias, JPEG, + WebP/AVIF if written)
    codecs = {r["codec"] for r in json.loads((report / "study.json").read_text())["results"]}
    gallery = load_image(report / "galleries" / "g0.png")
    assert gallery.shape[0] == (1 + len(codecs)) * (84 + 2) + 2  # 28 px cells zoomed 3x, 2 px padding
    assert "galleries" not in (report / "index.html").read_text() or (report / "assets").is_dir()
    umask = os.umask(0)
    os.umask(umask)
    assert report.stat().st_mode & 0o777 == 0o777 & ~umask  # as a plain mkdir, not mkdtemp's 0700


def test_the_numbers_match_independent_computations(report, setup):
    rows = {(r["method"], r["setting"]): r for r in _table(report)}
    images = [load_image(setup / "images" / f"g{i}.png") for i in range(3)]
    # JPEG q=10: file sizes from Pillow again, PSNR of the decoded image in float64
    bpp, psnr = [], []
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=10)
        bpp.append(len(buf.getvalue()) * 8 / (28 * 28))
        dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), np.float64) / 255
        psnr.append(10 * np.log10(1 / np.mean((dec - img / 255.0) ** 2)))
    row = rows[("JPEG", "q=10")]
    assert float(row["bpp"]) == pytest.approx(np.mean(bpp), abs=6e-4)  # the table's 3 decimals
    assert float(row["PSNR"]) == pytest.approx(np.mean(psnr), abs=6e-3)
    # the study's Elias code at 1 bit: every level reads back as 1, gamma(1) is 1 bit, so it counts
    # 32 (norm) + LATENT (signs) + LATENT (levels) bits for any z
    assert float(rows[("study's Elias code (gan; bits counted, no file)", "1 bit")]["bpp"]) == pytest.approx(
        (32 + 2 * LATENT) / 784, abs=6e-4)
    # the inversion rows are real files: more bits cost more bytes and buy a closer image
    one, four = rows[("GAN inversion (gan, qsgd)", "1 bit")], rows[("GAN inversion (gan, qsgd)", "4 bits")]
    assert float(four["bpp"]) > float(one["bpp"]) > 0.3  # the .pxs header alone is 37 bytes = 0.38 bpp
    assert float(four["PSNR"]) > float(one["PSNR"])
    results = json.loads((report / "study.json").read_text())["results"]
    inv = [r for r in results if r["codec"] == "invert:gan"]
    assert all(r["bytes"] * 8 / 784 == pytest.approx(r["bpp"]) for r in inv)


def test_set_metrics_over_a_large_enough_set(setup, tmp_path, monkeypatch):
    """FID/KID with a stand-in feature network (the real Inception takes minutes here): the
    table's FID equals the Fréchet distance of the same features computed with scipy."""
    from scipy import linalg

    from pixseq.metrics import fid

    class Pixels(torch.nn.Module):
        """Two features (the mean brightness of the whole image and of its top half): 3 images give
        a full-rank 2 x 2 covariance, where scipy's general sqrtm is reliable."""

        has_classifier, source = False, "pixel stand-in"

        def pool_features(self, x):
            return torch.stack([x.double().mean((1, 2, 3)), x[..., :14, :].double().mean((1, 2, 3))], 1)

    monkeypatch.setattr(fid, "load_fid_inception", lambda **kw: Pixels())
    out = tmp_path / "rep"
    assert main(_argv(setup, out, "--set-min", 2, "--no-elias")) == 0
    rows = {(r["method"], r["setting"]): r for r in _table(out)}
    assert all(r["IS"] == "n/a" for r in rows.values())
    data = json.loads((out / "study.json").read_text())
    results = [r for r in data["results"] if r["codec"] == "jpeg" and r["setting"] == "q10"]
    assert len(results) == 3

    def feats(images):
        return np.array([[im.mean() / 255, im[:14].mean() / 255] for im in images], np.float64)

    # the decoded JPEGs again (Pillow is deterministic), their features in NumPy
    refs = [load_image(setup / "images" / f"g{i}.png") for i in range(3)]
    decs = []
    for img in refs:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=10)
        decs.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    a, b = feats(refs), feats(decs)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expect = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(ca + cb - 2 * linalg.sqrtm(ca @ cb).real)
    got = next(s["fid"] for s in data["meta"]["set_metrics"] if s["codec"] == "jpeg" and s["setting"] == "q10")
    assert got == pytest.approx(expect, rel=1e-6, abs=1e-12)  # float64 both ways: round-off only


def test_an_earlier_report_is_replaced_only_with_force(report, setup, capsys):
    before = (report / "study.json").read_text()
    _one_line_error(capsys, main(_argv(setup, report)), "already exists", "--force")
    assert (report / "study.json").read_text() == before
    (report / "galleries" / "stale.png").write_bytes(b"from an older report")
    assert main(_argv(setup, report, "--force", "--bits", "2", "--no-elias", "--preset", "thesis")) == 0
    assert (report / "study.json").read_text() != before and not (report / "galleries" / "stale.png").exists()
    table = (report / "table.txt").read_text()
    assert "SSIM [thesis preset" in table and "PSNR dB [thesis preset" in table  # the study's settings, labelled
    assert [p.name for p in report.parent.iterdir()] == ["rep"]  # no temporary folder left beside it


@pytest.mark.parametrize("case, words", [
    ("empty", ("no images found in folder",)),
    ("bits0", ("--bits must be an integer from 1 to 16, got 0",)),
    ("bits17", ("--bits must be an integer from 1 to 16, got 17",)),
    ("igpt", ("an iGPT is not a generator",)),
    ("quality", ("--qualities must be in 0..100, got 101",)),
    ("setmin", ("--set-min must be at least 2",)),
    ("inside", ("inside the input folder",)),
    ("foreign", ("not a study's report",)),
])
def test_bad_inputs_are_one_line_and_write_nothing(setup, tmp_path, capsys, case, words):
    out = tmp_path / "rep"
    argv = _argv(setup, out)
    if case == "empty":
        argv[1] = str(setup / "empty")
    elif case in ("bits0", "bits17"):
        argv += ["--bits", case[4:]]
    elif case == "igpt":
        argv[argv.index("--generator") + 1] = str(setup / "igpt")
    elif case == "quality":
        argv += ["--qualities", "101"]
    elif case == "setmin":
        argv += ["--set-min", "1"]
    elif case == "inside":
        argv[argv.index("--out") + 1] = str(setup / "images" / "rep")
    elif case == "foreign":
        out.mkdir()
        (out / "mine.txt").write_text("keep me")
        argv += ["--force"]
    _one_line_error(capsys, main(argv), *words)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == (["rep"] if case == "foreign" else []), left
    assert not (setup / "images" / "rep").exists()
    if case == "foreign":
        assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_a_run_stopped_while_writing_leaves_nothing(setup, tmp_path, capsys, monkeypatch):
    from pixseq.report import study as report

    def stop(study, folder):
        (folder / "table.txt").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "write_study", stop)
    assert main(_argv(setup, tmp_path / "rep", "--bits", "1", "--no-elias")) == 2
    assert list(tmp_path.iterdir()) == []


def test_table_cells_say_inf_for_a_lossless_psnr_and_n_a_for_no_measurement():
    from pixseq.report.study import _cell

    assert [_cell(float("inf"), "psnr"), _cell(float("nan"), "psnr"), _cell(0.12345, "bpp")] == ["inf", "n/a", "0.123"]
