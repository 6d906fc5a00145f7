"""Sliding-window sampling: a prior trained on ``h x w`` token windows samples a larger grid.

As in Esser et al. (2021, Sec. 3.2 and their high-resolution sampling script), every
token of the large ``H x W`` grid is drawn in raster order from the prior applied to an
``h x w`` window around it: the token sits as close to the window's centre as the grid
borders allow, and the window's raster-order prefix (the rows above it and the tokens to
its left, all already sampled) is the context.

The original recomputes the window's transformer pass for every token, which costs
``O(h*w)`` token-forwards per token. Here windows sit on a fixed lattice of anchors
(stride ``h/2`` x ``w/2`` by default); each token uses the lattice window that puts it
nearest the centre, and every window keeps a KV cache
(:class:`~pixseq.priors.sampling.IncrementalDecoder`). When sampling returns to a window,
the tokens sampled meanwhile by its neighbours are pushed in one parallel pass, and its
next token costs one cached step. Every grid token is pushed into a bounded number of
windows, so the cost is linear in ``H*W``. With ``H = h`` and ``W = w`` this is exactly
:func:`~pixseq.priors.sampling.sample` (same pushes, same draws).

Completion / inpainting in token space uses the same loop: positions in ``keep`` take
the given token instead of a draw, so later tokens are conditioned on the kept region.
"""
from __future__ import annotations

import torch

from pixseq.errors import PixseqError
from pixseq.priors.gpt import GPT
from pixseq.priors.sampling import (IncrementalDecoder, as_tokens, check_cond, check_generator, check_num,
                                   check_options, choose, no_token_drawn)


def window_for(n: int, win: int, stride: int) -> list[int]:
    """For each index ``0..n-1``, the start of the lattice window (size ``win``) that holds it
    closest to the window's centre ``win // 2``; lattice = multiples of ``stride`` and ``n - win``."""
    if n < win:
        raise PixseqError(f"grid side {n} is smaller than the prior's window {win}")
    anchors = sorted({min(a, n - win) for a in range(0, n - win + stride, stride)} | {n - win})
    centre = win // 2
    out = []
    for i in range(n):
        fits = [a for a in anchors if 0 <= i - a < win]
        out.append(min(fits, key=lambda a: (abs(i - a - centre), a)))
    return out


class _Window:
    """One lattice window: its decoder and how much of its raster sequence it has seen."""

    def __init__(self, prior: GPT, num: int, cond: torch.Tensor | None, top: int, left: int) -> None:
        self.dec = IncrementalDecoder(prior, num, cond)
        self.top, self.left, self.pushed = top, left, 0

    def catch_up(self, grid: torch.Tensor, h: int, w: int, upto: int) -> None:
        """Push window tokens ``pushed..upto-1`` (already in ``grid``) in one pass."""
        if upto > self.pushed:
            win = grid[:, self.top:self.top + h, self.left:self.left + w].reshape(grid.size(0), -1)  # (B, h*w)
            # clamp: a failed draw (id V, see choose) must not reach the embedding; sliding_sample reports it
            self.dec.push(win[:, self.pushed:upto].clamp(max=self.dec.prior.config.vocab_size - 1))
            self.pushed = upto


