"""Random-number-generator state as plain tensors, so checkpoints load with ``weights_only=True``.

Exact resume needs every generator a training step may draw from: Python's ``random``,
NumPy's legacy global generator, torch's CPU generator and each CUDA device's generator.
Python's Mersenne-Twister state (625 words < 2**32) and NumPy's (624 words) fit in int64
tensors; torch states already are uint8 tensors.
"""
from __future__ import annotations

import contextlib
import random
from typing import Iterator

import numpy as np
import torch


def get_rng_state() -> dict:
    """Capture all global RNG states as tensors and numbers."""
    version, words, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {
        "python": {"version": int(version), "words": torch.tensor(words, dtype=torch.int64),
                   "gauss": gauss},
        "numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict) -> None:
    """Restore states captured by :func:`get_rng_state` (bitwise)."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(w) for w in py["words"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state((npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached"]))
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        # A checkpoint from a machine with more GPUs than this one restores what fits.
        for i, s in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.cpu(), i)


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (e.g. sampling images for TensorBoard) without disturbing training's RNG."""
    saved = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)
