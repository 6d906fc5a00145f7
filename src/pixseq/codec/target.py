"""Coding an image at a target rate: each codec's best setting whose file fits a bits-per-pixel budget.

``pixseq bench codecs`` sweeps fixed settings; a user comparing codecs on one image asks
instead "what does each codec give me at 0.5 bpp?". This module answers that with real
bytes: for JPEG / WebP / AVIF the highest Pillow quality whose file is within the budget
(bisection: file size grows with quality, up to small wiggles that bisection tolerates),
for the pixseq codec the smallest downscale factor (``scale``) within it.

The pixseq codec's rate is searched without a sweep, because every try runs the prior
over all tokens: a first cheap try codes the image at the scale where it fits one tile,
its bits per token predict the rate of every finer scale (the header's bytes, plus
tokens x bits/token), and each further try, at the scale the latest measurement predicts,
corrects the estimate. A ``max_tokens`` bound keeps the work of one call in hand (a server
answering many users); the scale it forces is stated in the result.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pixseq.errors import PixseqError

#: Pillow's JPEG / WebP / AVIF qualities searched (1 = smallest file).
QUALITIES = (1, 100)
#: Most codings of one pixseq search (each is a full pass of the prior over the tokens).
MAX_TRIES = 6


@dataclass
class AtRate:
    """One codec's answer to a bits-per-pixel budget: its file, the decoded image, the setting."""

    codec: str
    setting: str
    data: bytes
    decoded: np.ndarray
    bpp: float
    #: False when even the codec's lowest-rate setting is over the budget (then this is that setting)
    within: bool
    notes: list[str] = field(default_factory=list)


def check_target(bpp: float) -> float:
    """A bits-per-pixel budget: a finite number > 0 (24 bpp is raw RGB; more is allowed, never needed)."""
    if not 0 < bpp < math.inf:  # written so that NaN fails too
        raise PixseqError(f"target bits per pixel must be a finite number > 0, got {bpp}")
    return float(bpp)


def _bpp(data: bytes, image: np.ndarray) -> float:
    return len(data) * 8 / (image.shape[0] * image.shape[1])


def classic_at_bpp(image: np.ndarray, codec: str, target: float) -> AtRate:
    """JPEG / WebP / AVIF (``codec`` as in :data:`pixseq.codec.compare.CLASSIC`) at the highest
    quality whose file is within ``target`` bits per pixel (quality 1 when none is)."""
    from pixseq.codec.compare import CLASSIC, classic_codecs, classic_round_trip

    target = check_target(target)
    if codec not in CLASSIC:
        raise PixseqError(f"unknown codec {codec!r} (known: {', '.join(CLASSIC)})")
    if codec not in classic_codecs():
        raise PixseqError(f"this Pillow cannot write {codec.upper()} images")
    tried: dict[int, tuple[bytes, np.ndarray]] = {}

    def attempt(q: int) -> float:
        if q not in tried:
            data, decoded, _, _ = classic_round_trip(image, codec, q)
            tried[q] = (data, decoded)
        return _bpp(tried[q][0], image)

    lo, hi = QUALITIES
    if attempt(lo) > target:
        data, decoded = tried[lo]
        return AtRate(codec, f"q{lo}", data, decoded, _bpp(data, image), False,
                      [f"{codec}: even quality {lo} is {_bpp(data, image):.3f} bpp, over the target {target:g}"])
    while lo < hi:  # invariant: quality lo is within the target
        mid = (lo + hi + 1) // 2
        if attempt(mid) <= target:
            lo = mid
        else:
            hi = mid - 1
    data, decoded = tried[lo]
    return AtRate(codec, f"q{lo}", data, decoded, _bpp(data, image), True)


def one_tile_scale(model, height: int, width: int) -> int:
    """The smallest downscale factor at which an ``height x width`` image fits one of the
    model's tiles (the cheapest coding, and the lowest rate but for the header)."""
    th, tw = (int(v) for v in model.image_size)
    return max(1, -(-height // th), -(-width // tw))


def _tokens(model, height: int, width: int, scale: int) -> int:
    from pixseq.codec.codec import plan

    label = 0 if int(getattr(model, "num_classes", 0) or 0) else -1  # the count does not depend on it
    return plan(model, height, width, scale, label=label, model_id=bytes(16)).num_tokens


def _finest_scale(model, height: int, width: int, top: int, max_tokens: int | None) -> int:
    """The smallest scale (1..top) whose token count is within ``max_tokens``."""
    if max_tokens is None:
        return 1
    lo, hi = 1, top
    while lo < hi:  # token counts fall as the scale grows
        mid = (lo + hi) // 2
        if _tokens(model, height, width, mid) <= max_tokens:
            hi = mid
        else:
            lo = mid + 1
    return lo


def pixseq_at_bpp(image: np.ndarray, model, target: float, model_dir: str | None = None, *,
                  max_tokens: int | None = None, label: int | None = None, name: str = "pixseq") -> AtRate:
    """The pixseq codec at the smallest downscale factor whose ``.pxs`` file (header and the
    recorded ``model_dir`` included) is within ``target`` bits per pixel; at most
    ``max_tokens`` tokens coded (None: no bound). The decoded image is decoded from the bytes."""
    from pixseq.codec.codec import MAX_SCALE, compress_with_stats, decompress

    target = check_target(target)
    h, w = image.shape[:2]
    coarse = min(MAX_SCALE, one_tile_scale(model, h, w))
    finest = _finest_scale(model, h, w, coarse, max_tokens)
    notes: list[str] = []
    tries: dict[int, tuple[bytes, float]] = {}

    def attempt(s: int) -> float:
        data, stats = compress_with_stats(image, model, model_dir, scale=s, label=label)
        tries[s] = (data, stats.payload_bits / max(stats.tokens, 1))
        return stats.bpp

    scale = coarse
    for _ in range(MAX_TRIES):
        attempt(scale)
        fits = [s for s in tries if _bpp(tries[s][0], image) <= target]
        # the answer is finer than the finest fit so far and coarser than every scale that was over
        lower = max((s for s in tries if s not in fits), default=finest - 1) + 1
        upper = min(fits) - 1 if fits else coarse
        guess = _predict_scale(model, h, w, target, tries[scale][0], tries[scale][1], finest, coarse)
        guess = min(max(guess, lower), upper)
        if lower > upper or guess in tries:
            break
        scale = guess
    within = sorted(s for s in tries if _bpp(tries[s][0], image) <= target)
    best = within[0] if within else max(tries)
    data = tries[best][0]
    if not within:
        notes.append(f"{name}: even scale {best} is {_bpp(data, image):.3f} bpp, over the target {target:g}")
    elif best == finest > 1:
        notes.append(f"{name}: coded at scale {finest}: a finer scale would code more than {max_tokens} "
                     "tokens, the bound per image here")
    return AtRate(name, f"scale{best}", data, decompress(data, model, model_dir), _bpp(data, image),
                  bool(within), notes)


def _predict_scale(model, h: int, w: int, target: float, data: bytes, bits_per_token: float,
                   finest: int, coarse: int) -> int:
    """The smallest scale in finest..coarse whose predicted rate (this file's header + the
    scale's tokens x ``bits_per_token``) is within ``target``; ``coarse`` when none is."""
    from pixseq.codec.container import header_size

    header_bits = 8 * header_size(data)
    budget = target * h * w - header_bits
    lo, hi = finest, coarse
    while lo < hi:  # the predicted rate falls as the scale grows
        mid = (lo + hi) // 2
        if _tokens(model, h, w, mid) * bits_per_token <= budget:
            hi = mid
        else:
            lo = mid + 1
    return lo