@torch.no_grad()
def sliding_sample(prior: GPT, num: int, grid: tuple[int, int], window: tuple[int, int],
                   cond: torch.Tensor | None = None, keep: torch.Tensor | None = None,
                   keep_mask: torch.Tensor | None = None, stride: tuple[int, int] | None = None,
                   temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                   generator: torch.Generator | None = None, greedy: bool = False) -> torch.Tensor:
    """Sample ``num`` token grids of size ``grid = (H, W)``: ``(num, H, W)`` long.

    Args:
        prior: a GPT trained on row-major ``window = (h, w)`` grids (``h*w <= block_size``).
        cond: ``(num, Tc)`` / ``(num,)`` conditioning tokens, the same for every window.
        keep, keep_mask: ``(num, H, W)`` tokens and an ``(H, W)`` bool mask of positions to keep.
        stride: anchor lattice stride (default ``(max(1, h//2), max(1, w//2))``).
    """
    (H, W), (h, w) = grid, window
    if h * w > prior.config.block_size:
        raise PixseqError(f"window {w}x{h} exceeds the prior's context of {prior.config.block_size} tokens")
    if H < h or W < w:
        raise PixseqError(f"requested grid {W}x{H} is smaller than the prior's window {w}x{h}")
    check_num(num)
    check_options(temperature, top_k, top_p, greedy)
    device = prior.lm_head.weight.device
    check_generator(generator, device)
    cond = check_cond(prior, num, cond)
    sh, sw = stride or (max(1, h // 2), max(1, w // 2))
    rows, cols = window_for(H, h, sh), window_for(W, w, sw)
    out = torch.zeros(num, H, W, dtype=torch.long, device=device)
    mask = _keep_mask(keep, keep_mask, (H, W))
    if keep is not None:
        kept = torch.as_tensor(keep).to(device)
        if tuple(kept.shape) != (num, H, W):
            raise PixseqError(f"keep must be (num={num}, {H}, {W}), got {tuple(kept.shape)}")
        out[:, mask.to(device)] = as_tokens(kept[:, mask.to(device)], "keep", prior.config.vocab_size, device)
    windows: dict[tuple[int, int], _Window] = {}
    for i in range(H):
        top = rows[i]
        for key in [k for k in windows if k[0] != top]:  # windows of a finished band: free their caches
            del windows[key]
        for j in range(W):
            if bool(mask[i, j]):
                continue  # kept token: pushed lazily by the next catch_up
            left = cols[j]
            win = windows.get((top, left))
            if win is None:
                win = windows[(top, left)] = _Window(prior, num, cond, top, left)
            win.catch_up(out, h, w, (i - top) * w + (j - left))
            out[:, i, j] = choose(win.dec.next_logits(), temperature, top_k, top_p, generator, greedy)
    if int(out.max()) >= prior.config.vocab_size:  # one check per call (see _Window.catch_up)
        raise no_token_drawn()
    return out


def _keep_mask(keep: torch.Tensor | None, keep_mask: torch.Tensor | None, grid: tuple[int, int]) -> torch.Tensor:
    """The ``(H, W)`` bool mask of kept positions (all False without ``keep``), checked against the grid."""
    if keep_mask is None:
        if keep is not None:
            raise PixseqError("keep needs keep_mask: the (H, W) bool mask of the positions to keep")
        return torch.zeros(grid, dtype=torch.bool)
    mask = torch.as_tensor(keep_mask).cpu()
    if tuple(mask.shape) != grid:
        raise PixseqError(f"keep_mask must be {grid[0]}x{grid[1]}, got {tuple(mask.shape)}")
    if mask.any() and keep is None:
        raise PixseqError("keep_mask marks positions to keep, but no keep tokens were given")
    return mask.bool()


@torch.no_grad()
def sliding_sample_reference(prior: GPT, num: int, grid: tuple[int, int], window: tuple[int, int],
                             cond: torch.Tensor | None = None, stride: tuple[int, int] | None = None) -> torch.Tensor:
    """Greedy :func:`sliding_sample` without caches: a full window pass per token (tests only)."""
    (H, W), (h, w) = grid, window
    sh, sw = stride or (max(1, h // 2), max(1, w // 2))
    rows, cols = window_for(H, h, sh), window_for(W, w, sw)
    if cond is not None and cond.dim() == 1:
        cond = cond[:, None]
    out = torch.zeros(num, H, W, dtype=torch.long, device=prior.lm_head.weight.device)
    for i in range(H):
        for j in range(W):
            top, left = rows[i], cols[j]
            t = (i - top) * w + (j - left)
            seq = out[:, top:top + h, left:left + w].reshape(num, -1)[:, : t + 1]  # (B, t+1)
            out[:, i, j] = prior(seq, cond)[:, t].argmax(-1)
    return out
