"""Learning-rate schedule: linear warm-up, then cosine decay to a floor.

The shape follows the GPT-2/3 recipe as popularised by nanoGPT: the rate rises linearly
from ~0 to its base value over ``warmup`` steps, then follows half a cosine down to
``min_ratio * base`` at the last step (Loshchilov & Hutter, "SGDR", 2017, without restarts).
"""
from __future__ import annotations

import math

import torch


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


def make_scheduler(optimizer: torch.optim.Optimizer, warmup: int, total: int,
                   min_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying :func:`warmup_cosine`; its state dict holds only numbers.

    The lambda itself is not saved (LambdaLR stores ``None`` for plain functions), which
    keeps the checkpoint loadable with ``weights_only=True``; it is rebuilt from the config.
    """
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, warmup, total, min_ratio))
