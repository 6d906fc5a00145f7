"""Image grids: many uint8 images -> one uint8 image, for CLIs, TensorBoard and reports."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image


def make_grid(images: Sequence[np.ndarray], ncol: int | None = None, pad: int = 2,
              scale: int = 1, background: int = 255) -> np.ndarray:
    """Tile ``(H, W, 3)`` uint8 images row by row into one image.

    Images of different sizes are placed in cells of the largest size (top-left aligned).
    ``scale`` enlarges every image by nearest-neighbour so tiny images (28x28) stay legible.
    """
    if len(images) == 0:
        raise ValueError("make_grid needs at least one image")
    ims = [np.asarray(im, dtype=np.uint8) for im in images]
    ims = [np.repeat(im[..., None], 3, axis=-1) if im.ndim == 2 else im for im in ims]
    if scale > 1:
        ims = [np.repeat(np.repeat(im, scale, axis=0), scale, axis=1) for im in ims]
    ncol = ncol or int(np.ceil(np.sqrt(len(ims))))
    nrow = int(np.ceil(len(ims) / ncol))
    ch = max(im.shape[0] for im in ims)
    cw = max(im.shape[1] for im in ims)
    out = np.full((nrow * ch + (nrow + 1) * pad, ncol * cw + (ncol + 1) * pad, 3), background, np.uint8)
    for i, im in enumerate(ims):
        r, c = divmod(i, ncol)
        y, x = pad + r * (ch + pad), pad + c * (cw + pad)
        out[y:y + im.shape[0], x:x + im.shape[1]] = im
    return out


def upscale_nearest(image: np.ndarray, min_side: int = 96) -> np.ndarray:
    """Nearest-neighbour enlarge a small image so its short side is at least ``min_side``."""
    short = min(image.shape[:2])
    if short >= min_side:
        return image
    f = int(np.ceil(min_side / short))
    return np.asarray(Image.fromarray(image).resize((image.shape[1] * f, image.shape[0] * f), Image.NEAREST))


def legible_scale(height: int, min_side: int = 84) -> int:
    """Integer nearest-neighbour zoom so tiny images (16x16, 28x28) stay legible in a grid."""
    return max(1, -(-min_side // max(1, height)))


def to_uint8_batch(images) -> list[np.ndarray]:
    """``(B, 3, H, W)`` float in [0, 1] -> list of ``(H, W, 3)`` uint8."""
    from pixseq.io import to_uint8

    return [to_uint8(im) for im in images]
