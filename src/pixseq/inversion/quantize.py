"""Quantising a latent z to a few bits per coordinate: QSGD and plain uniform scalar quantisation.

* **QSGD** (Alistarh, Grubic, Li, Tomioka & Vojnovic, "QSGD: Communication-Efficient SGD
  via Gradient Quantization and Encoding", NeurIPS 2017): with ``s`` levels,
  ``Q_s(v)_i = ||v||_2 * sgn(v_i) * xi_i / s`` where ``xi_i`` is ``l`` or ``l + 1`` for
  ``l = floor(s |v_i| / ||v||_2)``, rounded up with probability ``s |v_i| / ||v||_2 - l``
  (stochastic rounding: unbiased, ``E[Q_s(v)] = v``). pixseq's ``bits = b`` means ``b`` bits
  of magnitude level, ``s = 2**b - 1`` (levels ``0 .. s``), plus the sign: the signed level
  ``sgn(v_i) * xi_i`` in ``-s .. s`` is the symbol that is entropy-coded, and the norm travels
  as a float32. QSGD was designed for averaging gradients, where unbiasedness matters; for
  compressing one vector its random rounding only adds error (``uniform`` is the deterministic
  alternative, compare both).
* **uniform**: ``2**b`` evenly spaced levels on ``[-r, r]`` with ``r = max |z_i|`` (a float32),
  nearest-level rounding; ``b = 1`` keeps only the signs.

**What the founding study's code did.** It coded QSGD's levels with an Elias code, which is
defined for positive integers only, and its code gave level 0 the same codeword as level 1:
every level-0 coordinate decodes as level 1. With ``s = 1`` (1 bit) every coordinate then
decodes as ``||z|| * sgn(z_i)`` and at 2 bits (``s = 3``) almost every one does (a level of 2 or
more needs ``|z_i| > ||z|| / 3``, about 3.3 standard deviations for a 100-d Gaussian z): only the
signs of z survive. It also never counted the bits. :func:`study_elias` reproduces both — what
its decoder returned and how many bits its Elias code would have spent (Elias gamma,
``2 floor(log2 n) + 1`` bits for ``n``; a sign bit per coordinate; 32 for the norm) — so the
study's rows can be shown beside pixseq's, which entropy-codes the true levels and counts
every bit of the file (:mod:`pixseq.codec.latent`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pixseq.errors import PixseqError

QUANTIZERS = ("qsgd", "uniform")
MIN_BITS, MAX_BITS = 1, 16


@dataclass(frozen=True)
class Quantized:
    """A quantised latent: integer ``symbols`` (the latent's shape, int64), the float32
    ``scale`` (QSGD: ``||z||_2``; uniform: ``r``) and how they were made."""

    symbols: np.ndarray
    scale: float
    quantizer: str
    bits: int

    @property
    def alphabet(self) -> tuple[int, int]:
        """The smallest and largest symbol the quantiser can give."""
        return symbol_range(self.quantizer, self.bits)

    def latent(self) -> torch.Tensor:
        """The dequantised latent, float32, of the symbols' shape."""
        return dequantize(self.symbols, self.scale, self.quantizer, self.bits)


def check_bits(bits, quantizer: str = "qsgd") -> int:
    """``bits`` as an int in 1..16 and ``quantizer`` one of :data:`QUANTIZERS`, or a one-line error."""
    if quantizer not in QUANTIZERS:
        raise PixseqError(f"unknown quantizer {quantizer!r} (known: {', '.join(QUANTIZERS)})")
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not MIN_BITS <= bits <= MAX_BITS:
        raise PixseqError(f"--bits must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits!r}")
    return int(bits)


def symbol_range(quantizer: str, bits: int) -> tuple[int, int]:
    """Inclusive symbol range: QSGD ``-s .. s`` with ``s = 2**bits - 1``; uniform ``0 .. 2**bits - 1``."""
    top = 2 ** check_bits(bits, quantizer) - 1
    return (-top, top) if quantizer == "qsgd" else (0, top)


def _float32(value: float) -> float:
    """``value`` rounded to float32, as the file stores it (the decoder sees exactly this)."""
    return float(np.float32(value))


def quantize(z: torch.Tensor, bits: int, quantizer: str = "qsgd", seed: int = 0) -> Quantized:
    """Quantise one latent ``z`` (any shape) with ``bits`` bits; QSGD's random rounding is
    drawn from ``seed`` (the same seed gives the same file)."""
    bits = check_bits(bits, quantizer)
    v = z.detach().double().cpu().reshape(-1)
    if not torch.isfinite(v).all():
        raise PixseqError("the latent holds NaN or infinite values; nothing to quantise")
    top = 2 ** bits - 1
    if quantizer == "qsgd":
        norm = _float32(float(v.norm()))
        if norm == 0.0:
            return Quantized(np.zeros(tuple(z.shape), np.int64), 0.0, quantizer, bits)
        scaled = v.abs() / norm * top  # in [0, s]
        low = scaled.floor()
        rng = torch.Generator().manual_seed(int(seed))
        up = torch.rand(v.shape, generator=rng, dtype=torch.float64) < (scaled - low)
        levels = (low + up.double()).clamp(0, top)
        symbols = (torch.sign(v) * levels).long()
        return Quantized(symbols.reshape(z.shape).numpy(), norm, quantizer, bits)
    r = _float32(float(v.abs().max()))
    if r == 0.0:
        return Quantized(np.full(tuple(z.shape), top // 2, np.int64), 0.0, quantizer, bits)
    index = ((v + r) / (2 * r) * top).round().clamp(0, top).long()
    return Quantized(index.reshape(z.shape).numpy(), r, quantizer, bits)


def dequantize(symbols: np.ndarray, scale: float, quantizer: str, bits: int) -> torch.Tensor:
    """The latent that ``symbols`` and ``scale`` stand for, float32."""
    top = 2 ** check_bits(bits, quantizer) - 1
    s = torch.from_numpy(np.asarray(symbols, dtype=np.int64)).double()
    if quantizer == "qsgd":
        out = s * (scale / top)
    else:
        out = -scale + s * (2 * scale / top) if top else torch.zeros_like(s)
    return out.float()


def elias_gamma_bits(n: np.ndarray) -> np.ndarray:
    """Length in bits of the Elias gamma code of each positive integer in ``n``: ``2 floor(log2 n) + 1``."""
    n = np.asarray(n, dtype=np.int64)
    if (n < 1).any():
        raise ValueError("Elias gamma codes positive integers only")
    return 2 * np.floor(np.log2(n)).astype(np.int64) + 1


def study_elias(z: torch.Tensor, bits: int, seed: int = 0) -> tuple[torch.Tensor, int]:
    """What the founding study's Elias-coded QSGD gave for the latent ``z``: the latent its
    decoder returned (level 0 read back as level 1, with the sign of ``z_i`` its code sent for
    every coordinate) and the bits its code would have taken (32 for the norm, then per
    coordinate a sign bit and the Elias gamma code of the level, level 0 coded as 1)."""
    q = quantize(z, bits, "qsgd", seed)
    levels = np.abs(q.symbols)
    sign = np.where(z.detach().cpu().numpy() < 0, -1, 1)
    merged = np.maximum(levels, 1)
    used = 32 + int(levels.size + elias_gamma_bits(merged).sum())
    return dequantize(sign * merged, q.scale, q.quantizer, q.bits), used
