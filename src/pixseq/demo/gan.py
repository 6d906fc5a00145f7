"""``pixseq demo``'s GAN section: a class-conditional DCGAN on Fashion-MNIST (samples per class,
a latent interpolation, the loss curves with D(x) and D(G(z)), the health monitor's verdict)
and a denoising restoration GAN (degraded | restored | original)."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

#: Demo-scale settings: a few minutes on 2 shared CPU cores.
DEMO = dict(images=8192, width=32, disc_width=32, steps=400, batch=64, restore_steps=150, restore_width=16)


def _curves(history: list[dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] + 1 for r in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3))
    ax[0].plot(steps, [r["disc/d_loss"] for r in history], label="D loss")
    ax[0].plot(steps, [r["gen/g_adv"] for r in history], label="G loss")
    ax[0].set(xlabel="step", title="losses (non-saturating)")
    ax[0].legend()
    ax[1].plot(steps, [r["disc/p_real"] for r in history], label="D(x)")
    ax[1].plot(steps, [r["disc/p_fake"] for r in history], label="D(G(z))")
    ax[1].set(xlabel="step", ylim=(0, 1), title="what D says")
    ax[1].legend()
    fig.tight_layout()
    return fig


def demo_section(page, out_dir, device: str | torch.device = "cpu", quick: bool = False) -> dict:
    """Train the demo's conditional DCGAN and denoiser into ``out_dir/gan`` and ``out_dir/restore``,
    add their part of the page; returns the numbers shown."""
    from pixseq.data import FASHION_MNIST_CLASSES, load_data
    from pixseq.gans.health import HealthConfig
    from pixseq.gans.interpolate import interpolation_grid
    from pixseq.gans.model import restore_images
    from pixseq.gans.train import (build_gan, build_restore, default_gan_train_config, default_restore_train_config,
                                   fit_gan, fit_restore)
    from pixseq.io import to_uint8

    d, out_dir = DEMO, Path(out_dir)
    scale = 1 / 40 if quick else 1.0
    train = load_data("fashion-mnist:train", limit=256 if quick else d["images"])
    images = np.stack(train.images)
    t0 = time.perf_counter()
    model, disc = build_gan(28, 1, num_classes=10, width=d["width"], disc_width=d["disc_width"])
    tc = dataclasses.replace(default_gan_train_config(), steps=max(4, int(d["steps"] * scale)), batch_size=d["batch"],
                             ckpt_every=0, log_every=0, ema_decay=0.99)
    health = HealthConfig(window=50, every=100, samples=64)
    model, history, monitor = fit_gan(model, disc, images, train.labels, out_dir / "gan", tc, device, health=health,
                                      meta={"class_names": list(FASHION_MNIST_CLASSES)})
    t1 = time.perf_counter()
    g = torch.Generator(model.device).manual_seed(0)
    samples = model.generate(60, torch.arange(60) % 10, generator=g)
    walk = interpolation_grid(model, 4, 8, generator=g)
    r_model, r_disc = build_restore("denoise", 1, width=d["restore_width"], disc_width=d["restore_width"])
    rtc = dataclasses.replace(default_restore_train_config(), steps=max(4, int(d["restore_steps"] * scale)),
                              ckpt_every=0, log_every=0)
    fit_restore(r_model, r_disc, train.images, out_dir / "restore", rtc, device,
                pretrain_steps=rtc.steps // 3, health=False)
    test = load_data("fashion-mnist:test", limit=8)
    restored = restore_images(r_model.eval(), test.images, degrade_first=True)
    t2 = time.perf_counter()
    stats = {"gan_steps": tc.steps, "gan_minutes": (t1 - t0) / 60, "restore_minutes": (t2 - t1) / 60,
             "health_warnings": [f"step {s}: {m}" for s, _, m in monitor.warnings]}
    page.section("GANs: a conditional DCGAN and a denoising GAN (Fashion-MNIST)")
    page.text(f"A DCGAN whose generator and discriminator both get the class as one extra channel (an embedding "
              f"reshaped to the feature map) was trained for {tc.steps} steps with the non-saturating loss; samples "
              f"come from the EMA of its weights.")
    page.grid([to_uint8(im) for im in samples.cpu()], ncol=10, scale=3,
              caption="class-conditional samples: one column per class (T-shirt, trouser, ..., ankle boot)")
    page.grid([to_uint8(im) for im in walk.cpu()], ncol=8, scale=3,
              caption="latent interpolation (slerp): each row walks between two latents, one class per row")
    page.plot(_curves(history), caption="losses, and D's verdict on real (D(x)) and generated (D(G(z))) images")
    verdict = stats["health_warnings"] or ["none: D never won, no oscillation, G's gradients alive, samples diverse"]
    page.table(["health monitor"], [[w] for w in verdict], caption="automatic health warnings of this run")
    page.grid([noisy for _, noisy in restored] + [clean for clean, _ in restored], ncol=len(restored), scale=3,
              caption="denoising GAN on held-out test images: noisy inputs (top), their restorations (bottom)")
    return stats
