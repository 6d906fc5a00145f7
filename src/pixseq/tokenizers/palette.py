"""Palette tokenizer: each pixel becomes the index of its nearest colour in a k-means palette.

iGPT (Chen et al. 2020, section 3.1) clusters (R, G, B) pixel values with k-means into
k = 512 colours (a 9-bit vocabulary) and represents a pixel by its cluster index, which
shortens the sequence 3x compared with per-channel tokens while keeping colours
faithful. Distances are Euclidean in RGB, as there.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pixseq.errors import PixseqError
from pixseq.models.base import check_images, check_token_grid


def fit_palette(pixels: np.ndarray, k: int = 512, seed: int = 0, max_pixels: int = 200_000) -> torch.Tensor:
    """Seeded mini-batch k-means over uint8 ``(N, 3)`` RGB pixels -> ``(k, 3)`` float palette in [0, 1].

    At most ``max_pixels`` pixels (a seeded random subset) are clustered. When the data hold
    fewer than ``k`` distinct colours, the palette is those colours exactly, padded by
    repeating the last one (the duplicates are never chosen by :meth:`PaletteTokenizer.encode`,
    which takes the first nearest entry). The result is sorted by luminance so nearby
    indices look alike, which makes token grids easier to read.
    """
    from sklearn.cluster import MiniBatchKMeans

    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.shape[1] != 3 or pixels.shape[0] == 0:
        raise PixseqError(f"palette fitting needs (N, 3) RGB pixels, got shape {pixels.shape}")
    if k < 1:
        raise PixseqError(f"palette size must be >= 1, got {k}")
    rng = np.random.default_rng(seed)
    if len(pixels) > max_pixels:
        pixels = pixels[rng.choice(len(pixels), max_pixels, replace=False)]
    data = pixels.astype(np.float64) / 255.0
    unique = np.unique(data, axis=0)
    if len(unique) <= k:
        centres = np.concatenate([unique, np.repeat(unique[-1:], k - len(unique), axis=0)])
    else:
        # scikit-learn takes seeds below 2**32 only; --seed allows up to 2**63-1 (smaller ones unchanged)
        km = MiniBatchKMeans(n_clusters=k, random_state=seed % 2**32, batch_size=max(1024, 4 * k), n_init=3)
        centres = km.fit(data).cluster_centers_
    centres = np.clip(centres, 0.0, 1.0)
    order = np.argsort(centres @ np.array([0.299, 0.587, 0.114]), kind="stable")
    return torch.from_numpy(centres[order]).float()


class PaletteTokenizer(nn.Module):
    """Images ``(B, 3, H, W)`` in [0, 1] <-> colour-index grids ``(B, H, W)``; one token per pixel."""

    def __init__(self, palette_size: int = 512) -> None:
        super().__init__()
        # A fixed placeholder (a grey ramp) until the palette is fitted or loaded; the
        # constructor must not depend on data.
        ramp = torch.linspace(0.0, 1.0, palette_size)
        self.register_buffer("palette", ramp[:, None].repeat(1, 3))  # (K, 3)

    @property
    def vocab_size(self) -> int:
        return self.palette.size(0)

    def set_palette(self, palette: torch.Tensor) -> None:
        """Replace the palette with a fitted ``(K, 3)`` one in [0, 1] (K must not change)."""
        if palette.shape != self.palette.shape:
            raise ValueError(f"palette must have shape {tuple(self.palette.shape)}, got {tuple(palette.shape)}")
        self.palette.copy_(palette)

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        return height, width

    @torch.no_grad()
    def encode(self, images: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1] -> ``(B, H, W)`` long: index of the nearest colour."""
        check_images(images)
        if chunk < 1:
            raise PixseqError(f"chunk must be >= 1, got {chunk}")
        B, _, H, W = images.shape
        pix = images.permute(0, 2, 3, 1).reshape(-1, 3).to(self.palette)  # (B*H*W, 3)
        pal = self.palette
        pal_sq = (pal * pal).sum(1)  # (K,)
        out = torch.empty(pix.size(0), dtype=torch.long, device=pix.device)
        for s in range(0, pix.size(0), chunk):  # bound the (N, K) distance matrix
            p = pix[s:s + chunk]
            # |p - c|^2 = |p|^2 - 2 p.c + |c|^2; |p|^2 is the same for every c, so drop it
            out[s:s + chunk] = (pal_sq - 2.0 * p @ pal.T).argmin(1)
        return out.view(B, H, W)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, H, W)`` long -> ``(B, 3, H, W)`` float in [0, 1]."""
        check_token_grid(tokens, self.vocab_size)
        return self.palette[tokens.long()].permute(0, 3, 1, 2).contiguous()  # (B, H, W, 3) -> (B, 3, H, W)
