"""Training-step throughput with bf16 autocast vs fp32 on CPU, same run, same batches.

Two Taming stages: the VQGAN step (generator + discriminator parts, L1 + patch-GAN with
the adaptive weight; perceptual off to time the VQGAN itself) and the latent-GPT step.
Each through the one Trainer (``TrainConfig.precision``), timing steps after a warm-up.
Usage: python benchmarks/taming_bf16.py [--steps 6] [--batch 16]
"""
from __future__ import annotations

import argparse
import tempfile

import torch

from pixseq.data import load_data
from pixseq.models.taming import Taming, TamingTokenDataset, taming_config
from pixseq.models.taming_train import ImageDataset, PriorTask, VQGANTask
from pixseq.tokenizers.losses import VQGANLoss, VQGANLossConfig
from pixseq.tokenizers.vqgan import VQGAN, vqgan_config
from pixseq.train.config import TrainConfig
from pixseq.train.trainer import Trainer


def steps_per_s(task_fn, data, precision: str, steps: int, batch: int, warmup: int = 2) -> float:
    torch.manual_seed(0)
    cfg = TrainConfig(steps=steps + warmup, batch_size=batch, precision=precision, log_every=0, ckpt_every=0,
                      warmup_steps=1)
    with tempfile.TemporaryDirectory() as out:
        hist = Trainer(task_fn(), data, cfg, out, "cpu").fit()
    return 1.0 / (sum(r["time_s"] for r in hist[warmup:]) / steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_data("fashion-mnist:test", limit=512)
    images = ImageDataset(ds.images, 28, ds.labels)
    vq_cfg = vqgan_config(4, 512, 32, ch=32)

    def vq_task():
        return VQGANTask(VQGAN(vq_cfg), VQGANLoss(VQGANLossConfig(perceptual="none", disc_start=0,
                                                                  disc_channels=32, disc_layers=2)))

    tam = Taming(taming_config(vq_cfg, (28, 28), num_classes=10, size="s")).eval()
    tokens = TamingTokenDataset(tam, ds.images, ds.labels)
    rows = []
    for name, fn, data in (("VQGAN (gen + disc)", vq_task, images), ("latent GPT, preset s", lambda: PriorTask(tam), tokens)):
        fp32 = steps_per_s(fn, data, "fp32", args.steps, args.batch)
        bf16 = steps_per_s(fn, data, "bf16", args.steps, args.batch)
        rows.append((name, fp32, bf16))
    print(f"CPU, {args.threads} thread(s), batch {args.batch}, {args.steps} timed steps after 2 warm-up\n")
    print("| stage | fp32 steps/s | bf16 autocast steps/s | bf16 / fp32 |")
    print("|---|---|---|---|")
    for name, a, b in rows:
        print(f"| {name} | {a:.2f} | {b:.2f} | {b / a:.2f}x |")


if __name__ == "__main__":
    main()
