"""Learning-rate schedules: linear warm-up, then cosine decay to a floor, or a constant rate
followed by a linear decay.

* ``"cosine"`` follows the GPT-2/3 recipe as popularised by nanoGPT: the rate rises linearly
  from ~0 to its base value over ``warmup`` steps, then follows half a cosine down to
  ``min_ratio * base`` at the last step (Loshchilov & Hutter, "SGDR", 2017, without restarts).
* ``"linear"`` is pix2pix's and CycleGAN's (Isola et al. 2017, Zhu et al. 2017: "a constant
  learning rate for the first 100 epochs, then linearly decay the rate to zero over the next
  100"): after the warm-up the base rate holds until step ``decay_start * total``, then
  falls linearly towards ``min_ratio * base``. Per step it is the official code's per-epoch
  rule ``1 - max(0, e + 1 - n) / (n_decay + 1)``, so the last step is one decrement above the
  floor rather than at it.
"""
from __future__ import annotations

import math

import torch

#: The schedules by name (``TrainConfig.schedule``).
SCHEDULES = ("cosine", "linear")


def endless_warmup(warmup: int, steps: int, lr: float) -> str | None:
    """The one rule every train verb applies to its schedule (the Trainer says it once, when
    a run starts and when a resume moves its last step): a warm-up of at least ``steps``
    steps never reaches the peak rate ``lr``. Returns the notice, or None when it does."""
    if warmup < steps:
        return None
    return (f"the learning rate warms up over {warmup} steps but the run has {steps}: it never reaches "
            f"--lr {lr:g} (lower --warmup-steps)")


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based).

    ``step < warmup``: ``(step + 1) / warmup`` (never exactly 0, so step 0 already learns).
    Afterwards: ``min_ratio + (1 - min_ratio) * 0.5 * (1 + cos(pi * progress))`` where
    ``progress`` goes from 0 at the first post-warm-up step to 1 at step ``total - 1``.
    Steps past ``total`` stay at the floor (training extended with ``--resume``).
    """
    if step < warmup:
        return (step + 1) / warmup
    span = max(1, total - 1 - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def constant_linear(step: int, warmup: int, total: int, min_ratio: float, decay_start: float) -> float:
    """Multiplier for step ``step`` of the ``"linear"`` schedule: the warm-up as for the cosine,
    1 until step ``d = round(decay_start * total)``, then
    ``1 - (1 - min_ratio) * (step + 1 - d) / (total - d + 1)``; steps past ``total`` stay at
    the last value's floor ``min_ratio``."""
    if step < warmup:
        return (step + 1) / warmup
    start = max(warmup, round(decay_start * total))
    if step < start:
        return 1.0
    fraction = min(1.0, (step + 1 - start) / (total - start + 1))
    return 1.0 - (1.0 - min_ratio) * fraction


def make_scheduler(optimizer: torch.optim.Optimizer, warmup: int, total: int, min_ratio: float,
                   kind: str = "cosine", decay_start: float = 0.5) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying the schedule ``kind``; its state dict holds only numbers.

    The lambda itself is not saved (LambdaLR stores ``None`` for plain functions), which
    keeps the checkpoint loadable with ``weights_only=True``; it is rebuilt from the config.
    """
    if kind == "linear":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: constant_linear(s, warmup, total, min_ratio, decay_start))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, warmup, total, min_ratio))
