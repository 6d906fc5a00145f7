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

Internals: the five window statistics of a batch are filtered together by one separable
(row then column) convolution. Inputs are rescaled to [0, 1] and shifted by the per-image
mean before filtering so that ``E[x^2] - E[x]^2`` does not lose precision; the arithmetic
is float64 by default (``precision="float32"`` is faster and agrees to ~1e-6).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from pixseq.errors import PixseqError
from pixseq.metrics.base import check_pair, reduce
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


def _filter_valid(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering of ``(N, H, W)`` maps -> ``(N, H - k + 1, W - k + 1)``."""
    k = w.numel()
    x = x.unsqueeze(1)  # (N, 1, H, W): one channel so one kernel serves every map
    x = F.conv2d(x, w.view(1, 1, 1, k))
    x = F.conv2d(x, w.view(1, 1, k, 1))
    return x.squeeze(1)


def _ssim_and_cs(
    a: torch.Tensor, b: torch.Tensor, w: torch.Tensor, cov_norm: float, k1: float, k2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean SSIM and contrast-structure term of ``(B, C, H, W)`` inputs in [0, 1] units.

    Returns two ``(B, C)`` tensors. ``cov_norm`` is 1 (population) or N/(N-1) (sample covariance).
    """
    bsz, ch, h, wd = a.shape
    # Shift both images by the same per-(image, channel) constant: variances and covariance
    # are shift-invariant, and small values keep E[x^2] - E[x]^2 accurate.
    shift = a.mean(dim=(2, 3), keepdim=True)
    a, b = a - shift, b - shift
    stats = torch.stack([a, b, a * a, b * b, a * b]).reshape(5 * bsz * ch, h, wd)
    filtered = _filter_valid(stats, w)  # (5 * B * C, h', w')
    mu_a, mu_b, e_aa, e_bb, e_ab = filtered.reshape(5, bsz, ch, *filtered.shape[-2:])
    var_a = cov_norm * (e_aa - mu_a * mu_a)
    var_b = cov_norm * (e_bb - mu_b * mu_b)
    cov = cov_norm * (e_ab - mu_a * mu_b)
    mu_a, mu_b = mu_a + shift, mu_b + shift  # back to absolute luminance
    c1, c2 = k1**2, k2**2  # data_range is 1 after rescaling
    cs_map = (2 * cov + c2) / (var_a + var_b + c2)
    lum_map = (2 * mu_a * mu_b + c1) / (mu_a * mu_a + mu_b * mu_b + c1)
    ssim_c = (lum_map * cs_map).to(torch.float64).mean(dim=(2, 3))
    return ssim_c, cs_map.to(torch.float64).mean(dim=(2, 3))


def _prepare(
    a: torch.Tensor, b: torch.Tensor, data_range: float, win_size: int, precision: str
) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = check_pair(a, b, data_range)
    if precision not in _DTYPES:
        raise PixseqError(f"unknown precision {precision!r}: use 'float64' or 'float32'")
    if min(a.shape[-2:]) < win_size:
        raise PixseqError(
            f"images of {a.shape[-1]}x{a.shape[-2]} are smaller than the {win_size}x{win_size} SSIM window"
        )
    dtype = _DTYPES[precision]
    # SSIM is invariant to scaling images and data_range together: work in [0, 1] units.
    return a.to(dtype) / data_range, b.to(dtype) / data_range


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
    precision: str = "float64",
) -> torch.Tensor:
    """Structural similarity per image pair (Wang et al. 2004), ``(B,)`` or its mean.

    Defaults are the standard settings: 11x11 Gaussian window with sigma 1.5, population
    covariance, K1 = 0.01, K2 = 0.03, a fixed ``data_range``. With ``gaussian=True`` the
    window is the Gaussian sampled over ``win_size`` taps (scikit-image's 11-tap filter
    for sigma = 1.5); ``gaussian=False`` gives a uniform ``win_size`` box. The border of
    ``(win_size - 1) / 2`` pixels is excluded (valid windows only, as scikit-image).
    Equals ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range, channel_axis=-1)``.
    """
    a, b = _prepare(a, b, data_range, win_size, precision)
    w = _window(win_size, sigma, gaussian, a.dtype)
    n = win_size * win_size
    cov_norm = n / (n - 1) if sample_covariance else 1.0
    ssim_c, _ = _ssim_and_cs(a, b, w, cov_norm, k1, k2)
    return reduce(ssim_c.mean(1), reduction)


