"""`pixseq compress` / `pixseq decompress` in-process: round trip, --force, atomic outputs, one-line errors."""
from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from pixseq.checkpoint import save_pretrained
from pixseq.cli import main
from pixseq.codec import reconstruct
from pixseq.errors import PixseqError
from pixseq.io import load_image, save_image

sys.path.insert(0, str(Path(__file__).parent))
from _codec_models import sample_image, tiny_igpt  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_codec")
    model = tiny_igpt()
    save_pretrained(model, root / "model")
    save_pretrained(tiny_igpt(seed=1), root / "other")
    img = sample_image(12, 10)
    save_image(img, root / "in.png")
    assert main(["compress", str(root / "in.png"), "--model", str(root / "model"),
                 "--out", str(root / "a.pxs"), "--batch", "2"]) == 0
    return root, model, img


def _one_line_error(capsys, code: int, *words: str) -> None:
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("pixseq: error:") and "\n" not in err and "Traceback" not in err
    for w in words:
        assert w in err, err


def test_round_trip_using_the_model_path_recorded_in_the_file(setup, capsys):
    root, model, img = setup
    capsys.readouterr()
    assert main(["decompress", str(root / "a.pxs"), "--out", str(root / "a.png")]) == 0
    assert "recorded in the file" in capsys.readouterr().err
    np.testing.assert_array_equal(load_image(root / "a.png"), reconstruct(img, model, batch=2))


def test_compress_prints_rate_and_never_overwrites_without_force(setup, capsys):
    root, _, _ = setup
    out = root / "b.pxs"
    args = ["compress", str(root / "in.png"), "--model", str(root / "model"), "--out", str(out), "--no-path"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "bpp" in printed and "tokens" in printed and "overhead" in printed
    before = out.read_bytes()
    assert f"= {len(before) * 8 / 120:.4f} bpp" in printed  # 12x10 image, header included
    _one_line_error(capsys, main(args), "already exists", "--force")
    assert out.read_bytes() == before
    assert main(args + ["--force"]) == 0
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]  # atomic: no temp files left
    # --no-path: decoding needs --model
    _one_line_error(capsys, main(["decompress", str(out), "--out", str(root / "b.png")]), "--model")
    assert main(["decompress", str(out), "--out", str(root / "b.png"), "--model", str(root / "model")]) == 0


