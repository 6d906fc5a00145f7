"""``pixseq demo``'s text-to-image section: a LiT guide trained live on Fashion-MNIST captions,
then VQGAN-CLIP with the Taming section's VQGAN: one image per class prompt, judged zero-shot."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

#: Demo-scale settings: sized for about a minute and a half on 2 shared CPU cores.
DEMO = dict(images=8192, lit_steps=150, lit_batch=64, lit_lr=2e-3, gen_steps=40, cutn=8)


def _vqgan(out_dir: Path, device, quick: bool):
    """The Taming section's VQGAN when it ran before (same demo folder), else a small one."""
    from pixseq.checkpoint import load_model

    if (out_dir / "taming-vqgan" / "config.json").is_file():
        return load_model(out_dir / "taming-vqgan", "vqgan", device)
    from pixseq.data import load_data
    from pixseq.demo.taming import DEMO as TAMING
    from pixseq.models.taming_train import fit_vqgan
    from pixseq.tokenizers.losses import VQGANLossConfig
    from pixseq.tokenizers.vqgan import vqgan_config
    from pixseq.train.config import TrainConfig

    steps = 4 if quick else TAMING["vq_steps"]
    train = load_data("fashion-mnist:train", limit=64 if quick else TAMING["images"])
    tc = TrainConfig(steps=steps, batch_size=TAMING["vq_batch"], lr=TAMING["vq_lr"], warmup_steps=min(20, steps // 2),
                     log_every=0, ckpt_every=0)
    cfg = vqgan_config(TAMING["factor"], TAMING["codes"], TAMING["dim"], TAMING["ch"])
    loss = VQGANLossConfig(perceptual="none", disc_start=steps, disc_channels=32, disc_layers=2)
    return fit_vqgan(train.images, out_dir / "t2i-vqgan", cfg, loss, tc, 28, device, announce=None)[0]


def demo_section(page, out_dir, device: str | torch.device = "cpu", quick: bool = False) -> dict:
    """Train a LiT guide into ``out_dir/lit``, generate one image per class prompt, show them
    with their CLIP scores and the guide's held-out zero-shot accuracy; returns the numbers."""
    from pixseq.data import load_data
    from pixseq.guidance.lit_train import FASHION_MNIST_NAMES, build_clip, fashion_mnist_captions, fit_clip
    from pixseq.guidance.prompts import parse_prompts
    from pixseq.guidance.text_to_image import final_scores, generate_config
    from pixseq.guidance.vqgan_clip import embed_targets, vqgan_clip
    from pixseq.guidance.zero_shot import zero_shot_classify
    from pixseq.io import to_tensor
    from pixseq.train.config import TrainConfig

    d, out_dir = DEMO, Path(out_dir)
    steps = 3 if quick else d["lit_steps"]
    t0 = time.perf_counter()
    vqgan = _vqgan(out_dir, device, quick)
    train = load_data("fashion-mnist:train", limit=128 if quick else d["images"])
    test = load_data("fashion-mnist:test", limit=64 if quick else 500)
    tc = TrainConfig(steps=steps, batch_size=d["lit_batch"], lr=d["lit_lr"], warmup_steps=min(20, steps // 2),
                     log_every=0, ckpt_every=0, weight_decay=0.05)
    lit = build_clip(FASHION_MNIST_NAMES)
    lit, _ = fit_clip(lit, train.images, train.labels, fashion_mnist_captions(), out_dir / "lit", tc, device)
    t1 = time.perf_counter()
    lit = lit.to(device).frozen()
    zs = zero_shot_classify(to_tensor(np.stack(test.images)).to(device), list(FASHION_MNIST_NAMES), lit)
    accuracy = float((zs.probs.argmax(1).numpy() == test.labels).mean())
    images, scores = [], []
    cfg = generate_config(steps=2 if quick else d["gen_steps"], cutn=d["cutn"], cut_batch=d["cutn"], seed=0)
    for name in FASHION_MNIST_NAMES:
        prompts = parse_prompts(f"a photo of a {name}.")
        with torch.no_grad():
            text = lit.embed_text([prompts[0].text])
        result = vqgan_clip(vqgan, lit, embed_targets(lit, prompts), (28, 28), cfg)
        images.append(result.image)
        scores.append(final_scores(lit, result.image, [prompts[0].text], text)[prompts[0].text])
    stats = {"lit_minutes": (t1 - t0) / 60, "generate_minutes": (time.perf_counter() - t1) / 60,
             "zero_shot_accuracy": accuracy, "mean_clip_score": float(np.mean(scores))}
    _page(page, images, scores, stats, steps, cfg.steps, lit.scope_note, len(test.images))
    return stats


def _page(page, images, scores, stats, lit_steps, gen_steps, note, n_test) -> None:
    from pixseq.guidance.lit_train import FASHION_MNIST_NAMES
    from pixseq.io import to_uint8

    page.section("Text to image: VQGAN-CLIP with a LiT guide (Fashion-MNIST)")
    page.text(f"A LiT guide (a small CNN trained for {lit_steps} steps against the locked all-MiniLM-L6-v2 text "
              f"encoder on Fashion-MNIST captions such as 'a photo of a sneaker.') steers the VQGAN's 7x7 codes: "
              f"{gen_steps} optimisation steps per prompt, random cut-outs, straight-through quantisation.")
    page.note(note)
    page.grid([to_uint8(im) for im in images], ncol=10, scale=4,
              caption="one image per prompt 'a photo of a {class}.': " + ", ".join(FASHION_MNIST_NAMES))
    page.table(["measure", "value"], [
        [f"guide's zero-shot accuracy, {n_test} test images (label text only)", f"{stats['zero_shot_accuracy']:.1%}"],
        ["mean CLIP score of the generated images (guide's own judgement)", stats["mean_clip_score"]],
        ["LiT training / generation time (min)",
         f"{stats['lit_minutes']:.1f} / {stats['generate_minutes']:.1f}"],
    ], caption="text-to-image demo numbers")
    page.table(["prompt", "CLIP score"], [[f"a photo of a {n}.", s] for n, s in zip(FASHION_MNIST_NAMES, scores)],
               caption="CLIP score (torchmetrics' definition) of each image for its prompt, by the LiT guide")