def ssim_thesis(a: torch.Tensor, b: torch.Tensor, reduction: str = "none") -> torch.Tensor:
    """The original study's SSIM: scikit-image *defaults*, not Wang et al.'s settings.

    7x7 uniform window, sample covariance (N / (N - 1)), K1 = 0.01, K2 = 0.03, and a
    per-image ``data_range`` = max - min of each *reference* image (all channels), i.e.
    ``structural_similarity(ref, dist, data_range=ref.max() - ref.min(), channel_axis=-1)``.
    Values are systematically different from standard SSIM; use only to reproduce the study.
    """
    a, b = check_pair(a, b, data_range=float("inf"))
    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    flat = a64.flatten(1)
    rng = (flat.amax(1) - flat.amin(1)).view(-1, 1, 1, 1)  # (B, 1, 1, 1)
    if bool((rng == 0).any()):
        raise PixseqError("thesis SSIM is undefined for a constant reference image (max - min = 0)")
    if min(a.shape[-2:]) < 7:
        raise PixseqError(f"images of {a.shape[-1]}x{a.shape[-2]} are smaller than the 7x7 SSIM window")
    w = _window(7, 0.0, False, torch.float64)
    ssim_c, _ = _ssim_and_cs(a64 / rng, b64 / rng, w, 49 / 48, 0.01, 0.03)
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
    precision: str = "float64",
) -> torch.Tensor:
    """Multi-scale SSIM per image pair (Wang et al. 2003), ``(B,)`` or its mean.

    ``len(weights)`` scales; between scales both images are 2x2 average-pooled (odd sizes
    zero-padded, as pytorch-msssim). Per channel the score is
    ``prod_i relu(cs_i)^w_i * relu(ssim_last)^w_last``, then averaged over channels.
    The smaller image side must exceed ``(win_size - 1) * 2^(scales - 1)`` (160 by default).
    """
    levels = len(weights)
    need = (win_size - 1) * 2 ** (levels - 1)
    a, b = _prepare(a, b, data_range, win_size, precision)
    if min(a.shape[-2:]) <= need:
        raise PixseqError(
            f"MS-SSIM with {levels} scales needs images larger than {need} px on the smaller side, "
            f"got {a.shape[-1]}x{a.shape[-2]}"
        )
    w = _window(win_size, sigma, True, a.dtype)
    terms = []
    for level in range(levels):
        ssim_c, cs_c = _ssim_and_cs(a, b, w, 1.0, k1, k2)
        if level < levels - 1:
            terms.append(torch.relu(cs_c))
            pad = [s % 2 for s in a.shape[-2:]]
            a = F.avg_pool2d(a, kernel_size=2, padding=pad)
            b = F.avg_pool2d(b, kernel_size=2, padding=pad)
    terms.append(torch.relu(ssim_c))
    stacked = torch.stack(terms)  # (levels, B, C)
    wt = torch.tensor(list(weights), dtype=torch.float64).view(-1, 1, 1)
    return reduce(torch.prod(stacked**wt, dim=0).mean(1), reduction)


class SSIM(_MeanOfPerImage):
    """Mean SSIM over all image pairs seen (batches and DDP processes); see :func:`ssim`."""

    higher_is_better = True
    name = "ssim"

    def __init__(self, data_range: float = 1.0, **kwargs) -> None:
        super().__init__()
        self.data_range, self.kwargs = data_range, kwargs

    def _values(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ssim(a, b, self.data_range, **self.kwargs)


class MSSSIM(_MeanOfPerImage):
    """Mean MS-SSIM over all image pairs seen (batches and DDP processes); see :func:`ms_ssim`."""

    higher_is_better = True
    name = "ms_ssim"

    def __init__(self, data_range: float = 1.0, **kwargs) -> None:
        super().__init__()
        self.data_range, self.kwargs = data_range, kwargs

    def _values(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ms_ssim(a, b, self.data_range, **self.kwargs)
