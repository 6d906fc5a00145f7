"""The Trainer's GAN step against the plain loop of pytorch/examples' dcgan, side by side.

Same networks (pixseq's 28-px DCGAN G and D, width 64), batch 64, fp32, non-saturating loss
(BCE on logits), Adam(2e-4, betas 0.5/0.999). The plain loop is pytorch/examples' dcgan
``main.py`` step written out: D on real, G(z) once, D on the detached fake, D step, D on the
same fake, G step, reading D(x) / D(G(z)) with ``.item()``; data from a shuffled DataLoader
over a float TensorDataset. The Trainer runs :class:`pixseq.gans.tasks.GANTask` on
:class:`pixseq.gans.train.GANImages` (uint8 Fashion-MNIST, converted per item) with its own
bookkeeping (gradient norms, NaN checks, scheduler, logs), EMA off, and with EMA 0.999 and
the health monitor as extra rows. Blocks of ``--steps`` steps alternate between contenders;
the fastest and the median step (wall) and the median CPU time of the compute thread of each
are reported with their ratios to the plain loop::

    python benchmarks/gan_step_overhead.py [--steps 15] [--rounds 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


def plain_block(images: torch.Tensor, steps: int):
    """A generator of timings: each ``next`` runs ``steps`` steps of the plain loop."""
    from pixseq.gans.train import build_gan

    model, netD = build_gan(28, 1, width=64, disc_width=64, seed=0)
    netG = model.generator
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    loader = DataLoader(TensorDataset(images), batch_size=64, shuffle=True, drop_last=True)
    it = iter(loader)
    while True:
        times = []
        for _ in range(steps):
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                (real,) = next(it)
            except StopIteration:
                it = iter(loader)
                (real,) = next(it)
            netD.zero_grad()
            out = netD(real)
            err_real = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
            err_real.backward()
            d_x = torch.sigmoid(out).mean().item()
            fake = netG(torch.randn(real.size(0), 100))
            out = netD(fake.detach())
            err_fake = F.binary_cross_entropy_with_logits(out, torch.zeros_like(out))
            err_fake.backward()
            d_g_z1 = torch.sigmoid(out).mean().item()
            optD.step()
            netG.zero_grad()
            out = netD(fake)
            err_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
            err_g.backward()
            d_g_z2 = torch.sigmoid(out).mean().item()
            optG.step()
            del d_x, d_g_z1, d_g_z2
            times.append((time.perf_counter() - t0, time.thread_time() - c0))
        yield times


def trainer_block(images_u8: np.ndarray, steps: int, ema: float = 0.0, health: bool = False):
    """Timings of ``steps``-step blocks of the Trainer (resumed from its checkpoint each block)."""
    from pixseq.gans.health import HealthConfig
    from pixseq.gans.train import build_gan, default_gan_train_config, fit_gan
    from pixseq.runtime import capture_notices

    out = tempfile.mkdtemp()
    total = 0
    while True:
        total += steps
        model, disc = build_gan(28, 1, width=64, disc_width=64, seed=0)
        tc = dataclasses.replace(default_gan_train_config(), steps=total, batch_size=64, ckpt_every=0, log_every=0,
                                 ema_decay=ema)
        timer = _StepTimer()
        with capture_notices():  # "--steps changed on resume" at every block
            fit_gan(model, disc, images_u8, None, out, tc, resume=total > steps, callbacks=[timer],
                    health=HealthConfig(every=200) if health else False)
        yield timer.times[1:] or timer.times


class _StepTimer:
    """(wall, CPU) seconds between consecutive step ends (the first step of a block has the
    resume cost)."""

    def __init__(self) -> None:
        self.times: list[tuple[float, float]] = []
        self.last = (time.perf_counter(), time.thread_time())

    def on_step_end(self, trainer, step, record) -> None:
        now = (time.perf_counter(), time.thread_time())
        self.times.append((now[0] - self.last[0], now[1] - self.last[1]))
        self.last = now


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from pixseq.data import load_data

    u8 = np.stack(load_data("fashion-mnist", limit=4096).images)
    floats = torch.from_numpy(u8[..., :1]).permute(0, 3, 1, 2).float() / 127.5 - 1  # (N, 1, 28, 28) in [-1, 1]
    contenders = {"plain PyTorch loop (pytorch/examples dcgan)": plain_block(floats, args.steps),
                  "pixseq Trainer (GANTask), EMA off": trainer_block(u8, args.steps),
                  "pixseq Trainer, EMA 0.999 + health monitor": trainer_block(u8, args.steps, 0.999, True)}
    for gen in contenders.values():
        next(gen)  # warm-up block
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in contenders}
    for _ in range(args.rounds):
        for name, gen in contenders.items():
            times[name] += next(gen)
    # a shared machine's noise only adds time: the fastest step is the least disturbed one.
    # CPU time of the (only) compute thread is what a step costs when other processes take
    # the cores in turns: wall time then counts their slices, thread time does not.
    plain = times["plain PyTorch loop (pytorch/examples dcgan)"]
    print(f"{'contender':44s} {'wall min':>9s} {'ratio':>6s} {'wall med':>9s} {'ratio':>6s} {'CPU med':>8s} "
          f"{'ratio':>6s}   ({args.threads} thread(s), batch 64, fp32, {args.rounds} rounds of {args.steps} steps)")
    for name, ts in times.items():
        cells = []
        for pick, col in ((min, 0), (statistics.median, 0), (statistics.median, 1)):
            v, base = pick(t[col] for t in ts), pick(t[col] for t in plain)
            cells.append(f"{v:9.4f} {v / base:6.3f}")
        print(f"{name:44s} " + " ".join(cells))

if __name__ == "__main__":
    main()
