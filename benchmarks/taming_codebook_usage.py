"""Codebook usage of a VQGAN at the end of demo-scale training, with and without dead-code restart.

Fashion-MNIST, f=4, K=512 (the ``pixseq demo`` settings, :data:`pixseq.demo.taming.DEMO`).
Reports, per variant: the fraction of codes used in the last 50 training steps, the batch
perplexity, the fraction of codes used when encoding 2000 held-out test images, and the
final reconstruction L1. Target: >= 90 % of the 512 codes in use.
Usage: python benchmarks/taming_codebook_usage.py [--steps N]
"""
from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch

from pixseq.data import load_data
from pixseq.demo.taming import DEMO
from pixseq.models.taming_train import fit_vqgan
from pixseq.tokenizers.losses import VQGANLossConfig
from pixseq.tokenizers.vqgan import vqgan_config
from pixseq.train.config import TrainConfig


def run_variant(train, test, steps: int, **quantizer) -> dict:
    d = DEMO
    cfg = vqgan_config(d["factor"], d["codes"], d["dim"], d["ch"], **quantizer)
    loss = VQGANLossConfig(perceptual="none", disc_start=d["disc_start"] * steps // d["vq_steps"],
                           disc_channels=32, disc_layers=2)
    tc = TrainConfig(steps=steps, batch_size=d["vq_batch"], lr=d["vq_lr"], warmup_steps=20, log_every=0,
                     ckpt_every=0)
    with tempfile.TemporaryDirectory() as out:
        model, hist = fit_vqgan(train.images, out, cfg, loss, tc, 28)
    x = torch.from_numpy(np.stack(test.images)).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        codes = torch.cat([model.encode(x[i:i + 500]) for i in range(0, len(x), 500)])
    tail = hist[-10:]
    return {"usage": model.quantizer.usage(), "perplexity": float(np.mean([r["gen/perplexity"] for r in tail])),
            "test_used": codes.unique().numel() / d["codes"], "rec": float(np.mean([r["gen/rec"] for r in tail]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=DEMO["vq_steps"])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train = load_data("fashion-mnist:train", limit=DEMO["images"])
    test = load_data("fashion-mnist:test", limit=2000)
    variants = [("k-means init + dead-code restart (default)", dict(dead_restart=True)),
                ("k-means init, no restart", dict(dead_restart=False)),
                ("plain VQ (uniform init, no restart)", dict(dead_restart=False, kmeans_init=False))]
    rows = [(name, run_variant(train, test, args.steps, **kw)) for name, kw in variants]
    print(f"Fashion-MNIST ({DEMO['images']} train images), f={DEMO['factor']}, K={DEMO['codes']}, "
          f"{args.steps} steps x batch {DEMO['vq_batch']}\n")
    print("| quantizer | codes used, last 50 steps | perplexity (batch) | codes used on 2000 test images | L1 rec |")
    print("|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['usage']:.1%} | {r['perplexity']:.0f} | {r['test_used']:.1%} | {r['rec']:.4f} |")
    base = rows[-1][1]["usage"]
    print(f"\nrestart vs plain VQ, codes used: {rows[0][1]['usage'] / max(base, 1e-9):.1f}x")


if __name__ == "__main__":
    main()
