"""What the demo's sections share: loading a zoo model, timing, held-out Fashion-MNIST picks."""
from __future__ import annotations

import time

import numpy as np
import torch


def zoo_model(name: str, kinds: str | tuple[str, ...], device: str | torch.device = "cpu") -> torch.nn.Module:
    """Zoo model ``name`` (checksums verified; built on first use when it is a provided one), in eval mode."""
    from pixseq.checkpoint import load_model

    return load_model(f"zoo:{name}", kinds, device)


def card_number(name: str, key: str, default: str = "n/a") -> str:
    """One line of zoo model ``name``'s card (its index quality), as written there."""
    from pixseq import zoo

    entry = zoo.entries().get(name)
    return str(entry.quality.get(key, default)) if entry else default


def one_per_class(limit: int = 300, classes: int = 10):
    """The first held-out Fashion-MNIST test image of each class, in class order: (images, labels)."""
    from pixseq.data import load_data

    test = load_data("fashion-mnist:test", limit=limit)
    picks = [int(np.flatnonzero(test.labels == c)[0]) for c in range(classes)]
    return [test.images[i] for i in picks], np.asarray(test.labels)[picks]


class Clock:
    """Wall seconds since creation (the sections report what each part took)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.t0
