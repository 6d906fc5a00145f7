"""CycleGAN training step time: pixseq's Trainer against the reference computation of
junyanz/pytorch-CycleGAN-and-pix2pix (ResNet-9 generators, 70x70 PatchGANs, instance norm,
LSGAN, cycle 10, identity 0.5, pools of 50, Adam; 256 x 256, batch 1), on the CPU.

The reference is :mod:`_cyclegan_reference` (plain PyTorch, its networks and losses written
here from the official definitions; its own ``train.py`` could not be run: the repository
snapshot is too large to bring here). pixseq runs its real training path,
:func:`pixseq.gans.translate_train.fit_cyclegan` (the Trainer with its data set of random
256 px crops, health monitor and logging); the reference gets pre-made tensors. They are
interleaved: after each pixseq step (a Trainer callback) one reference step runs. The first
step of each is a warm-up, not counted. Times are process CPU seconds on ONE thread (on a
shared machine, CPU time is the work done; wall time, printed beside it, includes waiting
for other tenants)::

    python benchmarks/translate_step_time.py --steps 3
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _cyclegan_reference import ReferenceCycleGAN


class Interleave:
    """After every pixseq step: record its time since the last callback returned, then run
    one reference step and time it."""

    def __init__(self, ref: ReferenceCycleGAN, size: int) -> None:
        g = torch.Generator().manual_seed(1)
        self.ref, self.a, self.b = ref, torch.rand(1, 3, size, size, generator=g) * 2 - 1, \
            torch.rand(1, 3, size, size, generator=g) * 2 - 1
        self.ours: list[tuple[float, float]] = []
        self.theirs: list[tuple[float, float]] = []
        self.mark = (time.process_time(), time.perf_counter())

    def on_step_end(self, trainer, step: int, record: dict) -> None:
        c, w = time.process_time(), time.perf_counter()
        self.ours.append((c - self.mark[0], w - self.mark[1]))
        self.ref.step(self.a, self.b)
        c2, w2 = time.process_time(), time.perf_counter()
        self.theirs.append((c2 - c, w2 - w))
        print(f"step {step}: pixseq {self.ours[-1][0]:.1f} CPU-s, reference {self.theirs[-1][0]:.1f} CPU-s", flush=True)
        self.mark = (time.process_time(), time.perf_counter())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3, help="timed steps of each (after one warm-up)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--out", type=Path, default=Path("/tmp/cyclegan-step-time.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    from pixseq.gans.generators import GeneratorConfig
    from pixseq.gans.pairs import UnpairedCrops
    from pixseq.gans.translate_train import build_cyclegan, default_translate_train_config, fit_cyclegan
    from pixseq.gans.translator import TranslatorConfig

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8) for _ in range(8)]
    data = UnpairedCrops(images[:4], images[4:], args.size)
    cfg = TranslatorConfig(GeneratorConfig("resnet", 3, 3, 64, 9, norm="instance"), ["AtoB", "BtoA"],
                           image_size=args.size)
    model, da, db = build_cyclegan(cfg, 64, 3, "instance")
    torch.manual_seed(0)
    inter = Interleave(ReferenceCycleGAN(), args.size)
    tc = default_translate_train_config()
    tc.steps, tc.ckpt_every, tc.log_every = args.steps + 1, 10_000, 10_000
    with tempfile.TemporaryDirectory() as tmp:
        inter.mark = (time.process_time(), time.perf_counter())
        fit_cyclegan(model, da, db, data, Path(tmp) / "m", tc, "cpu", callbacks=[inter])
    ours, theirs = inter.ours[1:], inter.theirs[1:]
    med = {k: statistics.median(x[0] for x in v) for k, v in (("pixseq", ours), ("reference", theirs))}
    best = {k: min(x[0] for x in v) for k, v in (("pixseq", ours), ("reference", theirs))}
    wall = {k: statistics.median(x[1] for x in v) for k, v in (("pixseq", ours), ("reference", theirs))}
    res = {"steps": args.steps, "size": args.size, "threads": 1, "cpu_s_median": med, "cpu_s_min": best,
           "wall_s_median": wall, "ratio_median": med["reference"] / med["pixseq"],
           "ratio_min": best["reference"] / best["pixseq"], "ours": ours, "theirs": theirs}
    args.out.write_text(json.dumps(res, indent=1))
    print(f"CycleGAN training step, ResNet-9 G x2 + 70x70 PatchGAN x2, {args.size}x{args.size}, batch 1, CPU 1 thread, "
          f"{args.steps} timed steps each after 1 warm-up, interleaved")
    print(f"{'':<36} {'median CPU-s':>12} {'min CPU-s':>10} {'median wall-s':>14}")
    for k, name in (("reference", "reference loop (official nets/losses)"), ("pixseq", "pixseq Trainer (fit_cyclegan)")):
        print(f"{name:<36} {med[k]:>12.2f} {best[k]:>10.2f} {wall[k]:>14.2f}")
    print(f"speed-up (reference / pixseq): median {res['ratio_median']:.2f}x, min {res['ratio_min']:.2f}x; "
          f"target >= 1.2x: {'met' if res['ratio_median'] >= 1.2 else 'NOT met'}")


if __name__ == "__main__":
    main()
