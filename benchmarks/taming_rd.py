"""Reconstruction quality per bit on the built-in photos: a VQGAN tokenizer beside JPEG.

The tokenizer is trained on random crops of the built-in photos except a held-out few
(L2 reconstruction only: PSNR is the measure here, so no perceptual/GAN terms), then
measured on the held-out photos (resized to 128 px short side, centre-cropped 128x128).
JPEG (Pillow, 4:2:0) is searched for the quality whose file size is closest to, but not
above, the tokenizer's bits per pixel. Raw codes cost ``log2(K) / f^2`` bpp (no entropy
coding); the zeroth-order entropy of the codes is shown as what a simple entropy coder
would need.
Usage: python benchmarks/taming_rd.py [--steps 300] [--ch 32]
"""
from __future__ import annotations

import argparse
import io
import math
import tempfile

import numpy as np
import torch
from PIL import Image

from pixseq.data import builtin_photos
from pixseq.metrics.pixel import psnr
from pixseq.models.taming_train import fit_vqgan
from pixseq.tokenizers.losses import VQGANLossConfig
from pixseq.tokenizers.vqgan import vqgan_config
from pixseq.train.config import TrainConfig

HELD_OUT = ("chelsea", "coffee", "grace_hopper")


def square(im: np.ndarray, side: int = 128) -> np.ndarray:
    img = Image.fromarray(im)
    s = side / min(img.size)
    img = img.resize((max(side, round(img.size[0] * s)), max(side, round(img.size[1] * s))), Image.BICUBIC)
    left, top = (img.size[0] - side) // 2, (img.size[1] - side) // 2
    return np.asarray(img.crop((left, top, left + side, top + side)))


def jpeg_at(im: np.ndarray, max_bpp: float) -> tuple[float, float, int]:
    """(bpp, PSNR, quality) of the best JPEG quality with bpp <= max_bpp (or quality 1)."""
    best = None
    for q in range(1, 96):
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format="JPEG", quality=q)
        bpp = 8 * buf.tell() / (im.shape[0] * im.shape[1])
        if bpp > max_bpp and best is not None:
            break
        dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        best = (bpp, _psnr(im, dec), q)
    return best


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    ta, tb = (torch.from_numpy(np.array(x)).permute(2, 0, 1)[None].float() / 255 for x in (a, b))
    return float(psnr(ta, tb))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--ch", type=int, default=32)
    ap.add_argument("--factor", type=int, default=4)
    ap.add_argument("--codes", type=int, default=256)
    ap.add_argument("--crop", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    photos = builtin_photos()
    train = [im for im, n in zip(photos.images, photos.names) if n not in HELD_OUT]
    test = [square(im) for im, n in zip(photos.images, photos.names) if n in HELD_OUT]
    cfg = vqgan_config(args.factor, args.codes, 32, args.ch)
    tc = TrainConfig(steps=args.steps, batch_size=16, lr=args.lr, warmup_steps=20, log_every=0, ckpt_every=0)
    loss = VQGANLossConfig(rec="l2", perceptual="none", disc_start=10**9)
    with tempfile.TemporaryDirectory() as out:
        model, _ = fit_vqgan(train, out, cfg, loss, tc, args.crop, crops_per_epoch=4096)
    bpp = math.log2(args.codes) / args.factor ** 2
    rows = []
    for name, im in zip([n for n in photos.names if n in HELD_OUT], test):
        x = torch.from_numpy(im.copy()).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            codes = model.encode(x)
            rec = (model.decode(codes)[0].permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
        counts = np.bincount(codes.flatten().numpy(), minlength=args.codes)
        p = counts[counts > 0] / counts.sum()
        ent_bpp = float(-(p * np.log2(p)).sum()) / args.factor ** 2
        jb, jp, q = jpeg_at(im, bpp)
        rows.append((name, _psnr(im, rec), ent_bpp, jb, jp, q))
    print(f"VQGAN f={args.factor}, K={args.codes}, ch={args.ch}, trained {args.steps} steps x 16 random "
          f"{args.crop}px crops of {len(train)} photos; held out: {', '.join(HELD_OUT)} (128x128)\n")
    print(f"| photo | VQGAN PSNR @ {bpp:.3f} bpp (raw codes) | code entropy (bpp) | JPEG bpp (quality) | JPEG PSNR | "
          f"VQGAN - JPEG (dB) |")
    print("|---|---|---|---|---|---|")
    for name, vp, eb, jb, jp, q in rows:
        print(f"| {name} | {vp:.2f} | {eb:.3f} | {jb:.3f} (q={q}) | {jp:.2f} | {vp - jp:+.2f} |")
    mv, mj = np.mean([r[1] for r in rows]), np.mean([r[4] for r in rows])
    print(f"| mean | {mv:.2f} | | | {mj:.2f} | {mv - mj:+.2f} |")


if __name__ == "__main__":
    main()
