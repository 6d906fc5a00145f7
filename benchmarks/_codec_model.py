"""A small iGPT trained on random crops of the built-in photos, for the codec benchmarks.

Held-out photos (never seen in training, palette fitting included): HELD_OUT. Crops are
taken at several downscales (1, 2, 4, 8) because the codec codes downscaled images.
The model is cached in a folder keyed by its settings, so the benchmarks share one training.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HELD_OUT = ("chelsea", "coffee", "flower", "grace_hopper")
SETTINGS = dict(palette=256, image_size=16, n_layer=2, n_head=4, n_embd=64, crops=6000, steps=1500,
                batch=16, lr=3e-3, seed=0)
CACHE = Path("/tmp/pixseq-bench")


def training_crops(size: int, count: int, seed: int) -> np.ndarray:
    """``count`` random ``size x size`` crops of the non-held-out photos at downscales 1, 2, 4, 8."""
    from pixseq.data import builtin_photos

    photos = builtin_photos()
    pyramid = []
    for name, im in zip(photos.names, photos.images):
        if name in HELD_OUT:
            continue
        for f in (1, 2, 4, 8):
            h, w = im.shape[0] // f, im.shape[1] // f
            if min(h, w) >= size:
                pyramid.append(np.asarray(Image.fromarray(im).resize((w, h), Image.Resampling.LANCZOS)) if f > 1 else im)
    rng = np.random.default_rng(seed)
    out = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        im = pyramid[rng.integers(len(pyramid))]
        y, x = rng.integers(im.shape[0] - size + 1), rng.integers(im.shape[1] - size + 1)
        out[i] = im[y:y + size, x:x + size]
    return out


class _Progress:
    """Trainer callback: a line every 50 steps (tqdm is silent when stderr is not a terminal)."""

    def __init__(self, log) -> None:
        self.log, self.t0 = log, time.time()

    def on_step_end(self, trainer, step: int, record: dict) -> None:
        if step % 50 == 0:
            self.log(f"step {step}: loss {record.get('loss', float('nan')):.3f} nats/token, "
                     f"{time.time() - self.t0:.0f}s")


def photo_igpt(settings: dict | None = None, log=print) -> Path:
    """Train (or reuse) the benchmark iGPT; returns its model directory."""
    from pixseq.checkpoint import save_pretrained
    from pixseq.models.igpt import IGPT, IGPTConfig, IGPTTask, IGPTTokenDataset
    from pixseq.priors.gpt import gpt_config
    from pixseq.train import TrainConfig, Trainer

    s = {**SETTINGS, **(settings or {})}
    key = hashlib.sha256(json.dumps(s, sort_keys=True).encode()).hexdigest()[:10]
    out = CACHE / f"codec-igpt-{key}"
    if (out / "model" / "config.json").is_file():
        return out / "model"
    t0 = time.time()
    crops = training_crops(s["image_size"], s["crops"], s["seed"])
    cfg = IGPTConfig(palette_size=s["palette"], image_size=s["image_size"],
                     gpt=gpt_config("s", n_layer=s["n_layer"], n_head=s["n_head"], n_embd=s["n_embd"]))
    model = IGPT.from_data(crops, cfg, seed=s["seed"])
    data = IGPTTokenDataset(model, crops)
    log(f"palette fitted and {len(crops)} crops tokenised in {time.time() - t0:.0f}s; training {s['steps']} steps")
    tc = TrainConfig(steps=s["steps"], batch_size=s["batch"], lr=s["lr"], warmup_steps=max(1, s["steps"] // 20),
                     ckpt_every=0, log_every=0, seed=s["seed"])
    history = Trainer(IGPTTask(model), data, tc, out / "run", callbacks=[_Progress(log)]).fit()
    losses = [h["loss"] for h in history if "loss" in h]
    meta = {"settings": s, "held_out": list(HELD_OUT), "train_seconds": time.time() - t0,
            "final_bits_per_token": float(np.mean(losses[-20:]) / np.log(2)) if losses else None}
    save_pretrained(model.eval(), out / "model", meta=meta)
    log(f"trained in {time.time() - t0:.0f}s: final train loss {meta['final_bits_per_token']} bits/token")
    return out / "model"


if __name__ == "__main__":
    torch.set_num_threads(1)  # on a shared 2-core machine, 2 threads were 3x slower than 1
    print(photo_igpt())
