"""pix2pix / CycleGAN on the one Trainer and ``pixseq translate``: paired and unpaired data,
exact resume (random crops, flips and the image pool included), the losses the official
code computes, tiled translation against the whole image, the zoo's vintagify model, and
every bad input of the issue as one line with exit code 2 and nothing written."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pixseq.checkpoint import save_pretrained
from pixseq.cli import main
from pixseq.errors import PixseqError
from pixseq.gans.generators import GeneratorConfig
from pixseq.gans.translator import CycleGAN, TranslatorConfig, translate_image
from pixseq.io import save_image
from test_cli_igpt import _one_line_error

TINY = ["--width", "4", "--disc-width", "4", "--disc-layers", "2", "--batch-size", "2", "--log-every", "0"]


def _write(folder, names, size=(16, 16), seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        save_image(rng.integers(0, 255, (*size, 3), dtype=np.uint8), folder / f"{n}.png")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    _write(root / "A", ["a", "b", "c", "d"])
    _write(root / "B", ["a", "b", "c", "d"], seed=1)
    return root


# ---------------------------------------------------------------- data
def test_paired_folders_side_by_side_images_and_builtin_tasks(tmp_path, pairs):
    from pixseq.gans.pairs import load_pairs, make_source

    p = load_pairs(str(pairs))
    assert len(p) == 4 and p.names == ["a", "b", "c", "d"] and p.a[0].shape == (16, 16, 3)
    ab = np.concatenate([p.a[1], p.b[1]], axis=1)  # pix2pix's side-by-side layout: A | B
    save_image(ab, tmp_path / "x.png")
    q = load_pairs(str(tmp_path))
    assert np.array_equal(q.a[0], p.a[1]) and np.array_equal(q.b[0], p.b[1])
    edges = load_pairs("edges:fashion-mnist:test", limit=3)
    assert edges.builtin == "edges" and "edges -> image on fashion-mnist:test" == edges.task
    e = make_source("edges", edges.b[0])
    assert set(np.unique(e)) <= {0, 255} and (e == 0).any()  # black Canny lines on white
    lo = make_source("superres", np.asarray(edges.b[0]))
    assert lo.shape == (28, 28, 3)
    with pytest.raises(PixseqError, match="colorize needs colour images"):
        load_pairs("colorize:fashion-mnist", limit=2)


def test_class_selection_in_data_specs():
    from pixseq.data import load_data

    a = load_data("fashion-mnist:Sneaker", limit=4)
    b = load_data("fashion-mnist:test:Ankle boot", limit=4)
    assert (a.labels == 7).all() and (b.labels == 9).all() and len(a) == len(b) == 4
    assert a.spec == "fashion-mnist:train:Sneaker"
    with pytest.raises(PixseqError, match="'Shoe' is neither a split.*nor a class.*Sneaker"):
        load_data("fashion-mnist:Shoe")
    with pytest.raises(PixseqError, match="no class 'Shoe'.*Sneaker"):
        load_data("fashion-mnist:test:Shoe")


def test_the_image_pool_follows_the_official_rule():
    from pixseq.gans.translate_tasks import ImagePool

    torch.manual_seed(0)
    pool = ImagePool(2, (1, 2, 2))
    ims = [torch.full((1, 1, 2, 2), float(i)) for i in range(40)]
    assert [float(pool.query(ims[i])[0, 0, 0, 0]) for i in range(2)] == [0.0, 1.0]  # filling: passed through
    out = [float(pool.query(ims[i])[0, 0, 0, 0]) for i in range(2, 40)]
    swapped = [o != i for o, i in zip(out, range(2, 40))]
    assert 0.25 < np.mean(swapped) < 0.75  # half of the time an older image comes back
    assert all(o < i for o, i, s in zip(out, range(2, 40), swapped) if s)
    assert int(pool.count) == 2 and set(pool.state_dict()) == {"images", "count"}  # checkpointed


# ---------------------------------------------------------------- training
def _cyclegan(tmp_path, out, steps, *extra):
    return main(["train", "cyclegan", "--data", "fashion-mnist:Sneaker", "--data-b", "fashion-mnist:Ankle boot",
                 "--limit", "8", "--image-size", "12", "--jitter", "--pool-size", "3", "--steps", str(steps),
                 "--ckpt-every", "2", "--out", str(tmp_path / out), "--no-health", *TINY, *extra])


class _StopAt:
    """A Ctrl-C after step ``n`` (the Trainer saves a checkpoint and stops)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_step_end(self, trainer, step, record):
        if step == self.n:
            raise KeyboardInterrupt


