"""Latent interpolation: walk between two latents and look at what the generator draws.

A row of ``steps`` images from ``G(z(t))``, ``t`` evenly spaced in [0, 1], between two
latents drawn from the prior. For a normal prior the path is spherical (slerp: White 2016,
"Sampling generative networks"), which keeps every point at a typical norm; for the uniform
cube it is the straight line, which stays inside the cube. Smooth rows without sudden jumps
say the generator learned a continuous map, not a lookup of memorised images.
"""
from __future__ import annotations

import torch

from pixseq.errors import PixseqError


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of rows ``a``, ``b`` ``(R, D)`` at fractions ``t`` ``(S,)`` -> ``(R, S, D)``."""
    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((an * bn).sum(1).clamp(-1 + 1e-7, 1 - 1e-7))[:, None, None]  # (R, 1, 1)
    t = t[None, :, None]  # (1, S, 1)
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a[:, None] + (torch.sin(t * omega) / so) * b[:, None]


@torch.no_grad()
def interpolation_grid(model, rows: int, steps: int, labels=None, generator: torch.Generator | None = None,
                       temperature: float = 1.0) -> torch.Tensor:
    """``(rows * steps, 3, S, S)`` images, row by row: each row walks from one latent to another.
    A conditional model keeps one class per row (``labels``: one, or one per row; default:
    the classes in turn)."""
    if not 2 <= steps <= 64:
        raise PixseqError(f"--interpolate takes 2..64 steps per row, got {steps}")
    if not hasattr(model, "sample_latent"):
        raise PixseqError(f"latent interpolation needs a generator from a latent (a gan model), not a {model.kind} model")
    a, b = model.sample_latent(rows, generator, temperature), model.sample_latent(rows, generator, temperature)
    t = torch.linspace(0, 1, steps, device=a.device)
    if model.config.prior == "uniform":
        z = a[:, None] + t[None, :, None] * (b - a)[:, None]  # (R, S, D): straight, inside the cube
    else:
        z = slerp(a, b, t)
    if model.num_classes:
        from pixseq.models.base import class_labels

        per_row = torch.arange(rows) % model.num_classes if labels is None else class_labels(model, labels)
        if per_row.numel() == 1:
            per_row = per_row.expand(rows)
        labels = per_row.repeat_interleave(steps)
    return model(z.reshape(rows * steps, -1), labels)
