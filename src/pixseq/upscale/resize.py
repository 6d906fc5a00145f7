"""Lanczos-3 resizing that streams rows: the ``--outscale`` step of the upscaler.

An ``--outscale`` other than the net's own scale resizes the net's output, as Real-ESRGAN
does (there with OpenCV's Lanczos-4 on the finished image). Here the net's output arrives a
band of rows at a time from the tiler, and :class:`StreamingResize` resizes it as it comes:
each band horizontally at once, and vertically as soon as the rows an output row needs have
arrived. So the full-size intermediate (16x the input's pixels for a 4x net) never exists,
and ``--outscale 2`` can serve an image whose 4x would be past the pixel limit.

The filter and its support follow Pillow's ``Image.resize(..., Image.LANCZOS)``
(``Resample.c``: a = 3 taps, support scaled by the reduction factor when shrinking, pixel
centres at ``i + 0.5``, each output's weights normalised to sum 1), computed here in float64
and applied in float32, without Pillow's 8-bit rounding between the two passes.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

_A = 3.0  # Lanczos lobes (Pillow's LANCZOS)


def _lanczos(x: np.ndarray) -> np.ndarray:
    out = np.sinc(x) * np.sinc(x / _A)
    return np.where(np.abs(x) < _A, out, 0.0)


def lanczos_taps(in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Per output index: the input indices it reads and their weights.

    Returns ``(index, weight, last)``: ``index`` LongTensor (out, K) (taps past an output's
    own support point at its first input with weight 0), ``weight`` float32 (out, K) summing
    to 1 per row, and ``last`` (out,) the largest input index each output row needs.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = _A * filterscale
    centre = (np.arange(out_size) + 0.5) * scale
    lo = np.maximum((centre - support + 0.5).astype(np.int64), 0)
    hi = np.minimum((centre + support + 0.5).astype(np.int64), in_size)
    taps = int((hi - lo).max())
    k = np.arange(taps)
    idx = lo[:, None] + k[None, :]
    w = _lanczos((idx - centre[:, None] + 0.5) / filterscale)
    w = np.where(idx < hi[:, None], w, 0.0)
    w = w / w.sum(axis=1, keepdims=True)
    idx = np.where(idx < hi[:, None], idx, lo[:, None])
    return torch.from_numpy(idx), torch.from_numpy(w.astype(np.float32)), hi - 1


def resize_rows(x: torch.Tensor, index: torch.Tensor, weight: torch.Tensor, dim: int) -> torch.Tensor:
    """Resample ``x`` along ``dim`` with taps ``(index, weight)`` of shape (out, K)."""
    x = x.movedim(dim, -1)
    out_size, taps = index.shape
    gathered = x[..., index.reshape(-1).to(x.device)].reshape(*x.shape[:-1], out_size, taps)  # (..., out, K)
    y = (gathered * weight.to(x.device, x.dtype)).sum(-1)
    return y.movedim(-1, dim)


class StreamingResize:
    """Resize a ``(C, H, W)`` image that arrives as bands of rows to ``(C, out_h, out_w)``.

    ``write(rows)`` takes the next ``(C, n, W)`` rows; finished output rows go to ``emit``
    as ``(C, m, out_w)`` float tensors, in order. Memory: one band plus the few rows the
    vertical filter looks back at, never the whole input.
    """

    #: output columns resampled at a time (bounds the (C, n, cols, K) gather tensor)
    _COLS = 2048

    def __init__(self, in_hw: tuple[int, int], out_hw: tuple[int, int],
                 emit: Callable[[torch.Tensor], None]) -> None:
        self.in_hw, self.out_hw, self.emit = in_hw, out_hw, emit
        self.h_index, self.h_weight, _ = lanczos_taps(in_hw[1], out_hw[1])
        self.v_index, self.v_weight, self.v_last = lanczos_taps(in_hw[0], out_hw[0])
        self.buffer: torch.Tensor | None = None  # horizontally resized rows [self.first, ...)
        self.first = 0  # input row index of buffer row 0
        self.done = 0  # output rows emitted

    def write(self, rows: torch.Tensor) -> None:
        rows = self._horizontal(rows.float())
        self.buffer = rows if self.buffer is None else torch.cat([self.buffer, rows], 1)
        have = self.first + self.buffer.shape[1]  # input rows received so far
        ready = int(np.searchsorted(self.v_last, have - 1, side="right"))  # output rows all of whose taps arrived
        if ready > self.done:
            idx = self.v_index[self.done:ready] - self.first
            self.emit(resize_rows(self.buffer, idx, self.v_weight[self.done:ready], dim=1))
            self.done = ready
        if self.done < self.out_hw[0]:  # drop the rows no later output row reads
            keep = int(self.v_index[self.done:].min()) - self.first
            self.buffer, self.first = self.buffer[:, keep:], self.first + keep
        else:
            self.buffer = None

    def _horizontal(self, rows: torch.Tensor) -> torch.Tensor:
        parts = [resize_rows(rows, self.h_index[a:a + self._COLS], self.h_weight[a:a + self._COLS], dim=2)
                 for a in range(0, self.out_hw[1], self._COLS)]
        return torch.cat(parts, 2)


def out_size(height: int, width: int, outscale: float) -> tuple[int, int]:
    """The output size for ``outscale``: each side rounded to the nearest pixel, at least 1."""
    return max(1, int(math.floor(height * outscale + 0.5))), max(1, int(math.floor(width * outscale + 0.5)))