def test_cyclegan_resumes_exactly_with_its_pool_and_crops(tmp_path, capsys, monkeypatch):
    import pixseq.gans.translate_train as tt

    assert _cyclegan(tmp_path, "whole", 4) == 0
    assert "CycleGAN ResNet-6" in capsys.readouterr().out
    real = tt.train_cyclegan
    monkeypatch.setattr(tt, "train_cyclegan", lambda *a, **k: real(*a, **k, callbacks=[_StopAt(2)]))
    assert "interrupted at step 2" in _one_line_error(capsys, _cyclegan(tmp_path, "split", 4))
    monkeypatch.setattr(tt, "train_cyclegan", real)
    assert _cyclegan(tmp_path, "split", 4, "--resume") == 0
    import pixseq

    a, b = pixseq.load_model(tmp_path / "whole"), pixseq.load_model(tmp_path / "split")
    assert a.kind == "cyclegan" and a.directions == ["AtoB", "BtoA"]
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), k
    state = torch.load(tmp_path / "whole" / "train" / "train_state.pt", weights_only=True)
    assert set(state["modules"]) == {"generator", "disc_a", "disc_b", "pool_a", "pool_b"}
    lrs = [json.loads(line)["lr/gen"] for line in open(tmp_path / "whole" / "train" / "history.jsonl")]
    assert lrs == pytest.approx([2e-4, 2e-4, 2e-4 * 2 / 3, 2e-4 / 3])  # constant, then the linear decay


def test_pix2pix_trains_reports_held_out_scores_and_the_l1_baseline_has_no_d(tmp_path, pairs, capsys):
    assert main(["train", "pix2pix", "--data", str(pairs), "--val-data", str(pairs), "--steps", "2",
                 "--out", str(tmp_path / "p"), *TINY]) == 0
    out = capsys.readouterr().out
    assert "pix2pix U-Net-4" in out and "PSNR" in out and "SSIM" in out
    assert main(["train", "pix2pix", "--data", str(pairs), "--no-gan", "--steps", "2", "--out", str(tmp_path / "l1"),
                 *TINY]) == 0
    assert "L1 only, no GAN" in capsys.readouterr().out
    state = torch.load(tmp_path / "l1" / "train" / "train_state.pt", weights_only=True)
    assert set(state["modules"]) == {"generator"}


def test_losses_are_the_official_ones_and_d_gets_no_gradient_in_g_s_part():
    """pix2pix on a fixed batch: D's loss is 0.5 (BCE(D(A,B), 1) + BCE(D(A,G(A)), 0)) and G's
    BCE(D(A, G(A)), 1) + 100 |B - G(A)|_1 on [-1, 1] images (the official pix2pix_model.py)."""
    import torch.nn.functional as F

    from pixseq.gans.translate_tasks import Pix2PixTask
    from pixseq.gans.translate_train import build_pix2pix

    cfg = TranslatorConfig(generator=GeneratorConfig(arch="unet", width=4, downs=3, norm="batch", dropout=False))
    model, disc = build_pix2pix(cfg, disc_width=4, disc_layers=2)
    batch = {"source": torch.rand(2, 3, 16, 16), "image": torch.rand(2, 3, 16, 16)}
    task = Pix2PixTask(model, disc, batch["source"])
    torch.manual_seed(0)
    d_loss, _ = task.training_step(batch, 0, "disc")
    g_loss, logs = task.training_step(batch, 0, "gen")
    a, b = batch["source"] * 2 - 1, batch["image"] * 2 - 1
    torch.manual_seed(0)
    fake = model.generators["AtoB"](a)
    bce = F.binary_cross_entropy_with_logits
    real_l, fake_l = disc(torch.cat([a, b], 1)), disc(torch.cat([a, fake], 1))
    ref_d = 0.5 * (bce(real_l, torch.ones_like(real_l)) + bce(fake_l, torch.zeros_like(fake_l)))
    ref_g = bce(fake_l, torch.ones_like(fake_l)) + 100 * (fake - b).abs().mean()
    assert torch.allclose(d_loss, ref_d, atol=1e-6) and torch.allclose(g_loss, ref_g, atol=1e-5)
    g_loss.backward()
    assert all(p.grad is None for p in disc.parameters())  # frozen while G's graph was built
    assert all(p.requires_grad for p in disc.parameters())  # ... and trainable again after
    assert any(p.grad is not None for p in model.parameters())


def test_the_cycle_health_check_warns_when_held_out_reconstruction_degrades():
    from pixseq.gans.translate_tasks import TranslationHealth

    mon = TranslationHealth(announce=None)
    assert mon.extra_checks(None, 100, {"eval/cycle_a": 0.05, "eval/change_a": 0.2}) == {}
    found = mon.extra_checks(None, 200, {"eval/cycle_a": 0.12, "eval/change_a": 0.001})
    assert "rose to 0.12 (best 0.05)" in found["cycle_a"] and "identity" in found["still_a"]


