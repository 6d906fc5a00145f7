"""How the demo's phases scale with CPU threads: training steps and KV-cached sampling.

The demo model is tiny (4 layers, width 128, 16x16 images = 256 tokens), so its matmuls
are small and thread start-up/synchronisation can cost more than it saves - worst on a
shared machine, where a second thread waits for a busy core. This prints one markdown
table: seconds per training step and per sampled batch at 1 and at 2 threads, with the
ratio. Run: ``python benchmarks/cli_demo_threads.py [--repeats 3]``.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from pixseq.priors.gpt import GPT, gpt_config
from pixseq.priors.sampling import sample


def _time(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, first-call paths)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def measure(threads: int, repeats: int, batch: int, side: int, palette: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    prior = GPT(gpt_config("s", vocab_size=palette, block_size=side * side, cond_len=1, cond_vocab_size=11))
    opt = torch.optim.AdamW(prior.parameters(), lr=1e-3)
    x = torch.randint(0, palette, (batch, side * side))
    c = torch.randint(0, 11, (batch, 1))

    def train_step() -> None:
        loss = prior.loss(x, c)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def sample_batch() -> None:
        with torch.no_grad():
            sample(prior.eval(), 60, side * side, cond=torch.arange(60) % 11,
                   generator=torch.Generator().manual_seed(0))
        prior.train()

    return {"train step": _time(train_step, repeats), "sample 60 images": _time(sample_batch, repeats)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--side", type=int, default=16)
    ap.add_argument("--palette", type=int, default=16)
    args = ap.parse_args()
    one = measure(1, args.repeats, args.batch, args.side, args.palette)
    two = measure(2, args.repeats, args.batch, args.side, args.palette)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"demo-sized GPT (preset s, {args.side}x{args.side}, palette {args.palette}, batch {args.batch}); "
          f"load average {load:.1f} on {os.cpu_count()} cores; best of {args.repeats}\n")
    print("| phase | 1 thread (s) | 2 threads (s) | 1-thread speed-up |")
    print("|---|---:|---:|---:|")
    for k in one:
        print(f"| {k} | {one[k]:.3f} | {two[k]:.3f} | {two[k] / one[k]:.2f}x |")


if __name__ == "__main__":
    main()