@pytest.mark.parametrize("damage, words", [
    (lambda d: d[: len(d) // 2], ("truncated",)),
    (lambda d: d[:4] + bytes([9]) + d[5:], ("newer", "upgrade")),
    (lambda d: d[:-5] + bytes([d[-5] ^ 0xFF]) + d[-4:], ("corrupt",)),
    (lambda d: b"", ("magic",)),
])
def test_damaged_files_are_one_line_errors(setup, capsys, damage, words):
    root, _, _ = setup
    bad = root / "bad.pxs"
    bad.write_bytes(damage((root / "a.pxs").read_bytes()))
    out = root / "bad.png"
    _one_line_error(capsys, main(["decompress", str(bad), "--out", str(out), "--force"]), *words)
    assert not out.exists()


def test_wrong_missing_or_moved_model(setup, capsys, tmp_path):
    root, _, _ = setup
    data = str(root / "a.pxs")
    _one_line_error(capsys, main(["decompress", data, "--out", str(tmp_path / "x.png"), "--model",
                                  str(root / "other")]), "wrong model")
    _one_line_error(capsys, main(["decompress", str(tmp_path / "nope.pxs"), "--out", str(tmp_path / "x.png")]),
                    "not found")
    _one_line_error(capsys, main(["decompress", data, "--out", str(tmp_path / "x.png"), "--model",
                                  str(tmp_path)]), "not a pixseq model")
    _one_line_error(capsys, main(["decompress", data, "--out", str(tmp_path / "x.xyz")]), "unknown image format")
    # the recorded directory moved away: clear error, and --model still works
    moved = tmp_path / "moved"
    shutil.copytree(root / "model", moved)
    shutil.rmtree(root / "model")
    try:
        _one_line_error(capsys, main(["decompress", data, "--out", str(tmp_path / "x.png")]), "missing")
        assert main(["decompress", data, "--out", str(tmp_path / "x.png"), "--model", str(moved)]) == 0
    finally:
        shutil.copytree(moved, root / "model")


def test_compress_bad_inputs(setup, capsys, tmp_path):
    root, _, _ = setup
    (tmp_path / "not.png").write_text("hello")
    _one_line_error(capsys, main(["compress", str(tmp_path / "not.png"), "--model", str(root / "model"),
                                  "--out", str(tmp_path / "o.pxs")]), "not an image")
    _one_line_error(capsys, main(["compress", str(root / "in.png"), "--model", str(tmp_path / "none"),
                                  "--out", str(tmp_path / "o.pxs")]), "not found")
    _one_line_error(capsys, main(["compress", str(root / "in.png"), "--model", str(root / "model"),
                                  "--out", str(tmp_path / "o.pxs"), "--label", "1"]), "unconditional")
    assert not (tmp_path / "o.pxs").exists()
    # an image name for the .pxs bytes (verbs mixed up): it would pass for an image in a folder of images
    _one_line_error(capsys, main(["compress", str(root / "in.png"), "--model", str(root / "model"),
                                  "--out", str(tmp_path / "o.PNG")]), "o.pxs", "not an image")
    assert not (tmp_path / "o.PNG").exists()


def test_bench_codecs_writes_json_plots_and_page(setup, capsys, tmp_path):
    import json

    from pixseq.codec.compare import classic_codecs

    root, _, _ = setup
    imgs = tmp_path / "imgs"
    save_image(sample_image(40, 36, seed=2), imgs / "a.png")
    out = tmp_path / "bench"
    code = main(["bench", "codecs", "--images", str(imgs), "--out", str(out), "--model", str(root / "model"),
                 "--qualities", "20,80", "--scales", "2", "--no-label-overlap", "--budget", "4"])
    printed = capsys.readouterr().out
    assert code == 0 and "| codec" in printed
    doc = json.loads((out / "results.json").read_text())
    rows = doc["results"]
    assert {r["codec"] for r in rows} == {*classic_codecs(), "pixseq:model"}
    assert len(rows) == 2 * len(classic_codecs()) + 1
    for r in rows:  # bpp is the real file size over the real pixel count
        assert r["bpp"] == pytest.approx(r["bytes"] * 8 / (40 * 36))
        assert 5 < r["metrics"]["psnr"] < 99 and 0 < r["metrics"]["ssim"] <= 1
    # higher quality costs more bytes, for each classic codec and image
    for c in classic_codecs():
        q = {r["setting"]: r["bytes"] for r in rows if r["codec"] == c}
        assert q["q80"] > q["q20"]
    assert (out / "rd_psnr.png").is_file() and "Side by side" in (out / "index.html").read_text()
    _one_line_error(capsys, main(["bench", "codecs", "--images", str(imgs), "--out", str(out), "--names", "zzz"]),
                    "already exists", "index.html", "--force")  # an earlier report: kept unless --force
    _one_line_error(capsys, main(["bench", "codecs", "--images", str(imgs), "--out", str(out), "--names", "zzz",
                                  "--force"]), "no image named")


@pytest.mark.parametrize("extra, words", [
    (["--qualities", "101"], ("--qualities", "0..100")),  # WebP/AVIF: a ValueError traceback after JPEG ran
    (["--qualities", "-1"], ("--qualities",)),  # JPEG took -1 as its default quality, labelled q-1
    (["--scales", "0"], ("--scales", "1..255")),
    (["--batch", "0"], ("--batch",)),
    (["--limit", "-1"], ("--limit",)),  # silently dropped the last image
    (["--max-side", "-5"], ("--max-side",)),  # shrank every image to 1x1
    (["--budget", "0"], ("--budget",)),
    (["--out", "FILE"], ("is not a folder",)),  # failed only when the report was written
    (["--weights-dir", "FILE"], ("--weights-dir", "not a folder")),
])
def test_bench_codecs_bad_options_fail_before_any_coding(setup, capsys, tmp_path, extra, words):
    root, _, _ = setup
    (tmp_path / "file").write_text("x")
    extra = [str(tmp_path / "file") if e == "FILE" else e for e in extra]
    out = tmp_path / "bench"
    # small settings first (the option under test comes last and wins), so a regression stays fast
    argv = ["bench", "codecs", "--images", "photos", "--limit", "1", "--max-side", "16", "--qualities", "50",
            "--scales", "8", "--out", str(out), "--model", str(root / "model"), "--no-label-overlap", *extra]
    code = main(argv)
    printed = capsys.readouterr()
    assert "bpp" not in printed.out  # no codec was run
    err = printed.err.strip()
    assert code == 2 and err.startswith("pixseq: error:") and "\n" not in err, err
    assert all(w in err for w in words), err
    assert not out.exists() and (tmp_path / "file").read_text() == "x"


def test_bench_codecs_keeps_models_with_the_same_folder_name_apart(setup, capsys, tmp_path):
    import json

    root, _, _ = setup
    for sub, seed in (("a", 0), ("b", 1)):  # runs/a/model, runs/b/model: were both "pixseq:model", merged
        save_pretrained(tiny_igpt(seed=seed), tmp_path / sub / "model")
    save_image(sample_image(16, 16, seed=3), tmp_path / "imgs" / "x.png")
    base = ["bench", "codecs", "--images", str(tmp_path / "imgs"), "--qualities", "50", "--scales", "2",
            "--no-label-overlap", "--model", str(tmp_path / "a" / "model")]
    assert main([*base, "--model", str(tmp_path / "b" / "model"), "--out", str(tmp_path / "out")]) == 0
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    ours = {r["codec"]: r["bytes"] for r in rows if r["codec"].startswith("pixseq:")}
    assert sorted(ours) == ["pixseq:a/model", "pixseq:b/model"]
    printed = capsys.readouterr().out  # a row each (here: their nearest setting, over the 0.25 bpp budget)
    assert "| pixseq:a/model: none within 0.25 bpp; nearest setting scale2 |" in printed
    assert "| pixseq:b/model: none within" in printed
    _one_line_error(capsys, main([*base, "--model", str(tmp_path / "a" / "model" / "."), "--out",
                                  str(tmp_path / "out2")]), "given twice")
    assert not (tmp_path / "out2").exists()


def test_bench_codecs_passes_weights_dir_and_offline_to_the_classifier(monkeypatch, tmp_path):
    """The label-overlap classifier is looked for where --weights-dir says, and --offline
    forbids its download (bench tried the ViT download on every run, with no way to stop it)."""
    from pixseq.codec import compare
    from pixseq.metrics import backbones

    seen = []

    def fake_default(weights_dir=None, offline=None):
        seen.append((weights_dir, offline))
        raise PixseqError("no weights here")

    monkeypatch.setattr(backbones, "default_classifier", fake_default)
    save_image(sample_image(16, 16, seed=3), tmp_path / "imgs" / "x.png")
    argv = ["bench", "codecs", "--images", str(tmp_path / "imgs"), "--qualities", "50", "--out", str(tmp_path / "o")]
    assert main([*argv, "--weights-dir", str(tmp_path / "w"), "--offline"]) == 0
    assert seen == [(tmp_path / "w", True)]
    page = (tmp_path / "o" / "index.html").read_text()
    assert "label-overlap score unavailable: no weights here" in page  # the note is kept with the results
    seen.clear()
    assert compare.Measurer(log=lambda _: None).classifier is None and seen == [(None, None)]


def test_bench_results_json_is_strict(tmp_path):
    import json

    from pixseq.codec.compare import Result, save_json

    # a model certain of every token has zero cross-entropy, so its coder overhead is nan
    r = Result("im", "pixseq:m", "scale1", 80, 6.4, 0.1, 0.1, {"psnr": 31.5}, {"overhead": float("nan")})
    save_json([r], tmp_path / "results.json", {"budget": float("inf")})

    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    doc = json.loads((tmp_path / "results.json").read_text(), parse_constant=no_constants)
    assert doc["results"][0]["extra"]["overhead"] == "nan" and doc["results"][0]["metrics"]["psnr"] == 31.5
    assert doc["meta"]["budget"] == "inf"


def test_recorded_model_directory_retrained_in_place(setup, capsys, tmp_path, monkeypatch):
    root, _, _ = setup
    save_pretrained(tiny_igpt(), tmp_path / "run")
    pxs, out = tmp_path / "a.pxs", tmp_path / "a.png"
    assert main(["compress", str(root / "in.png"), "--model", str(tmp_path / "run"), "--out", str(pxs)]) == 0
    save_pretrained(tiny_igpt(seed=1), tmp_path / "run")  # e.g. `pixseq train ... --force` into the same --out
    # was "the given model (...) is ...", though no model was given: the recorded one changed
    _one_line_error(capsys, main(["decompress", str(pxs), "--out", str(out)]), "retrained or replaced",
                    str(tmp_path / "run"))
    assert not out.exists()
    # the same folder named another way (the file records it resolved): the same message
    monkeypatch.chdir(tmp_path)
    _one_line_error(capsys, main(["decompress", str(pxs), "--model", "run", "--out", str(out)]),
                    "retrained or replaced")


def test_rd_figure_log_axis_labels_are_plain_numbers():
    """Spanning less than a decade, every minor tick was labelled like '3x10^-1' and the
    labels ran into each other; they are plain numbers, on 2s and 5s only."""
    import matplotlib.pyplot as plt

    from pixseq.codec.compare import Result, rd_figure

    rows = [Result("a", "jpeg", f"q{q}", 100, bpp, 0.0, 0.0, {"psnr": 20 + q / 10})
            for q, bpp in ((10, 0.25), (50, 0.6), (90, 0.9))]
    fig = rd_figure(rows, "psnr")
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.xaxis.get_minorticklabels() + ax.xaxis.get_majorticklabels()]
    shown = [t for t in labels if t]
    assert shown and all("10^" not in t and "times" not in t for t in shown), shown
    assert set(shown) <= {"0.1", "0.2", "0.5", "1", "2"} and "0.5" in shown, shown
    plt.close(fig)


def test_the_budget_summary_names_the_nearest_setting_when_none_is_within():
    """No setting of JPEG within 0.25 bpp: its row was all nan; it is now its nearest setting
    (lowest mean bpp), marked as such; metrics not measured read n/a."""
    from pixseq.codec.compare import Result, best_under, markdown_table

    def r(image, codec, setting, bpp, psnr):
        return Result(image, codec, setting, int(bpp * 100), bpp, 0.0, 0.0, {"psnr": psnr, "ssim": 0.5})

    results = [r("a", "jpeg", "q5", 0.5, 25.0), r("b", "jpeg", "q5", 0.7, 27.0),
               r("a", "jpeg", "q20", 1.0, 30.0), r("b", "jpeg", "q20", 1.2, 31.0),
               r("a", "webp", "q5", 0.2, 24.0), r("b", "webp", "q5", 0.3, 26.0)]
    table = best_under(results, 0.25)
    assert table["webp"] == pytest.approx({"images": 1, "of": 2, "bpp": 0.2, "psnr": 24.0, "ssim": 0.5,
                                           "ms_ssim": math.nan, "label_overlap": math.nan, "brisque": math.nan},
                                          nan_ok=True)
    assert table["jpeg"]["images"] == 0 and table["jpeg"]["nearest"] == "q5"
    assert table["jpeg"]["bpp"] == pytest.approx(0.6) and table["jpeg"]["psnr"] == pytest.approx(26.0)
    text = markdown_table(table, 0.25)
    assert "| jpeg: none within 0.25 bpp; nearest setting q5 | 0/2 | 0.600 | 26.000 | 0.500 | n/a | n/a | n/a |" in text
    assert "| webp | 1/2 | 0.200 | 24.000 |" in text and "nan" not in text


def _confident(model, token: int | None, scale: float = 50.0):
    """``model`` made confident: on ``token`` at every position (the final norm outputs a
    constant, the head reads it for that token only), or, ``token=None``, on whatever its
    random head says, 50 times over (a deliberately bad model: sure and wrong)."""
    import torch

    prior = model.prior
    with torch.no_grad():
        if token is None:
            prior.lm_head.weight.mul_(scale)
        else:
            prior.ln_f.weight.zero_()
            prior.ln_f.bias.fill_(1.0)
            prior.lm_head.weight.zero_()
            prior.lm_head.weight[token] = scale / prior.lm_head.weight.shape[1]
    return model


def test_a_model_coding_worse_than_uniform_says_so_once(tmp_path, capsys):
    """Cross-entropy above log2(vocabulary): the file is bigger than a uniform code of the
    tokens would be; compressing says so (once), with the two numbers."""
    import math

    from pixseq.io import to_tensor

    flat = np.full((8, 8, 3), 128, np.uint8)
    save_image(flat, tmp_path / "flat.png")
    token = int(tiny_igpt().tokenizer.encode(to_tensor(flat)[None]).flatten()[0])  # the colour's palette entry
    save_pretrained(_confident(tiny_igpt(), None), tmp_path / "bad")
    save_pretrained(_confident(tiny_igpt(), token), tmp_path / "good")
    assert main(["compress", str(tmp_path / "flat.png"), "--model", str(tmp_path / "bad"),
                 "--out", str(tmp_path / "bad.pxs")]) == 0
    out, err = capsys.readouterr()
    bits = float(out.split("model cross-entropy ")[1].split()[0])
    assert bits > math.log2(16)  # the premise: this model is worse than uniform
    assert err.count("worse than no model") == 1 and f"{math.log2(16):.3f} bits of a uniform code" in err
    assert main(["compress", str(tmp_path / "flat.png"), "--model", str(tmp_path / "good"),
                 "--out", str(tmp_path / "good.pxs")]) == 0
    out, err = capsys.readouterr()
    assert float(out.split("model cross-entropy ")[1].split()[0]) < 0.1 and "worse than" not in err


def test_worse_than_uniform_is_the_cross_entropy_against_log2_of_the_vocabulary():
    from pixseq.codec.codec import CodecStats

    def stats(bits_per_token: float, vocab: int) -> CodecStats:
        return CodecStats(8, 8, 100, 20, 64, 64 * bits_per_token, 1.0, vocab)

    assert stats(9.01, 512).worse_than_uniform() is not None  # log2(512) = 9
    assert stats(8.99, 512).worse_than_uniform() is None
    assert stats(9.0, 512).worse_than_uniform() is None  # equal: as good as no model, not worse
    assert stats(5.0, 0).worse_than_uniform() is None  # vocabulary unknown: nothing to compare
