"""The GAN family: losses against independent formulas, networks, the model kind, training on
the one Trainer (exact resume, EMA of G only), and the health warnings provoked on purpose."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pixseq.errors import PixseqError
from pixseq.gans import losses as L
from pixseq.gans.dcgan import GANConfig, Generator, Discriminator
from pixseq.gans.health import HealthConfig, HealthMonitor, oscillates
from pixseq.gans.model import GAN
from pixseq.gans.train import GANImages, build_gan, default_gan_train_config, fit_gan


# ------------------------------------------------------------------ losses
def _bce(logits, target):  # independent reference: torch's BCE on probabilities, float64
    return F.binary_cross_entropy(torch.sigmoid(logits.double()), torch.full_like(logits.double(), target))


def test_losses_match_their_formulas():
    g = torch.Generator().manual_seed(0)
    r, f = torch.randn(64, generator=g) * 2, torch.randn(64, generator=g) * 2
    # float32 losses vs float64 formulas: values of order 1, 1e-6 is a few float32 ulps
    tol = dict(rel=0, abs=1e-5)
    assert float(L.d_loss("ns", r, f)) == pytest.approx(float(_bce(r, 1) + _bce(f, 0)), **tol)
    assert float(L.g_loss("ns", f)) == pytest.approx(float(_bce(f, 1)), **tol)
    assert float(L.g_loss("minimax", f)) == pytest.approx(float(-_bce(f, 0)), **tol)  # log(1 - D(G(z)))
    assert float(L.d_loss("lsgan", r, f)) == pytest.approx(float(0.5 * ((r.double() - 1) ** 2).mean()
                                                                 + 0.5 * (f.double() ** 2).mean()), **tol)
    assert float(L.d_loss("hinge", r, f)) == pytest.approx(float(torch.clamp(1 - r.double(), min=0).mean()
                                                                 + torch.clamp(1 + f.double(), min=0).mean()), **tol)
    assert float(L.d_loss("wgan-gp", r, f)) == pytest.approx(float(f.double().mean() - r.double().mean()), **tol)
    # relativistic average (Wang et al. 2018, eq. 1-2): BCE of C(x_r) - E[C(x_f)] etc.
    ra_r, ra_f = r.double() - f.double().mean(), f.double() - r.double().mean()
    assert float(L.d_loss("ragan", r, f)) == pytest.approx(float(_bce(ra_r, 1) + _bce(ra_f, 0)), **tol)
    assert float(L.g_loss("ragan", f, r)) == pytest.approx(float(_bce(ra_r, 0) + _bce(ra_f, 1)), **tol)
    with pytest.raises(PixseqError, match="unknown GAN loss"):
        L.check_loss("wgan")


def test_penalties_on_a_linear_critic():
    # D(x) = <w, x>: its gradient is w everywhere, so GP = 10 (|w| - 1)^2 and R1 = gamma/2 |w|^2 exactly
    w = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    critic = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731
    real, fake = torch.rand(5, 3, 4, 4, dtype=torch.float64), torch.rand(5, 3, 4, 4, dtype=torch.float64)
    assert float(L.gradient_penalty(critic, real, fake)) == pytest.approx(10 * (float(w.norm()) - 1) ** 2, rel=1e-9)
    x = real.clone().requires_grad_(True)
    assert float(L.r1_penalty(critic(x), x, gamma=4.0)) == pytest.approx(2 * float(w.norm()) ** 2, rel=1e-9)


# ------------------------------------------------------------------ networks and the model
@pytest.mark.parametrize("arch", ["dcgan", "vanilla"])
@pytest.mark.parametrize("size", [28, 32, 64])
def test_networks_shapes_and_conditioning(arch, size):
    cfg = GANConfig(arch=arch, image_size=size, channels=3, latent_dim=8, num_classes=3, width=8, disc_width=8)
    G, D = Generator(cfg), Discriminator(cfg)
    z = torch.randn(4, 8, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 0])
    x = G(z, labels)
    assert x.shape == (4, 3, size, size) and float(x.detach().abs().max()) <= 1
    assert D(x, labels).shape == (4,)
    x.sum().backward()
    assert z.grad is not None and float(z.grad.abs().sum()) > 0  # differentiable in z (inversion)
    G.eval()
    # the label channel changes the image: the same z with another class is another image
    assert not torch.allclose(G(z[:1], torch.tensor([0])), G(z[:1], torch.tensor([1])))


def test_the_lecture_vanilla_generator_layout():
    G = Generator(GANConfig(arch="vanilla", image_size=32, latent_dim=20, prior="uniform"))
    lin = G.project[0]
    assert (lin.in_features, lin.out_features) == (20, 64 * 8 * 8)  # Linear(nz -> 64*8*8) -> ReLU -> Unflatten
    assert isinstance(G.project[1], torch.nn.ReLU) and G.project[2].unflattened_size == (64, 8, 8)


@pytest.mark.parametrize("labelled", [False, True])
def test_gan_images_items(labelled):
    """Items are (3, S, S) float32 in [0, 1] (float64 reference x / 255), the label (-1 when
    unlabelled) and the index, each a 0-d long tensor."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5]) if labelled else None
    data = GANImages(images, labels)
    for i in range(5):
        item = data[i]
        expected = torch.from_numpy(images[i].transpose(2, 0, 1).astype(np.float64) / 255.0)
        assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 4, 4)
        torch.testing.assert_close(item["image"].double(), expected, rtol=0, atol=1e-7)
        assert item["label"].dtype == item["index"].dtype == torch.long
        assert item["label"].dim() == item["index"].dim() == 0
        assert int(item["label"]) == (labels[i] if labelled else -1) and int(item["index"]) == i
    assert torch.equal(data.images, torch.from_numpy(images).permute(0, 3, 1, 2))  # reading left them as they were


