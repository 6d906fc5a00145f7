"""Tiled inference for super-resolution nets: overlapping tiles blended so no seam shows.

A net that upscales 4x holds 64-channel maps of 16x the input's pixels: a whole 2000x2000
photo would need tens of GB. So the input is cut into overlapping tiles on a grid, each
tile runs through the net alone, and the results are blended:

* Tiles are ``tile x tile`` input pixels (what the net sees: the memory it needs), spread
  evenly so that neighbours overlap by at least ``overlap`` pixels and every tile is whole.
* Along each axis, a tile's weight is 1 in its middle and 0 near each edge it shares with
  a neighbour: the net saw zero padding there instead of the image, and for the 23-block
  x4plus that changes the output by tens of levels at the edge and still by ~10 levels 30
  pixels in (benchmarks/upscale_vs_realesrgan.py). Across the middle ``blend`` pixels of each
  overlap the two neighbours' weights cross with a raised cosine; the outer
  ``(overlap - blend) / 2`` pixels of the overlap, nearest each tile's own edge, get weight
  0. The two weights sum to exactly 1 at every pixel and the 2-D weight is the product of
  the axes', so the blend is a convex combination: no seam, no normalising pass. Real-ESRGAN's
  own tiler pastes tiles side by side with ``tile_pad`` (10) pixels of context.
* Tile rows are processed top to bottom and each band of finished output rows goes to a
  ``sink`` as soon as no later tile touches it: the float accumulator is one tile row high.

The tile size comes from a memory budget (:func:`tile_for_budget`, from the net's
``peak_floats_per_input_pixel``); :func:`is_out_of_memory` tells an allocation failure
from other errors, so the caller can retry with smaller tiles.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from pixseq.errors import PixseqError

#: Default overlap between neighbouring tiles in input pixels: 40 pixels of context on each
#: side of a 16-pixel blend (the x4plus net's output settles to ~1 level of the whole-image
#: pass about 40 pixels from a tile edge; benchmarks/upscale_vs_realesrgan.py measures it).
DEFAULT_OVERLAP = 96
#: Width of the cross-fade in the middle of each overlap, in input pixels.
DEFAULT_BLEND = 16
#: Smallest tile the out-of-memory retry goes down to.
MIN_TILE = 64


def axis_starts(length: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``length``, neighbours overlapping
    by at least ``overlap``, spread evenly, multiples of ``multiple`` (a net's pixel unshuffle)."""
    if length <= tile:
        return [0]
    if tile < 2 * overlap + multiple:
        raise PixseqError(f"tiles of {tile} pixels must be more than twice the overlap ({overlap}): give a larger "
                          f"--tile or a smaller --overlap")
    stride = tile - overlap
    n = 1 + math.ceil((length - tile) / stride)
    starts = [round(i * (length - tile) / (n - 1) / multiple) * multiple for i in range(n)]
    starts[-1] = length - tile  # (a multiple too: both are)
    return starts


def _ramp(t: torch.Tensor) -> torch.Tensor:
    """0 at t <= 0, 1 at t >= 1, a raised cosine between (so that ramp(t) + ramp(1 - t) = 1)."""
    return torch.sin(t.clamp(0, 1) * (math.pi / 2)) ** 2


def axis_weights(starts: list[int], tile: int, scale: int, blend: int = DEFAULT_BLEND) -> list[torch.Tensor]:
    """Each tile's blending weight along one axis, at the output resolution ((tile*scale,) each):
    a cross-fade ``blend`` pixels wide (at most half the overlap and half the stride) centred
    in each overlap."""
    n = len(starts)
    centres = (torch.arange(tile * scale, dtype=torch.float64) + 0.5) / scale  # output pixel centres, input units
    out = []
    for i, s in enumerate(starts):
        u = centres + s
        w = torch.ones_like(u)
        for j in (i - 1, i + 1):  # the overlap with each neighbour
            if not 0 <= j < n:
                continue
            a, b = max(s, starts[j]), min(s, starts[j]) + tile  # overlap [a, b)
            width = max(min(blend, (b - a) / 2, abs(starts[j] - s) / 2), 1 / scale)  # the cross-fade
            centre = (a + b) / 2
            t = (u - (centre - width / 2)) / width  # 0 -> 1 across the ramp
            w = w * (_ramp(t) if j < i else _ramp(1 - t))
        out.append(w.float())
    return out


