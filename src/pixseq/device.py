"""Where to run: the one place that turns ``auto|cpu|cuda`` into a torch device."""
from __future__ import annotations

import torch

from pixseq.errors import PixseqError


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` -> cuda when available, else cpu; asking for cuda without one is an error."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PixseqError("CUDA requested (--device cuda) but no CUDA GPU is available")
    return device