# ---------------------------------------------------------------- translate
def _tiny_cyclegan(directions=("AtoB",)):
    torch.manual_seed(0)
    cfg = TranslatorConfig(generator=GeneratorConfig(width=4, blocks=2, norm="instance-affine"),
                           directions=list(directions))
    model = CycleGAN(cfg).eval()
    with torch.no_grad():  # affine norms away from the identity, so statistics matter
        for m in model.modules():
            if getattr(m, "affine", False):
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.5, 0.5)
    return model


def test_tiles_blended_with_whole_image_norm_statistics_match_the_whole_image():
    from skimage import data

    model = _tiny_cyclegan()
    image = np.ascontiguousarray(data.astronaut()[::4, ::4][:96, :80])  # 96 x 80
    whole = translate_image(model, image, tile=0)
    stats: dict = {}
    tiled = translate_image(model, image, tile=72, overlap=32, stats=stats)
    assert stats["tiles"] > 1 and stats["norm_stats"] == "whole image"
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 2  # the bound, in grey levels


def test_translate_cli_and_its_bad_inputs(tmp_path, capsys):
    img = tmp_path / "in.png"
    save_image(np.full((20, 24, 3), 100, np.uint8), img)
    save_pretrained(_tiny_cyclegan(), tmp_path / "m")
    assert main(["translate", str(img), "--model", str(tmp_path / "m"), "--out", str(tmp_path / "o")]) == 0
    assert "wrote" in capsys.readouterr().out and (tmp_path / "o" / "in.png").is_file()
    # a direction the model lacks
    code = main(["translate", str(img), "--model", str(tmp_path / "m"), "--direction", "BtoA", "--out", str(tmp_path / "x")])
    assert "no BtoA generator" in _one_line_error(capsys, code) and not (tmp_path / "x").exists()
    # an image past the pixel limit
    code = main(["translate", str(img), "--model", str(tmp_path / "m"), "--max-pixels", "100", "--out", str(tmp_path / "x")])
    assert "image too large" in _one_line_error(capsys, code) and not (tmp_path / "x").exists()
    # an unreadable file after a good one: refused before the good one is written
    (tmp_path / "bad.png").write_text("not a png")
    code = main(["translate", str(img), str(tmp_path / "bad.png"), "--model", str(tmp_path / "m"), "--out",
                 str(tmp_path / "x")])
    assert "not an image file" in _one_line_error(capsys, code) and not (tmp_path / "x").exists()
    # a model of another kind
    from pixseq.tokenizers.vqgan import VQGAN, vqgan_config

    save_pretrained(VQGAN(vqgan_config(4, 8, 4, 8)), tmp_path / "vq")
    code = main(["translate", str(img), "--model", str(tmp_path / "vq"), "--out", str(tmp_path / "x")])
    assert "kind 'vqgan', expected pix2pix or cyclegan" in _one_line_error(capsys, code)


def test_bad_pair_folders_and_checkpoints(tmp_path, capsys):
    _write(tmp_path / "d" / "A", ["a", "b", "x"])
    _write(tmp_path / "d" / "B", ["a", "b", "y"])
    out = tmp_path / "run"
    code = main(["train", "pix2pix", "--data", str(tmp_path / "d"), "--out", str(out), *TINY])
    assert "names do not match (1 in A/ only: x; 1 in B/ only: y)" in _one_line_error(capsys, code)
    assert not out.exists() or not any(out.rglob("*.*"))
    _write(tmp_path / "e" / "A", ["a", "b"])
    _write(tmp_path / "e" / "B", ["a"])
    _write(tmp_path / "e" / "B", ["b"], size=(16, 20))
    code = main(["train", "pix2pix", "--data", str(tmp_path / "e"), "--out", str(out), *TINY])
    assert "pair 'b' has different sizes" in _one_line_error(capsys, code)
    from pixseq.nn.conv import PatchDiscriminator

    torch.save(PatchDiscriminator(6, 4, 2).state_dict(), tmp_path / "latest_net_D_A.pth")
    code = main(["convert", "cyclegan", str(tmp_path / "latest_net_D_A.pth"), str(tmp_path / "conv")])
    assert "not a pytorch-CycleGAN-and-pix2pix ResNet or U-Net generator" in _one_line_error(capsys, code)
    assert not (tmp_path / "conv").exists()


def test_the_vintagify_zoo_model_is_built_once_and_verified(tmp_path, monkeypatch):
    pytest.importorskip("vintagify")
    import pixseq
    from pixseq import zoo

    monkeypatch.setenv("PIXSEQ_ZOO_CACHE", str(tmp_path / "cache"))
    zoo._VERIFIED.clear()
    model = pixseq.load_model("zoo:cyclegan-vintage")  # converted from the PyPI package, checksum verified
    assert model.kind == "cyclegan" and model.directions == ["AtoB"]
    assert (tmp_path / "cache" / "cyclegan-vintage" / "model.safetensors").is_file()