class TileBlender:
    """Blend tiles of a ``(C, H, W)`` input upscaled by ``scale`` and stream finished rows.

    ``run_tile(x) -> y``: the net on one tile, ``(1, C, h, w)`` -> ``(1, C', h*s, w*s)``.
    ``sink(rows)``: receives the output top to bottom as ``(C', n, W*s)`` float32 bands.
    """

    def __init__(self, run_tile: Callable[[torch.Tensor], torch.Tensor], scale: int, tile: int,
                 overlap: int = DEFAULT_OVERLAP, multiple: int = 1, blend: int = DEFAULT_BLEND) -> None:
        if tile % multiple:
            raise PixseqError(f"--tile must be a multiple of {multiple} for this model, got {tile}")
        self.run_tile, self.scale, self.tile, self.overlap, self.multiple = run_tile, scale, tile, overlap, multiple
        self.blend = blend

    def count(self, height: int, width: int) -> int:
        """How many tiles an image of this size takes."""
        return (len(axis_starts(height, self.tile, self.overlap, self.multiple))
                * len(axis_starts(width, self.tile, self.overlap, self.multiple)))

    def run(self, image: torch.Tensor, sink: Callable[[torch.Tensor], None],
            on_tile: Callable[[], None] | None = None) -> None:
        """Upscale ``image`` (C, H, W) tile by tile; ``on_tile`` after each (a progress bar)."""
        _, height, width = image.shape
        s = self.scale
        th, tw = min(self.tile, height), min(self.tile, width)
        ys = axis_starts(height, th, self.overlap, self.multiple)
        xs = axis_starts(width, tw, self.overlap, self.multiple)
        wy, wx = axis_weights(ys, th, s, self.blend), axis_weights(xs, tw, s, self.blend)
        carry: torch.Tensor | None = None  # the previous band's rows below this band's top (overlap)
        for r, y in enumerate(ys):
            band = None
            for c, x in enumerate(xs):
                out = self.run_tile(image[None, :, y:y + th, x:x + tw])[0].float()  # (C', th*s, tw*s)
                if band is None:
                    band = out.new_zeros(out.shape[0], th * s, width * s)
                band[:, :, x * s:(x + tw) * s].addcmul_(out, wx[c].to(out.device)[None, None, :])
                if on_tile is not None:
                    on_tile()
            band.mul_(wy[r].to(band.device)[None, :, None])
            if carry is not None:
                band[:, :carry.shape[1]] += carry
            # rows above the next band's top are finished: no later tile reaches them
            finished = (ys[r + 1] - y) * s if r + 1 < len(ys) else th * s
            sink(band[:, :finished])
            carry = band[:, finished:].clone()  # (only the overlap: the band itself goes before the next)
            del band


def tile_for_budget(peak_floats_per_pixel: float, budget_bytes: float, element_bytes: int,
                    multiple: int = 1, overlap: int = DEFAULT_OVERLAP, margin: float = 1.25) -> int:
    """The largest tile (a multiple of 8 and of ``multiple``) whose forward pass fits
    ``budget_bytes``: ``tile^2 * peak_floats_per_pixel * element_bytes * margin``."""
    step = 8 * multiple // math.gcd(8, multiple)
    side = math.sqrt(budget_bytes / (peak_floats_per_pixel * element_bytes * margin))
    tile = int(side // step) * step
    return max(tile, 2 * overlap + step)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure (CUDA, MPS or the CPU allocator)."""
    if isinstance(exc, getattr(torch, "OutOfMemoryError", ())) or isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                              or "Failed to allocate" in text)
