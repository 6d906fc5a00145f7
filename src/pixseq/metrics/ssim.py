"""SSIM, MS-SSIM and the original study's ("thesis") SSIM settings.

SSIM follows Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error
visibility to structural similarity", IEEE TIP 13(4), 2004: local means, variances and
covariance under an 11x11 Gaussian window (sigma = 1.5), population covariance,
``C1 = (K1 L)^2``, ``C2 = (K2 L)^2`` with K1 = 0.01, K2 = 0.03 and L = ``data_range``.

*Borders*: the window statistics are computed only where the window lies entirely inside
the image ("valid" convolution), i.e. the ``(win_size - 1) / 2``-pixel border is dropped.
That is exactly scikit-image's ``structural_similarity``, which filters with padding and
then crops that border before averaging, so the values agree with it to rounding.
The score of an image pair is the mean of the SSIM map, averaged over channels.

MS-SSIM follows Wang, Simoncelli & Bovik, "Multi-scale structural similarity for image
quality assessment", Asilomar 2003, with the five published weights; its details (2x2
average pooling with zero padding of odd sizes, contrast-structure terms clipped at 0 at
the four fine scales, full SSIM at the coarsest) follow the ``pytorch-msssim`` package so
that values agree with it.

Internals: four window statistics (means of a and b, of a^2 + b^2 and of ab) of an image
are filtered together: rows by shifted multiply-adds, columns by a depthwise convolution
(see :func:`pixseq.metrics.base.filter_valid`). Inputs are shifted by the per-image mean
before filtering so that ``E[x^2] - E[x]^2`` does not lose precision (the relative
cancellation error does not depend on the value scale, so no rescaling is needed; ``C1``
and ``C2`` carry the range).

*Precision*: the arithmetic is float32 by default (``precision="float64"`` is available).
With the mean shift, the float32 cancellation error of the variances is ~1e-7 of the
score on photos (the tests check 1e-5 against scikit-image's float64 result at both data
ranges), while float32 is 2-3x faster on CPU (half the memory traffic, twice the SIMD
width, and the fast depthwise convolution). Per-image means are still accumulated in float64.
"""
from __future__ import annotations

import ctypes
import inspect
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from pixseq import fused
from pixseq.errors import PixseqError
from pixseq.metrics.base import (
    check_data_range,
    check_pair,
    cpu_chunks,
    filter_valid,
    reduce,
)
from pixseq.metrics.pixel import _MeanOfPerImage, psnr_thesis  # noqa: F401 - re-exported

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _window(win_size: int, sigma: float, gaussian: bool, dtype: torch.dtype) -> torch.Tensor:
    """1-D normalised window: sampled Gaussian (as scipy.ndimage / pytorch-msssim) or box."""
    if win_size < 1 or win_size % 2 == 0:
        raise PixseqError(f"win_size must be a positive odd number, got {win_size}")
    if not gaussian:
        return torch.full((win_size,), 1.0 / win_size, dtype=dtype)
    if not sigma > 0:
        raise PixseqError(f"sigma must be positive, got {sigma}")
    x = torch.arange(win_size, dtype=torch.float64) - (win_size - 1) / 2
    w = torch.exp(-0.5 * x**2 / sigma**2)
    return (w / w.sum()).to(dtype)


