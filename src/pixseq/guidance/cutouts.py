"""Random cut-outs with augmentations: what the guide looks at in each optimisation step.

As in the VQGAN-CLIP notebooks (Crowson 2021): each step takes ``cutn`` square crops of the
decoded image, of side ``min_size + (max_size - min_size) * u ** cut_pow`` (``u`` uniform;
``max_size`` the image's short side, ``min_size`` the guide's input size or the short side if
smaller), at uniform random positions, each resampled to the guide's input size. ``cut_pow >
1`` favours small crops (detail), ``< 1`` large ones (composition). Augmentations, drawn per
cut-out: horizontal flip, rotation about the crop's centre (replicated borders), brightness /
contrast / saturation jitter, and Gaussian noise of a random strength in ``[0, noise]``.

Unlike the anchor's loops (a crop, a resample and a chain of kornia warps per cut-out),
crop, resampling, flip and rotation are one affine map per cut-out, applied to the whole
batch by a single ``grid_sample``. Cut-outs much larger than the input are sampled from an
area-averaged copy of the image (a power-of-two factor), so that downscaling does not alias
(bilinear sampling alone would skip pixels). Every draw comes from one ``torch.Generator``:
the same seed gives the same cut-outs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class CutoutConfig:
    """How many cut-outs, how large, how augmented; ``chunk`` bounds memory (the guide sees
    ``chunk`` cut-outs at a time, each chunk's graph freed after its backward pass)."""

    cutn: int = 32
    cut_pow: float = 1.0
    flip: float = 0.5  # probability of a horizontal flip
    rotate: float = 15.0  # degrees, uniform in [-rotate, rotate]
    jitter: float = 0.05  # brightness / contrast / saturation, uniform in [-jitter, jitter]
    noise: float = 0.1  # Gaussian noise of std uniform in [0, noise]
    chunk: int = 8

    def __post_init__(self) -> None:
        if self.cutn < 1 or self.chunk < 1:
            raise ValueError(f"cutn and chunk must be >= 1, got {self.cutn} and {self.chunk}")
        if not (self.cut_pow > 0 and 0 <= self.flip <= 1 and self.rotate >= 0 and self.jitter >= 0
                and self.noise >= 0):  # written so that NaN fails too
            raise ValueError("cut_pow must be > 0, flip in [0, 1], rotate, jitter and noise >= 0")


@dataclass
class CutoutDraw:
    """One step's random draws for ``n`` cut-outs (all ``(n,)`` tensors, pixels for sizes)."""

    size: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    flip: torch.Tensor  # +1 or -1
    angle: torch.Tensor  # radians
    bright: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor
    noise: torch.Tensor


def draw_cutouts(cfg: CutoutConfig, height: int, width: int, out_size: int,
                 gen: torch.Generator | None) -> CutoutDraw:
    """The random part of one step: sizes, positions and augmentation strengths."""
    n = cfg.cutn
    max_size = min(height, width)
    min_size = min(height, width, out_size)
    u = lambda: torch.rand(n, generator=gen, dtype=torch.float64)  # noqa: E731
    size = (u() ** cfg.cut_pow * (max_size - min_size) + min_size).floor().clamp(min_size, max_size)
    x = (u() * (width - size + 1)).floor()
    y = (u() * (height - size + 1)).floor()
    flip = torch.where(u() < cfg.flip, -1.0, 1.0).double()
    angle = (u() * 2 - 1) * math.radians(cfg.rotate)
    b, c, s = ((u() * 2 - 1) * cfg.jitter for _ in range(3))
    return CutoutDraw(size, x, y, flip, angle, b, c, s, u() * cfg.noise)


def _theta(d: CutoutDraw, idx: slice, height: int, width: int) -> torch.Tensor:
    """``(n, 2, 3)`` affine maps from output coordinates to the image's (align_corners=False):
    crop box, then flip and rotation about the crop centre, in pixel units."""
    s, x, y = d.size[idx], d.x[idx], d.y[idx]
    cos, sin, flip = d.angle[idx].cos(), d.angle[idx].sin(), d.flip[idx]
    half = s / 2
    theta = torch.zeros(len(s), 2, 3, dtype=torch.float64)
    # input offset (pixels) = R(angle) @ diag(flip, 1) @ u * half, then / (W/2, H/2)
    theta[:, 0, 0] = cos * flip * half / (width / 2)
    theta[:, 0, 1] = -sin * half / (width / 2)
    theta[:, 1, 0] = sin * flip * half / (height / 2)
    theta[:, 1, 1] = cos * half / (height / 2)
    theta[:, 0, 2] = (x + half) / width * 2 - 1
    theta[:, 1, 2] = (y + half) / height * 2 - 1
    return theta


def make_cutouts(image: torch.Tensor, d: CutoutDraw, idx: slice, out_size: int,
                 gen: torch.Generator) -> torch.Tensor:
    """Cut-outs ``idx`` of ``d`` from ``image`` ``(1, 3, H, W)`` in [0, 1] -> ``(n, 3, S, S)``
    (or from ``n`` images, one cut-out each: training augmentation); differentiable in
    ``image``. Noise is drawn from ``gen`` here (None: torch's global RNG), chunk by chunk."""
    H, W = image.shape[-2:]
    theta = _theta(d, idx, H, W).to(image)
    sizes = d.size[idx]
    out = image.new_empty(len(sizes), 3, out_size, out_size)
    # area-average first where a cut-out is >= 2x the output: bilinear sampling would alias
    factors = (sizes / out_size).floor().clamp(min=1).log2().floor().exp2().long()
    for k in factors.unique().tolist():
        sel = (factors == k).nonzero().flatten()
        src = image if k == 1 else F.adaptive_avg_pool2d(image, (max(1, math.ceil(H / k)), max(1, math.ceil(W / k))))
        grid = F.affine_grid(theta[sel], [len(sel), 3, out_size, out_size], align_corners=False)
        src = src.expand(len(sel), -1, -1, -1) if src.shape[0] == 1 else src[sel]  # one image, or one each
        out[sel] = F.grid_sample(src, grid, mode="bilinear",
                                 padding_mode="border", align_corners=False)
    return _colour(out, d, idx, gen)


def _colour(x: torch.Tensor, d: CutoutDraw, idx: slice, gen: torch.Generator) -> torch.Tensor:
    """Brightness, contrast and saturation jitter, then Gaussian noise (per cut-out)."""
    def col(t: torch.Tensor) -> torch.Tensor:
        return t[idx].to(x).view(-1, 1, 1, 1)

    grey = x.mean(1, keepdim=True)  # (n, 1, S, S)
    x = grey + (x - grey) * (1 + col(d.saturation))
    mean = x.mean((1, 2, 3), keepdim=True)
    x = mean + (x - mean) * (1 + col(d.contrast)) + col(d.bright)
    noise = torch.randn(x.shape, generator=gen, dtype=torch.float32).to(x)
    return x + col(d.noise) * noise
