"""ESRGAN training: degradations, the discriminators' BasicSR layout, the objective against a
float64 formula, ``pixseq train esrgan`` end to end with exact resume, and its bad inputs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pixseq.cli import main
from pixseq.errors import PixseqError
from pixseq.upscale.degrade import bicubic_down, gaussian_kernel, second_order, sinc_kernel

TINY = ["--feat", "8", "--blocks", "1", "--grow", "4", "--patch", "32", "--disc-feat", "4", "--batch-size", "2",
        "--perceptual", "none", "--log-every", "0", "--ckpt-every", "0", "--warmup-steps", "0", "--limit", "3"]


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err
    assert err.startswith("pixseq: error:") and err.count("\n") == 1, err
    for w in words:
        assert w in err, err


def test_degradations_are_deterministic_quantized_and_the_right_size():
    torch.manual_seed(0)
    hr = torch.rand(3, 64, 48)
    lr = bicubic_down(hr, 4)
    assert lr.shape == (3, 16, 12) and torch.equal(lr, (lr * 255).round() / 255)
    a, b = (second_order(hr, 4, np.random.default_rng(7)) for _ in range(2))
    assert a.shape == (3, 16, 12) and torch.equal(a, b) and torch.equal(a, (a * 255).round() / 255)
    assert not torch.equal(a, second_order(hr, 4, np.random.default_rng(8)))


def test_blur_kernels_against_their_formulas():
    k = gaussian_kernel(7, 1.5, 1.5, 0.3)  # isotropic: the angle does not matter
    r = np.arange(7) - 3.0
    ref = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5 ** 2))
    np.testing.assert_allclose(k, ref / ref.sum(), rtol=1e-12)
    aniso = gaussian_kernel(9, 2.0, 0.5, np.pi / 2)  # long axis turned to vertical
    assert aniso[:, 4].sum() > aniso[4, :].sum() * 3
    s = sinc_kernel(21, np.pi / 3)
    assert abs(s.sum() - 1) < 1e-12 and np.allclose(s, s.T) and s[10, 10] == s.max()
    # a low-pass: it passes a constant and damps the highest frequency (a checkerboard)
    board = (-1.0) ** np.add.outer(np.arange(21), np.arange(21))
    assert abs((s * board).sum()) < 0.05


def test_discriminators_have_basicsr_layouts():
    from pixseq.gans.sr_discriminators import SRDiscConfig, UNetDiscriminatorSN, VGGStyleDiscriminator

    vgg = VGGStyleDiscriminator(SRDiscConfig("vgg", 3, 64, 128))
    keys = set(vgg.state_dict())
    # BasicSR's VGGStyleDiscriminator(3, 64) for 128 px: conv0_0 has a bias and no BatchNorm
    assert {"conv0_0.weight", "conv0_0.bias", "conv0_1.weight", "bn0_1.running_mean", "conv4_1.weight",
            "bn4_1.weight", "linear1.weight", "linear2.bias"} <= keys and "bn0_0.weight" not in keys
    assert vgg.linear1.in_features == 512 * 4 * 4 and vgg(torch.rand(2, 3, 128, 128)).shape == (2,)
    unet = UNetDiscriminatorSN(SRDiscConfig("unet", 3, 8))
    keys = set(unet.state_dict())
    assert {"conv0.weight", "conv1.weight_orig", "conv1.weight_u", "conv8.weight_v", "conv9.bias"} <= keys
    assert unet(torch.rand(1, 3, 32, 40)).shape == (1, 1, 32, 40)
    with pytest.raises(PixseqError, match="multiples of 8"):
        unet(torch.rand(1, 3, 30, 32))


def test_generator_objective_against_a_float64_formula():
    """ESRGAN's L_G = perceptual + lambda L_G^Ra + eta L1, the relativistic average term
    written out in float64 from Wang et al.'s definition."""
    from pixseq.gans.sr_discriminators import SRDiscConfig, UNetDiscriminatorSN
    from pixseq.upscale.rrdb import RRDBNet, RRDBNetConfig
    from pixseq.upscale.train import ESRGANTask

    torch.manual_seed(0)
    g = RRDBNet(RRDBNetConfig(num_feat=8, num_block=1, num_grow_ch=4))
    unet = UNetDiscriminatorSN(SRDiscConfig("unet", 3, 4)).eval()  # eval: spectral norm's u stays put

    class Small(torch.nn.Module):  # logits of a few units, where the textbook formula is exact enough
        def forward(self, x):
            return unet(x) / (1 + unet(x).abs().max().detach())

    d = Small()

    class Dist(torch.nn.Module):
        def forward(self, a, b):
            return (a - b).pow(2).mean()

    task = ESRGANTask(g, d, Dist(), "ragan", pretrain_steps=0, pixel_weight=0.01, perceptual_weight=1.0,
                      gan_weight=0.005)
    batch = {"lr": torch.rand(2, 3, 8, 8), "hr": torch.rand(2, 3, 32, 32)}
    loss, logs = task.training_step(batch, 5, "gen")
    with torch.no_grad():
        sr = g(batch["lr"]).double()
        hr = batch["hr"].double()
        cf, cr = d(sr.float()).double(), d(batch["hr"]).double()
        sig = torch.sigmoid
        ra = -torch.log(1 - sig(cr - cf.mean())).mean() - torch.log(sig(cf - cr.mean())).mean()
        ref = ((sr * 2 - 1) - (hr * 2 - 1)).pow(2).mean() + 0.005 * ra + 0.01 * (sr - hr).abs().mean()
    # float32 network outputs fed to a float64 formula: the terms agree to ~1e-7 relative
    assert abs(float(loss) - float(ref)) < 1e-5 * max(1.0, abs(float(ref)))
    assert set(logs) == {"l1", "perceptual", "g_adv"}
    pre, pre_logs = ESRGANTask(g, d, Dist(), pretrain_steps=10).training_step(batch, 3, "gen")
    assert set(pre_logs) == {"l1"}  # the PSNR stage: L1 alone