def test_gan_model_round_trip_and_sampling_contract(tmp_path):
    from pixseq.checkpoint import load_model, save_pretrained

    model, _ = build_gan(28, 1, latent_dim=16, num_classes=10, width=8, disc_width=8)
    save_pretrained(model, tmp_path / "g", meta={"class_names": ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]})
    loaded = load_model(tmp_path / "g", "gan")
    z = model.sample_latent(3, torch.Generator().manual_seed(1))
    model.eval()
    assert torch.equal(model(z, [0, 1, 2]), loaded(z, [0, 1, 2]))
    images = loaded.generate(4, labels="c", generator=torch.Generator().manual_seed(0))
    assert images.shape == (4, 3, 28, 28) and 0 <= float(images.min()) and float(images.max()) <= 1
    assert torch.equal(images[..., 0, :, :], images[..., 1, :, :])  # grey: one channel repeated
    with pytest.raises(PixseqError, match="no tokens"):
        loaded.generate(2, labels=0, top_k=5)
    with pytest.raises(PixseqError, match="not a class index"):
        loaded.generate(2, labels="Sneaker")
    uniform = GAN(GANConfig(arch="vanilla", latent_dim=20, prior="uniform"))
    zu = uniform.sample_latent(1000)
    assert float(zu.min()) >= -1 and float(zu.max()) <= 1 and float(zu.std()) == pytest.approx(1 / math.sqrt(3), rel=0.05)


# ------------------------------------------------------------------ training
def _data(n=256, classes=False):
    from pixseq.data import load_data

    d = load_data("fashion-mnist", limit=n)
    return np.stack(d.images), (d.labels if classes else None)


def _config(steps, **kw):
    base = dataclasses.replace(default_gan_train_config(), steps=steps, batch_size=32, ckpt_every=0, log_every=0,
                               ema_decay=0.0)
    return dataclasses.replace(base, **kw)


def test_training_resumes_exactly_and_averages_only_the_generator(tmp_path, stop_training_after):
    images, labels = _data(128, classes=True)

    def run(out, resume=False):
        model, disc = build_gan(28, 1, latent_dim=8, num_classes=10, width=8, disc_width=8)
        fit_gan(model, disc, images, labels, out, _config(6, ckpt_every=3, ema_decay=0.9), resume=resume,
                health=False)
        return model

    whole = run(tmp_path / "a")
    stop_training_after(3)
    with pytest.raises(PixseqError, match="interrupted"):
        run(tmp_path / "b")
    stop_training_after(None)
    resumed = run(tmp_path / "b", resume=True)
    for (k, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    state = torch.load(tmp_path / "b" / "train" / "train_state.pt", weights_only=True)
    assert set(state["ema"]) == {"generator"}  # EMA of G, not of D


def test_a_nan_stops_naming_the_part_that_diverged(tmp_path):
    from pixseq.train.trainer import NonFiniteError

    images, _ = _data(64)
    model, disc = build_gan(28, 1, latent_dim=8, width=8, disc_width=8)
    with torch.no_grad():
        disc.head.bias.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match=r"the discriminator \('disc': it diverged\).*no checkpoint"):
        fit_gan(model, disc, images, None, tmp_path / "nan", _config(3), health=False)
    assert not (tmp_path / "nan" / "config.json").exists()


