"""``pixseq compress --method invert`` / ``decompress`` of latent files / ``pixseq study``:
round trips and every bad input of the issue (one line, exit 2, nothing half-written)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pixseq.checkpoint import save_pretrained
from pixseq.cli import main
from pixseq.io import load_image, save_image, to_uint8

sys.path.insert(0, str(Path(__file__).parent))
from _codec_models import tiny_igpt  # noqa: E402
from _invert_models import lively_gan, target_of  # noqa: E402
from test_cli_codec import _one_line_error  # noqa: E402

FAST = ["--steps", "25", "--restarts", "2"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_invert")
    gan = lively_gan(seed=1)
    save_pretrained(gan, root / "gan")
    save_pretrained(tiny_igpt(), root / "igpt")
    for i in range(2):
        save_image(to_uint8(target_of(gan, seed=10 + i)[1][0]), root / "images" / f"g{i}.png")
    return root, gan


def test_compress_and_decompress_a_latent_file(setup, capsys, tmp_path):
    root, gan = setup
    out = tmp_path / "a.pxs"
    assert main(["compress", str(root / "images" / "g0.png"), "--method", "invert", "--model", str(root / "gan"),
                 "--bits", "6", "--out", str(out), "--log", str(tmp_path / "log.jsonl"), *FAST]) == 0
    said = capsys.readouterr().out
    assert "bpp (header" in said and "6 bits (qsgd)" in said and "PSNR" in said
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert log[0]["step"] == 0 and log[-1]["step"] == 25 and log[-1]["psnr"] >= log[0]["psnr"]
    assert main(["decompress", str(out), "--out", str(tmp_path / "a.png")]) == 0  # the recorded model
    decoded = load_image(tmp_path / "a.png")
    assert decoded.shape == (28, 28, 3)
    assert f"{out.stat().st_size} bytes" in capsys.readouterr().out


def test_an_image_of_another_size_is_resized_with_a_notice(setup, capsys, tmp_path):
    root, _ = setup
    save_image(np.full((40, 52, 3), 90, np.uint8), tmp_path / "big.png")
    assert main(["compress", str(tmp_path / "big.png"), "--method", "invert", "--model", str(root / "gan"),
                 "--out", str(tmp_path / "b.pxs"), "--no-path", *FAST]) == 0
    assert "resized to 28x28, the generator's size" in capsys.readouterr().err
    assert main(["decompress", str(tmp_path / "b.pxs"), "--model", str(root / "gan"),
                 "--out", str(tmp_path / "b.png")]) == 0
    assert load_image(tmp_path / "b.png").shape == (40, 52, 3)  # back at the input's size


@pytest.mark.parametrize("extra, words", [
    (["--model", "igpt"], ("an iGPT is not a generator", "--method tokens")),
    (["--model", "gan", "--bits", "0"], ("--bits must be an integer from 1 to 16, got 0",)),
    (["--model", "gan", "--bits", "17"], ("--bits must be an integer from 1 to 16, got 17",)),
    (["--model", "gan", "--class", "3"], ("unconditional",)),
    (["--model", "gan", "--scale", "2"], ("--scale applies to --method tokens",)),
])
def test_bad_invert_inputs_are_one_line_and_write_nothing(setup, capsys, tmp_path, extra, words):
    root, _ = setup
    extra = [str(root / e) if e in ("igpt", "gan") else e for e in extra]
    code = main(["compress", str(root / "images" / "g0.png"), "--method", "invert", "--out",
                 str(tmp_path / "o.pxs"), *extra, *FAST])
    _one_line_error(capsys, code, *words)
    assert list(tmp_path.iterdir()) == []


def test_bits_belong_to_invert_and_a_token_reader_names_latent_files(setup, capsys, tmp_path):
    root, _ = setup
    _one_line_error(capsys, main(["compress", str(root / "images" / "g0.png"), "--model", str(root / "igpt"),
                                  "--bits", "4", "--out", str(tmp_path / "o.pxs")]), "--bits applies to --method invert")
    assert main(["compress", str(root / "images" / "g1.png"), "--method", "invert", "--model", str(root / "gan"),
                 "--out", str(tmp_path / "c.pxs"), *FAST]) == 0
    _one_line_error(capsys, main(["decompress", str(tmp_path / "c.pxs"), "--model", str(root / "igpt"),
                                  "--out", str(tmp_path / "c.png")]), "an iGPT is not a generator")
    assert not (tmp_path / "c.png").exists()
    other = lively_gan(seed=7)
    save_pretrained(other, tmp_path / "other")
    _one_line_error(capsys, main(["decompress", str(tmp_path / "c.pxs"), "--model", str(tmp_path / "other"),
                                  "--out", str(tmp_path / "c.png")]), "wrong model")
