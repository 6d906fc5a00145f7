"""Helpers shared by CLI verbs: device and seed handling, notices."""
from __future__ import annotations

import random
import sys

import numpy as np
import torch

from pixseq.errors import PixseqError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; asking for cuda without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PixseqError("--device cuda requested but no CUDA GPU is available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def notice(message: str) -> None:
    """A one-line notice on stderr (not an error)."""
    sys.stderr.write(f"pixseq: {message}\n")
