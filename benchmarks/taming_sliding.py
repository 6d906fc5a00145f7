"""Sliding-window sampling cost: a 2H x 2W token grid vs an H x W grid (the prior's window).

Side by side, in one run:
* pixseq's lattice sampler (:func:`pixseq.priors.sliding.sliding_sample`, KV cache per window),
* the original taming-transformers procedure — one full transformer pass over the window
  prefix for every token (:func:`sliding_sample_reference`) — which a user would otherwise write.

Target: 2H x 2W costs <= 4.5x the time of H x W (linear in tokens: 4x).
Usage: python benchmarks/taming_sliding.py [--window 8] [--batch 4] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

import torch

from _timing import best_time
from pixseq.priors.gpt import GPT, gpt_config
from pixseq.priors.sliding import sliding_sample, sliding_sample_reference


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--window", type=int, default=8, help="window side in tokens (prior block = window^2)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    w = args.window
    prior = GPT(gpt_config("s", vocab_size=1024, block_size=w * w)).eval()
    rows = []
    for name, fn in (("KV-cached lattice (pixseq)", lambda g: sliding_sample(prior, args.batch, g, (w, w))),
                     ("full window pass per token (original)",
                      lambda g: sliding_sample_reference(prior, args.batch, g, (w, w)))):
        t1 = best_time(lambda: fn((w, w)), args.repeats)
        t2 = best_time(lambda: fn((2 * w, 2 * w)), args.repeats)
        rows.append((name, t1, t2))
    print(f"GPT preset s (4 layers, 128 wide), window {w}x{w}, batch {args.batch}, "
          f"{args.threads} thread(s), best of {args.repeats}\n")
    print(f"| sampler | {w}x{w} grid (s) | {2 * w}x{2 * w} grid (s) | ratio 2Hx2W / HxW | tokens/s at {2 * w}x{2 * w} |")
    print("|---|---|---|---|---|")
    for name, t1, t2 in rows:
        print(f"| {name} | {t1:.3f} | {t2:.3f} | {t2 / t1:.2f}x | {args.batch * 4 * w * w / t2:.0f} |")
    print(f"\npixseq vs original at {2 * w}x{2 * w}: {rows[1][2] / rows[0][2]:.1f}x faster")


if __name__ == "__main__":
    main()
