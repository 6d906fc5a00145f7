"""Train the small Fashion-MNIST generators the inversion benchmarks invert, with the library
recipe (:func:`pixseq.gans.train.train_gan`, i.e. ``pixseq train gan``), timing each (wall
and process CPU seconds). Run once, under the heavy lock::

    flock /tmp/pixseq-heavy.lock python benchmarks/invert_generators.py --out /work/inv-runs [--steps 3000]

It writes three model directories under ``--out``:

* ``dcgan``   — DCGAN, z ~ N(0, I) of 100 dimensions (Radford et al.'s latent);
* ``vanilla`` — the lecture's vanilla GAN, z ~ U[-1, 1]^20 (a short latent: the lowest rates);
* ``cdcgan``  — a class-conditional DCGAN (label channel), z ~ N(0, I)^100.

Widths are halved from the library default (32 instead of 64) to fit a few CPU minutes each on
a shared 2-core machine; the generators are small, not good, and every benchmark says so.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pixseq.gans.train import train_gan

GENERATORS = {
    "dcgan": {"arch": "dcgan"},
    "vanilla": {"arch": "vanilla"},
    "cdcgan": {"arch": "dcgan", "classes": True},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated subset of " + ", ".join(GENERATORS))
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    wanted = [g for g in args.only.split(",") if g] or list(GENERATORS)
    for name in wanted:
        t0, c0 = time.perf_counter(), time.process_time()
        result = train_gan("fashion-mnist:train", args.out / name, width=args.width, disc_width=args.width,
                           train={"steps": args.steps, "ckpt_every": args.steps, "log_every": 100},
                           force=args.force, **GENERATORS[name])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        last = result.last
        print(json.dumps({"generator": name, "steps": args.steps, "width": args.width, "wall_s": round(wall, 1),
                          "cpu_s": round(cpu, 1), "threads": args.threads,
                          "d_loss": last.get("disc/d_loss"), "g_loss": last.get("gen/g_adv"),
                          "health": result.extra.get("health", [])}), flush=True)


if __name__ == "__main__":
    main()