def _ssim_and_cs(
    a: torch.Tensor,
    b: torch.Tensor,
    w: torch.Tensor,
    cov_norm: float,
    k1: float,
    k2: float,
    data_range: float | torch.Tensor = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean SSIM and contrast-structure term of ``(B, C, H, W)`` inputs.

    ``data_range`` is a number or a ``(B, 1, 1, 1)`` tensor (per-image ranges); the
    arithmetic is done in ``w.dtype``. Returns two ``(B, C)`` float64 tensors.
    ``cov_norm`` is 1 (population) or N/(N-1) (sample covariance). On CPU the images are
    converted and processed one or a few at a time, so the intermediates stay in cache;
    on GPU all at once.
    """
    if isinstance(data_range, torch.Tensor):
        data_range = data_range.to(w.dtype).expand(a.shape[0], 1, 1, 1)
    # Numbers for a fixed range, (B, 1, 1, 1) tensors in the compute dtype for per-image ones.
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    native = _native_ssim_and_cs(a, b, w, cov_norm, c1, c2)
    if native is not None:
        return native
    parts = []
    for part in cpu_chunks(a, 1 << 16):
        c1_p, c2_p = (c[part] if isinstance(c, torch.Tensor) else c for c in (c1, c2))
        parts.append(_ssim_cs_maps(a[part].to(w.dtype), b[part].to(w.dtype), w, cov_norm, c1_p, c2_p))
    ssim_c, cs_c = (torch.cat(t) for t in zip(*parts))
    return ssim_c, cs_c


_NATIVE_SSIM = {torch.float32: "pixseq_ssim_f32", torch.float64: "pixseq_ssim_f64"}
_MAX_TAPS = 64  # kernels/ssim.c keeps the window in a fixed array


def _kernel_takes(a: torch.Tensor, w: torch.Tensor) -> bool:
    """Whether the C kernel is meant to do these maps: fused kernels on, CPU, a window it holds."""
    return fused.active() and a.device.type == "cpu" and w.numel() <= _MAX_TAPS


def _native_ssim_and_cs(
    a: torch.Tensor,
    b: torch.Tensor,
    w: torch.Tensor,
    cov_norm: float,
    c1: float | torch.Tensor,
    c2: float | torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """:func:`_ssim_and_cs` with pixseq's C kernel (``kernels/ssim.c``), or ``None`` when
    it is not available (fused kernels off, no compiler, not on CPU, a huge window).

    One pass per map pair: the window statistics are formed, filtered and reduced while
    a ring of ``win_size`` rows stays in cache. Map pairs are spread over
    ``torch.get_num_threads()`` threads (the kernel runs without the GIL).
    """
    if not _kernel_takes(a, w):
        return None
    lib = fused.native("ssim")
    if lib is None:
        return None
    n, c, h, wd = a.shape
    a, b = a.to(w.dtype).contiguous(), b.to(w.dtype).contiguous()
    # (N*C, 2): each map pair's two means, values of the compute dtype
    shift = torch.cat([_map_means(a).reshape(-1, 1), _map_means(b).reshape(-1, 1)], 1).to(torch.float64)
    # One value per map; the kernel rounds them to the compute dtype, as eager does.
    c1, c2 = (torch.as_tensor(x, dtype=torch.float64).reshape(-1, 1).expand(n, c).contiguous().view(-1)
              for x in (c1, c2))
    taps = w.to(torch.float64).contiguous()
    out = torch.empty(n * c, 2, dtype=torch.float64)
    fn = getattr(lib, _NATIVE_SSIM[w.dtype])
    lib.pixseq_ssim_work_size.restype = ctypes.c_int64
    work_size = lib.pixseq_ssim_work_size(ctypes.c_int64(wd), ctypes.c_int64(w.numel()))
    per_map = h * wd * a.element_size()
    ptr = ctypes.c_void_p

    def run(maps: range) -> None:
        work = torch.empty(work_size, dtype=torch.float64)
        start, count = maps.start, len(maps)
        fn(ptr(a.data_ptr() + start * per_map), ptr(b.data_ptr() + start * per_map),
           *map(ctypes.c_int64, (count, h, wd)), ptr(taps.data_ptr()), ctypes.c_int64(w.numel()),
           ptr(shift.data_ptr() + 16 * start), ctypes.c_double(cov_norm), ptr(c1.data_ptr() + 8 * start),
           ptr(c2.data_ptr() + 8 * start), ptr(out.data_ptr() + 16 * start), ptr(work.data_ptr()))

    fused.run_split(n * c, run)
    return out[:, 0].view(n, c), out[:, 1].view(n, c)


def _map_means(a: torch.Tensor) -> torch.Tensor:
    """Per-map means of ``(N, C, H, W)`` -> ``(N, C, 1, 1)`` in ``a``'s dtype.

    Each image is shifted by its own mean: variances and covariance are shift-invariant,
    and values near 0 keep E[x^2] - E[x]^2 accurate in float32 (a single shift for both,
    the reference's, left a brightness-shifted image off-centre: 4e-5 of MS-SSIM for a
    black image against a flat 0.9). Identical images get the same shift, so their SSIM
    stays exactly 1. (Row sums first, then float64: the result per map does not depend on how
    many maps share the call, so batched and one-at-a-time scores agree bitwise.)
    """
    h, wd = a.shape[-2:]
    return (a.sum(-1).sum(-1, keepdim=True, dtype=torch.float64) / (h * wd)).to(a.dtype).unsqueeze(-1)


def _ssim_cs_maps(
    a: torch.Tensor,
    b: torch.Tensor,
    w: torch.Tensor,
    cov_norm: float,
    c1: float | torch.Tensor,
    c2: float | torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and cs of each ``(N, C, H, W)`` map pair -> two ``(N, C)`` float64 tensors.

    (pixseq's C kernel, ``kernels/ssim.c``, does the same steps in one sweep.)
    """
    shift_a, shift_b = _map_means(a), _map_means(b)
    n, c, h, wd = a.shape
    # Four window statistics suffice: SSIM needs var_a + var_b only as a sum, so
    # a^2 + b^2 is filtered as one map. They are written into one buffer (no stack copy).
    stats = torch.empty((n, 4 * c, h, wd), dtype=a.dtype, device=a.device)
    sa, sb, ssq, sab = stats.chunk(4, 1)
    torch.sub(a, shift_a, out=sa)
    torch.sub(b, shift_b, out=sb)
    torch.mul(sb, sb, out=sab)
    torch.mul(sa, sa, out=ssq).add_(sab)
    torch.mul(sa, sb, out=sab)
    mu_a, mu_b, e_sq, e_ab = filter_valid(stats, w).chunk(4, 1)  # window means
    # var_sum = E[a^2 + b^2] - (mu_a^2 + mu_b^2) and cov2 = 2 (E[ab] - mu_a mu_b): for
    # identical inputs both are exactly 2 (E[a^2] - mu_a^2) in floating point (doubling is
    # exact and commutes with rounding), so SSIM is exactly 1 in either precision.
    var_sum = e_sq.sub_((mu_a * mu_a).add_(mu_b * mu_b))
    cov2 = e_ab.sub_(mu_a * mu_b).mul_(2)
    if cov_norm != 1.0:
        var_sum.mul_(cov_norm)
        cov2.mul_(cov_norm)
    cs_map = cov2.add_(c2).div_(var_sum.add_(c2))
    mu_a, mu_b = mu_a.add_(shift_a), mu_b.add_(shift_b)  # back to absolute luminance
    lum = (mu_a * mu_b).mul_(2).add_(c1).div_(mu_a.square_().add_(mu_b.square_()).add_(c1))
    # Row sums in the compute precision, then float64 over the rows (no float64 map copy).
    count = cs_map.shape[-1] * cs_map.shape[-2]
    ssim_m = lum.mul_(cs_map).sum(-1).sum(-1, dtype=torch.float64) / count
    return ssim_m, cs_map.sum(-1).sum(-1, dtype=torch.float64) / count


def _prepare(
    a: torch.Tensor, b: torch.Tensor, data_range: float, win_size: int, precision: str
) -> tuple[torch.Tensor, torch.Tensor, torch.dtype]:
    """Validate a pair for SSIM-type metrics; returns it unchanged plus the compute dtype."""
    a, b = check_pair(a, b, check_data_range(data_range))
    if precision not in _DTYPES:
        raise PixseqError(f"unknown precision {precision!r}: use 'float64' or 'float32'")
    if min(a.shape[-2:]) < win_size:
        raise PixseqError(
            f"images of {a.shape[-1]}x{a.shape[-2]} are smaller than the {win_size}x{win_size} SSIM window"
        )
    return a, b, _DTYPES[precision]


def ssim(
    a: torch.Tensor,
    b: torch.Tensor,
    data_range: float = 1.0,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    gaussian: bool = True,
    sample_covariance: bool = False,
    reduction: str = "none",
    precision: str = "float32",
) -> torch.Tensor:
    """Structural similarity per image pair (Wang et al. 2004), ``(B,)`` or its mean.

    Defaults are the standard settings: 11x11 Gaussian window with sigma 1.5, population
    covariance, K1 = 0.01, K2 = 0.03, a fixed ``data_range``. With ``gaussian=True`` the
    window is the Gaussian sampled over ``win_size`` taps (scikit-image's 11-tap filter
    for sigma = 1.5); ``gaussian=False`` gives a uniform ``win_size`` box. The border of
    ``(win_size - 1) / 2`` pixels is excluded (valid windows only, as scikit-image).
    (scikit-image always truncates its Gaussian at 3.5 sigma, so the two agree when
    ``win_size = 2 * int(3.5 * sigma + 0.5) + 1``, e.g. 11 for sigma = 1.5.)
    Equals ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range, channel_axis=-1)`` to ~1e-7
    (``precision="float32"``, the default) or to rounding (``"float64"``).
    """
    a, b, dtype = _prepare(a, b, data_range, win_size, precision)
    w = _window(win_size, sigma, gaussian, dtype)
    n = win_size * win_size
    cov_norm = n / (n - 1) if sample_covariance else 1.0
    ssim_c, _ = _ssim_and_cs(a, b, w, cov_norm, k1, k2, data_range)
    return reduce(ssim_c.mean(1), reduction)


def ssim_thesis(a: torch.Tensor, b: torch.Tensor, reduction: str = "none") -> torch.Tensor:
    """The original study's SSIM: scikit-image *defaults*, not Wang et al.'s settings.

    7x7 uniform window, sample covariance (N / (N - 1)), K1 = 0.01, K2 = 0.03, and a
    per-image ``data_range`` = max - min of each *reference* image (all channels), i.e.
    ``structural_similarity(ref, dist, data_range=ref.max() - ref.min(), channel_axis=-1)``.
    Values are systematically different from standard SSIM; use only to reproduce the study.
    """
    a, b = check_pair(a, b, data_range=float("inf"))
    flat = a.flatten(1)
    rng = (flat.amax(1) - flat.amin(1)).to(torch.float64).view(-1, 1, 1, 1)  # (B, 1, 1, 1)
    if bool((rng == 0).any()):
        raise PixseqError("thesis SSIM is undefined for a constant reference image (max - min = 0)")
    if min(a.shape[-2:]) < 7:
        raise PixseqError(f"images of {a.shape[-1]}x{a.shape[-2]} are smaller than the 7x7 SSIM window")
    w = _window(7, 0.0, False, torch.float64)
    ssim_c, _ = _ssim_and_cs(a, b, w, 49 / 48, 0.01, 0.03, rng)
    return reduce(ssim_c.mean(1), reduction)


def ms_ssim(
    a: torch.Tensor,
    b: torch.Tensor,
    data_range: float = 1.0,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    reduction: str = "none",
    precision: str = "float32",
) -> torch.Tensor:
    """Multi-scale SSIM per image pair (Wang et al. 2003), ``(B,)`` or its mean.

    ``len(weights)`` scales; between scales both images are 2x2 average-pooled (odd sizes
    zero-padded, as pytorch-msssim). Per channel the score is
    ``prod_i relu(cs_i)^w_i * relu(ssim_last)^w_last``, then averaged over channels.
    The smaller image side must exceed ``(win_size - 1) * 2^(scales - 1)`` (160 by default).
    """
    levels = len(weights)
    if levels == 0:
        raise PixseqError("MS-SSIM needs at least one scale weight")
    need = (win_size - 1) * 2 ** (levels - 1)
    a, b, dtype = _prepare(a, b, data_range, win_size, precision)
    if min(a.shape[-2:]) <= need:
        raise PixseqError(
            f"MS-SSIM with {levels} scales needs images larger than {need} px on the smaller side, "
            f"got {a.shape[-1]}x{a.shape[-2]}"
        )
    w = _window(win_size, sigma, True, dtype)
    wt = torch.tensor(list(weights), dtype=torch.float64)
    # Eager code works an image at a time so its ~20 intermediate maps stay in cache; the C
    # kernel keeps only a ring of rows, so it gets the batch at once and its threads share
    # all N * C maps of a scale (an image's 3 maps split 2 + 1 over two threads).
    budget = 1 << 22 if _kernel_takes(a, w) else 1 << 18
    values = [_ms_ssim_part(a[p].to(dtype), b[p].to(dtype), w, wt, k1, k2, data_range)
              for p in cpu_chunks(a, budget)]
    return reduce(torch.cat(values), reduction)


def _ms_ssim_part(
    a: torch.Tensor,
    b: torch.Tensor,
    w: torch.Tensor,
    weights: torch.Tensor,
    k1: float,
    k2: float,
    data_range: float,
) -> torch.Tensor:
    """MS-SSIM of ``(B, C, H, W)`` pairs -> ``(B,)``."""
    terms = []
    for level in range(len(weights)):
        ssim_c, cs_c = _ssim_and_cs(a, b, w, 1.0, k1, k2, data_range)
        if level < len(weights) - 1:
            terms.append(torch.relu(cs_c))
            a, b = _halve(a), _halve(b)
    terms.append(torch.relu(ssim_c))
    stacked = torch.stack(terms)  # (levels, B, C)
    return torch.prod(stacked ** weights.to(stacked.device).view(-1, 1, 1), dim=0).mean(1)  # CPU weights


def _halve(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling; an odd side gets one zero row/column in front first.

    That is ``F.avg_pool2d(x, 2, padding=side % 2)`` (zero padding counted in the mean, as
    pytorch-msssim), whose last window would only see padding and is never produced. Done
    as two strided adds because CPU ``avg_pool2d`` is about 10x slower here.
    """
    ph, pw = x.shape[-2] % 2, x.shape[-1] % 2
    if ph or pw:
        x = F.pad(x, (pw, 0, ph, 0))
    rows = x[..., 0::2, :] + x[..., 1::2, :]
    return (rows[..., 0::2] + rows[..., 1::2]).mul_(0.25)


def _class_options(fn: Callable[..., torch.Tensor], data_range: float, kwargs: dict) -> tuple[float, dict]:
    """A metric class's options for ``fn``, checked when the class is made (not at the
    first ``update``): the ones ``fn`` takes, except ``reduction``, which would make
    ``update`` count a batch mean as one image."""
    if "reduction" in kwargs:
        raise PixseqError(f"{fn.__name__}: the metric class has no reduction option; "
                          "compute() gives the mean over every pair seen")
    try:
        inspect.signature(fn).bind(None, None, data_range, **kwargs)
    except TypeError as exc:
        raise PixseqError(f"{fn.__name__}: {exc}") from None
    return check_data_range(data_range), kwargs


class SSIM(_MeanOfPerImage):
    """Mean SSIM over all image pairs seen (batches and DDP processes); see :func:`ssim`."""

    higher_is_better = True
    name = "ssim"

    def __init__(self, data_range: float = 1.0, **kwargs) -> None:
        super().__init__()
        self.data_range, self.kwargs = _class_options(ssim, data_range, kwargs)

    def _values(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ssim(a, b, self.data_range, **self.kwargs)


class MSSSIM(_MeanOfPerImage):
    """Mean MS-SSIM over all image pairs seen (batches and DDP processes); see :func:`ms_ssim`."""

    higher_is_better = True
    name = "ms_ssim"

    def __init__(self, data_range: float = 1.0, **kwargs) -> None:
        super().__init__()
        self.data_range, self.kwargs = _class_options(ms_ssim, data_range, kwargs)

    def _values(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ms_ssim(a, b, self.data_range, **self.kwargs)
