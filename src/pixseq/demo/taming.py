"""``pixseq demo``'s Taming section: a VQGAN on Fashion-MNIST (reconstructions, codebook
usage) and its class-conditional prior (samples, a larger-than-trained sliding-window sample)."""
from __future__ import annotations

import numpy as np
import torch

from pixseq.io import to_tensor
from pixseq.models.taming import taming_config

#: Demo-scale settings (pixseq demo, benchmarks/taming_codebook_usage.py): Fashion-MNIST,
#: f=4 (7x7 codes), K=512; sized for a few minutes on 2 shared CPU cores.
DEMO = dict(images=4096, factor=4, codes=512, dim=32, ch=16, vq_steps=240, vq_batch=16, vq_lr=1.5e-3,
            disc_start=180, prior_steps=300, prior_batch=32, prior_lr=1e-3)


def _usage_plot(history: list[dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] + 1 for r in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3))
    ax[0].plot(steps, [100 * r["gen/usage"] for r in history])
    ax[0].set(xlabel="step", ylabel="% of codes used (last 50 steps)", ylim=(0, 105), title="codebook usage")
    ax[1].plot(steps, [r["gen/rec"] for r in history])
    ax[1].set(xlabel="step", ylabel="L1 (images in [-1, 1])", title="reconstruction loss")
    fig.tight_layout()
    return fig


def demo_section(page, out_dir, device: str | torch.device = "cpu", quick: bool = False) -> dict:
    """``pixseq demo``'s Taming section: a VQGAN on Fashion-MNIST (reconstructions, codebook
    usage) and its class-conditional prior (samples, a larger-than-trained sliding-window sample).

    Trains into ``out_dir/taming-vqgan`` and ``out_dir/taming-prior``; returns the numbers shown.
    """
    import math
    import time
    from pathlib import Path

    from pixseq.data import load_data
    from pixseq.metrics.pixel import psnr
    from pixseq.models.taming_train import fit_prior, fit_vqgan
    from pixseq.tokenizers.losses import VQGANLossConfig
    from pixseq.tokenizers.vqgan import vqgan_config
    from pixseq.train.config import TrainConfig

    d, out_dir = DEMO, Path(out_dir)
    scale = 1 / 60 if quick else 1.0  # quick: a smoke run of a few steps
    train = load_data("fashion-mnist:train", limit=64 if quick else d["images"])
    test = load_data("fashion-mnist:test", limit=16)
    vq_steps, prior_steps = max(2, int(d["vq_steps"] * scale)), max(2, int(d["prior_steps"] * scale))
    t0 = time.perf_counter()
    vq_cfg = vqgan_config(d["factor"], d["codes"], d["dim"], d["ch"])
    loss_cfg = VQGANLossConfig(perceptual="none", disc_start=int(d["disc_start"] * scale), disc_channels=32,
                               disc_layers=2)
    tc = TrainConfig(steps=vq_steps, batch_size=d["vq_batch"], lr=d["vq_lr"], warmup_steps=min(20, vq_steps),
                     log_every=0, ckpt_every=0)
    # announce=None: the demo sets perceptual="none" itself, and a stderr notice from inside
    # its section would interleave with the demo's own "demo: ..." log lines
    vq, vq_hist = fit_vqgan(train.images, out_dir / "taming-vqgan", vq_cfg, loss_cfg, tc, 28, device,
                            announce=None)
    t1 = time.perf_counter()
    cfg = taming_config(vq.config, (28, 28), num_classes=10, size="s")
    tc = TrainConfig(steps=prior_steps, batch_size=d["prior_batch"], lr=d["prior_lr"],
                     warmup_steps=min(20, prior_steps), log_every=0, ckpt_every=0)
    model, prior_hist = fit_prior(out_dir / "taming-vqgan", train.images, train.labels, out_dir / "taming-prior",
                                  cfg, tc, device, meta={"class_names": list(train.class_names),
                                                         "data": "fashion-mnist:train"})
    t2 = time.perf_counter()
    model = model.to(device).eval()
    x = to_tensor(np.stack(test.images)).to(device)
    rec = model.tokenizer.reconstruct(x)
    g = torch.Generator(device).manual_seed(0)
    samples = model.generate(40, torch.arange(40) % 10, generator=g)
    big = model.generate(4, torch.tensor([0, 1, 7, 8]), size=(56, 56), generator=g)
    stats = {"codebook_usage": vq.quantizer.usage(), "perplexity": vq_hist[-1]["gen/perplexity"],
             "psnr_db": float(psnr(rec.cpu(), x.cpu(), reduction="mean")),
             "bits_per_pixel_raw": 49 * math.log2(d["codes"]) / 28 ** 2,
             "prior_bits_per_code": prior_hist[-1]["model/bits_per_code"],
             "vqgan_minutes": (t1 - t0) / 60, "prior_minutes": (t2 - t1) / 60}
    _demo_page(page, test, x, rec, samples, big, vq_hist, stats, vq_steps, prior_steps)
    return stats


def _demo_page(page, test, x, rec, samples, big, vq_hist, stats, vq_steps, prior_steps) -> None:
    from pixseq.io import to_uint8

    d = DEMO
    page.section("Taming Transformers: VQGAN tokenizer + latent GPT (Fashion-MNIST)")
    page.text(f"A VQGAN (factor {d['factor']}: 28x28 images become 7x7 grids of codes from a codebook of "
              f"{d['codes']}) was trained for {vq_steps} steps, then a class-conditional GPT over the codes for "
              f"{prior_steps} steps.")
    page.note("Perceptual loss off here (CPU time); patch-GAN with the adaptive weight from step "
              f"{int(d['disc_start'] * vq_steps / d['vq_steps'])}. Codebook: k-means initialisation and dead-code "
              "restarts. Raw codes cost log2(K) bits each (no entropy coding).")
    page.grid([to_uint8(im) for im in torch.cat([x[:8], rec[:8]]).cpu()], ncol=8, scale=3,
              caption="top: held-out test images; bottom: VQGAN reconstructions")
    page.plot(_usage_plot(vq_hist), caption="codebook usage and reconstruction loss during training")
    page.table(["measure", "value"], [
        ["codes used (last 50 steps)", f"{stats['codebook_usage']:.1%}"],
        ["codebook perplexity (last batch)", stats["perplexity"]],
        ["reconstruction PSNR, 16 test images (dB)", stats["psnr_db"]],
        ["bits per pixel (raw codes)", stats["bits_per_pixel_raw"]],
        ["prior: bits per code (training)", stats["prior_bits_per_code"]],
        ["training time VQGAN / prior (min)", f"{stats['vqgan_minutes']:.1f} / {stats['prior_minutes']:.1f}"],
    ], caption="Taming demo numbers")
    page.grid([to_uint8(im) for im in samples.cpu()], ncol=10, scale=3,
              caption="class-conditional samples: one column per class (T-shirt, trouser, ..., ankle boot)")
    page.grid([to_uint8(im) for im in big.cpu()], ncol=4, scale=2,
              caption="56x56 samples (2x the training size in each direction) with the sliding attention window: "
                      "T-shirt, trouser, sneaker, bag")