# ------------------------------------------------------------------ health warnings
class _Task:
    def health_spec(self):
        return {"d_part": "disc", "g_part": "gen", "loss": "ns"}


class _Trainer:
    class dist:
        is_main = True

    def __init__(self):
        self.task, self.params = _Task(), {"gen": [torch.zeros(100)]}


def _stream(monitor, records):
    trainer = _Trainer()
    for i, r in enumerate(records):
        monitor.on_record(trainer, i + 1, r)
    return [kind for _, kind, _ in monitor.warnings]


def test_monitor_on_synthetic_curves():
    g = np.random.default_rng(0)
    healthy = [{"disc/d_loss": 1.2 + 0.1 * g.standard_normal(), "disc/p_fake": 0.35, "grad_norm/gen": 5.0}
               for _ in range(300)]
    assert _stream(HealthMonitor(HealthConfig(every=0), announce=None), healthy) == []
    winning = healthy[:100] + [{**r, "disc/d_loss": 0.01, "disc/p_fake": 0.005} for r in healthy[:100]]
    assert _stream(HealthMonitor(HealthConfig(every=0), announce=None), winning) == ["d_winning"]
    swing = [{**r, "disc/d_loss": 1.2 + 0.6 * math.sin(2 * math.pi * i / 20)} for i, r in enumerate(healthy)]
    assert "oscillation" in _stream(HealthMonitor(HealthConfig(every=0), announce=None), swing)
    vanish = healthy[:100] + [{**r, "grad_norm/gen": 1e-9} for r in healthy[:100]]
    assert _stream(HealthMonitor(HealthConfig(every=0), announce=None), vanish) == ["vanishing"]
    assert not oscillates([1.2 + 0.1 * g.standard_normal() for _ in range(100)], 0.2)


def _provoke(tmp_path, name, steps=80, d_lr_ratio=1.0, prepare=None, loss="ns", lr=2e-4):
    images, labels = _data(512, classes=True)  # labels: the monitor's class probe (the GAN is unconditional)
    model, disc = build_gan(28, 1, latent_dim=16, width=32, disc_width=8, seed=0)
    if prepare is not None:
        prepare(model)
    cfg = HealthConfig(window=30, every=40, samples=32)
    history = fit_gan(model, disc, images, labels, tmp_path / name, _config(steps, lr=lr, log_every=20),
                      loss=loss, d_lr_ratio=d_lr_ratio, health=cfg)[1]
    warnings = [r["health"] for r in history if "health" in r]
    return warnings, history


@pytest.mark.slow
def test_health_warnings_provoked_and_a_healthy_run_gives_none(tmp_path):
    import json

    healthy, _ = _provoke(tmp_path, "healthy")
    assert healthy == []
    strong_d, _ = _provoke(tmp_path, "strong-d", d_lr_ratio=10.0)  # D with 10x the learning rate
    assert any("D is winning" in w for w in strong_d), strong_d
    assert all(w.startswith("step ") for w in strong_d)

    def ignore_z(model):  # G's output ignores z: the projection's weights are zero, only its BN bias moves it
        with torch.no_grad():
            model.generator.project[0].weight.zero_()
        model.generator.project[0].weight.requires_grad_(False)

    collapsed, _ = _provoke(tmp_path, "collapse", prepare=ignore_z)
    assert any("mode collapse" in w for w in collapsed), collapsed

    def saturate(model):  # the output tanh saturates (tanh(30) is 1 in float32): G's gradients vanish
        with torch.no_grad():
            model.generator.body[-2].bias.fill_(30.0)

    vanishing, history = _provoke(tmp_path, "vanish", prepare=saturate)
    assert any("gradients vanish" in w for w in vanishing), vanishing
    logged = [json.loads(line) for line in (tmp_path / "vanish" / "train" / "history.jsonl").read_text().splitlines()]
    assert [r["health"] for r in logged if "health" in r] == vanishing  # in history.jsonl too