def test_train_esrgan_end_to_end_and_resumes_exactly(tmp_path, capsys, stop_training_after):
    from pixseq.checkpoint import load_model
    from safetensors.torch import load_file

    straight, split = tmp_path / "a", tmp_path / "b"
    args = ["train", "esrgan", "--data", "photos", *TINY, "--pretrain-steps", "2", "--degradation", "realesrgan",
            "--patch", "16", "--disc", "unet"]
    assert main([*args, "--out", str(straight), "--steps", "4"]) == 0
    assert "2 L1 steps then 2 GAN steps" in capsys.readouterr().out
    assert (straight / "psnr" / "config.json").is_file()  # the PSNR model, after L1 pre-training
    history = [json.loads(line) for line in (straight / "train" / "history.jsonl").read_text().splitlines()]
    assert "disc/d_loss" not in history[1] and "disc/d_loss" in history[2] and "gen/g_adv" in history[3]
    stop_training_after(3)  # Ctrl-C after the first GAN step: a checkpoint, exit 2
    assert main([*args, "--out", str(split), "--steps", "4"]) == 2
    stop_training_after(None)
    assert main([*args, "--out", str(split), "--steps", "4", "--resume"]) == 0
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(split / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model = load_model(straight, "rrdbnet")
    assert model.scale == 4 and model.pretrained_meta["degradation"] == "realesrgan"
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()[:24, :20]).save(tmp_path / "in.png")
    assert main(["upscale", str(tmp_path / "in.png"), "--model", str(straight), "--out", str(tmp_path / "up")]) == 0
    assert Image.open(tmp_path / "up" / "in.png").size == (80, 96)


def test_train_esrgan_bad_inputs(tmp_path, capsys):
    from pixseq.checkpoint import save_pretrained
    from pixseq.upscale.rrdb import SRVGGConfig, SRVGGNetCompact

    out = tmp_path / "run"
    base = ["train", "esrgan", "--data", "photos", *TINY, "--steps", "2", "--out", str(out)]
    assert main([*base, "--patch", "30"]) == 2
    _one_line_error(capsys, "--patch 30 must be a multiple of 4")
    assert main([*base, "--patch", "1024"]) == 2
    _one_line_error(capsys, "larger than some images")
    save_pretrained(SRVGGNetCompact(SRVGGConfig(num_feat=4, num_conv=1)), tmp_path / "vgg")
    assert main([*base, "--init", str(tmp_path / "vgg")]) == 2
    _one_line_error(capsys, "needs an rrdbnet model", "srvgg")
    assert main([*base, "--disc", "vgg", "--patch", "48"]) == 2
    _one_line_error(capsys, "power of two")
    assert not out.exists()
