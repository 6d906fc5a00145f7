"""Degradations that turn any clean image into a training pair for restoration, on the fly.

Images are float ``(B, C, H, W)`` in [0, 1]; every function draws from ``generator`` (or the
global torch RNG, which the Trainer checkpoints, so resumed runs degrade exactly alike):

* ``denoise``: additive Gaussian noise of std ``strength`` (default 0.2), clamped to [0, 1];
* ``inpaint``: one random square hole per image, of side ``strength`` x the image side
  (default 0.4), filled with mid-grey; returns the mask of known pixels (1 = known);
* ``colorize``: the BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` (one channel);
* ``superres``: area downsampling by the integer factor ``strength`` (default 2), then bicubic
  upsampling back to the size (so G maps same-size images; ``pixseq restore`` upsamples a
  low-resolution input the same way).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pixseq.errors import PixseqError

DEFAULT_STRENGTH = {"denoise": 0.2, "inpaint": 0.4, "colorize": 0.0, "superres": 2.0}


def strength_of(task: str, strength: float | None) -> float:
    """The task's degradation strength (its default when None), checked."""
    s = DEFAULT_STRENGTH[task] if strength is None or strength == 0 else float(strength)
    if task == "denoise" and not 0 < s <= 1:
        raise PixseqError(f"denoise --strength is the noise std in (0, 1], got {s}")
    if task == "inpaint" and not 0 < s < 1:
        raise PixseqError(f"inpaint --strength is the hole's side as a fraction of the image in (0, 1), got {s}")
    if task == "superres" and (s != int(s) or not 2 <= s <= 8):
        raise PixseqError(f"superres --strength is the integer scale factor 2..8, got {s}")
    return s


def luma(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` -> ``(B, 1, H, W)``, ITU-R BT.601 weights."""
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize to ``size``, clamped to [0, 1]."""
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False).clamp(0, 1)


def degrade(task: str, x: torch.Tensor, strength: float | None = None,
            generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(degraded, mask)`` for clean images ``x``; ``mask`` is None except for inpainting."""
    s = strength_of(task, strength)
    B, _, H, W = x.shape
    if task == "denoise":
        noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        return (x + s * noise).clamp(0, 1), None
    if task == "inpaint":
        side_h, side_w = max(1, round(s * H)), max(1, round(s * W))
        top = (torch.rand(B, device=x.device, generator=generator) * (H - side_h + 1)).long()
        left = (torch.rand(B, device=x.device, generator=generator) * (W - side_w + 1)).long()
        rows = torch.arange(H, device=x.device).view(1, H, 1)
        cols = torch.arange(W, device=x.device).view(1, 1, W)
        hole = ((rows >= top.view(B, 1, 1)) & (rows < (top + side_h).view(B, 1, 1))
                & (cols >= left.view(B, 1, 1)) & (cols < (left + side_w).view(B, 1, 1)))
        mask = (~hole).unsqueeze(1).to(x.dtype)  # (B, 1, H, W), 1 = known
        return x * mask + 0.5 * (1 - mask), mask
    if task == "colorize":
        if x.size(1) != 3:
            raise PixseqError("colorize needs colour images")
        return luma(x), None
    if task == "superres":
        f = int(s)
        if H % f or W % f:
            raise PixseqError(f"superres x{f} needs images whose sides are multiples of {f}, got {W}x{H}")
        return upsample(F.avg_pool2d(x, f), (H, W)), None
    raise PixseqError(f"unknown restoration task {task!r}")
