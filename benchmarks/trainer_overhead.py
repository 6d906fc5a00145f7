"""Trainer overhead vs the plain PyTorch loop a user would write, side by side in one run.

Same model (an MLP classifier on 28x28 inputs), data, batch, AdamW, clipping and warm-up +
cosine schedule; the plain loop uses ``DataLoader(shuffle=True, drop_last=True)``. Reports
wall time per optimizer step (median of interleaved repeats) and the ratio to the plain
loop, plus the cost of a full training checkpoint. Usage::

    python benchmarks/trainer_overhead.py [--steps 60] [--repeats 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pixseq.train import TrainConfig, Trainer
from pixseq.train.schedule import make_scheduler


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.GELU(), nn.Linear(512, 512), nn.GELU(),
                         nn.Linear(512, 10))


class ClassifyTask:
    def __init__(self) -> None:
        self.net = make_model()

    def parts(self):
        return ["model"]

    def modules(self):
        return {"net": self.net}

    def parameters(self, part):
        return self.net.parameters()

    def training_step(self, batch, step, part):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x).float(), y), {}


def plain_loop(data, cfg: TrainConfig) -> float:
    """The hand-written loop: returns seconds for cfg.steps steps."""
    net = make_model()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = make_scheduler(opt, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio)
    loader = DataLoader(data, batch_size=cfg.batch_size, shuffle=True, drop_last=True)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if cfg.precision == "bf16" else torch.no_grad
    t0, step = time.perf_counter(), 0
    while step < cfg.steps:
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            if cfg.precision == "bf16":
                with ctx():
                    loss = nn.functional.cross_entropy(net(x).float(), y)
            else:
                loss = nn.functional.cross_entropy(net(x), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            step += 1
            if step == cfg.steps:
                break
    return time.perf_counter() - t0


def trainer_run(data, cfg: TrainConfig) -> float:
    with tempfile.TemporaryDirectory() as d:
        trainer = Trainer(ClassifyTask(), data, cfg, d)
        t0 = time.perf_counter()
        trainer.fit()
        return time.perf_counter() - t0


def checkpoint_cost(data, cfg: TrainConfig) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as d:
        trainer = Trainer(ClassifyTask(), data, TrainConfig(**{**cfg.__dict__, "steps": 1}), d)
        trainer.fit()
        t0 = time.perf_counter()
        path = trainer.save_checkpoint()
        save_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        trainer.load_checkpoint()
        load_s = time.perf_counter() - t0
        return save_s, load_s, Path(path).stat().st_size / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(4096, 1, 28, 28, generator=g), torch.randint(0, 10, (4096,), generator=g))
    base = dict(steps=args.steps, batch_size=args.batch, lr=1e-3, warmup_steps=5, ckpt_every=0, log_every=0)
    rows = [
        ("plain PyTorch loop, fp32", plain_loop, TrainConfig(**base)),
        ("pixseq Trainer, fp32", trainer_run, TrainConfig(**base)),
        ("pixseq Trainer, fp32 + EMA + TensorBoard every 10", trainer_run,
         TrainConfig(**{**base, "ema_decay": 0.999, "log_every": 10})),
        ("plain PyTorch loop, bf16 autocast", plain_loop, TrainConfig(**{**base, "precision": "bf16"})),
        ("pixseq Trainer, bf16 autocast", trainer_run, TrainConfig(**{**base, "precision": "bf16"})),
    ]
    times: dict[str, list[float]] = {name: [] for name, _, _ in rows}
    for name, fn, cfg in rows:  # warm-up (imports, allocator)
        fn(data, TrainConfig(**{**cfg.__dict__, "steps": 3}))
    for _ in range(args.repeats):  # interleaved so machine load hits every row alike
        for name, fn, cfg in rows:
            times[name].append(fn(data, cfg) / args.steps * 1e3)
    print(f"MLP 784-512-512-10 ({sum(p.numel() for p in make_model().parameters()) / 1e6:.2f} M params), "
          f"batch {args.batch}, {args.steps} steps, {args.threads} thread(s), median of {args.repeats}\n")
    print("| loop | ms / step | ratio to plain loop (same precision) |\n|---|---:|---:|")
    for name, _, cfg in rows:
        ref = "plain PyTorch loop, bf16 autocast" if cfg.precision == "bf16" else "plain PyTorch loop, fp32"
        ms, ref_ms = statistics.median(times[name]), statistics.median(times[ref])
        print(f"| {name} | {ms:.2f} | {ms / ref_ms:.2f}x |")
    save_s, load_s, mib = checkpoint_cost(data, TrainConfig(**base))
    print(f"\nFull training checkpoint (weights + AdamW moments + RNG + data position): {mib:.1f} MiB, "
          f"save {save_s * 1e3:.0f} ms (atomic, fsync'd), load {load_s * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
