"""Pixel-wise full-reference metrics: MSE and PSNR.

Conventions (shared by every full-reference metric in :mod:`pixseq.metrics`):

* inputs are float tensors ``(B, C, H, W)`` with C = 1 or 3, reference first;
* ``data_range`` is the span of the value scale: 1.0 for [0, 1] images (the default),
  255 for uint8-scaled ones;
* the functions return one value per image pair, a ``(B,)`` float64 tensor
  (``reduction="none"``), or its mean (``reduction="mean"``).

Differences and sums are taken in the inputs' precision (float64 inputs: rounding only;
float32: ~1e-7 relative), so the values agree with scikit-image's ``mean_squared_error`` /
``peak_signal_noise_ratio`` to well within the 1e-6 the tests use.
"""
from __future__ import annotations

import torch

from pixseq.metrics.base import Metric, check_finite, check_pair, cpu_chunks, reduce


def _per_image_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean of squared differences per image pair -> ``(B,)`` float64; NaN / inf inputs raise."""
    # The difference and the sum are taken in the inputs' precision: exact enough for
    # float64; for float32 the difference is exact or within 2^-24 relative, and torch's
    # CPU sum is a cascade (pairwise) summation whose error stays ~1e-7 relative for a
    # whole image (~4e-7 dB of PSNR), i.e. it still matches scikit-image's float64 MSE to
    # ~1e-7. One image per chunk keeps the difference in cache and reuses its allocation.
    out = []
    for part in cpu_chunks(a):
        diff = a[part] - b[part]  # (chunk, C, H, W)
        out.append(diff.square_().sum((1, 2, 3)))
    # A NaN / inf pixel makes its image's sum NaN / inf: checked here, not with extra passes.
    return check_finite(torch.cat(out).to(torch.float64) / a[0].numel())


def mse(a: torch.Tensor, b: torch.Tensor, reduction: str = "none") -> torch.Tensor:
    """Mean squared error per image pair, over all channels and pixels (in the input's units)."""
    a, b = check_pair(a, b, data_range=float("inf"), exhaustive=False)
    return reduce(_per_image_mse(a, b), reduction)


def _psnr_from_mse(err: torch.Tensor, data_range: torch.Tensor | float) -> torch.Tensor:
    # 10 log10(R^2 / MSE); MSE = 0 gives +inf (identical images), which is what
    # scikit-image returns too, rather than an arbitrary cap.
    return 10.0 * torch.log10(torch.as_tensor(data_range, dtype=torch.float64) ** 2 / err)


def psnr(
    a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, reduction: str = "none"
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image pair, ``10 log10(data_range^2 / MSE)``.

    ``data_range`` is fixed (1.0 for [0, 1] images, 255 for uint8-scaled). Identical images
    give ``inf`` (MSE = 0), as in scikit-image. ``reduction="mean"`` is the mean of the
    per-image PSNRs (not the PSNR of the pooled MSE). The check that values fit
    ``data_range`` looks at a strided sample of pixels (PSNR itself costs no more than
    an exhaustive check; see :func:`pixseq.metrics.base.check_images`).
    """
    a, b = check_pair(a, b, data_range, exhaustive=False)
    return reduce(_psnr_from_mse(_per_image_mse(a, b), data_range), reduction)


def psnr_thesis(a: torch.Tensor, b: torch.Tensor, reduction: str = "none") -> torch.Tensor:
    """The original study's PSNR: ``data_range`` = max - min of each *reference* image.

    This is scikit-image's ``peak_signal_noise_ratio(ref, dist, data_range=ref.max() - ref.min())``
    as the study called it. It is not comparable with fixed-range PSNR: a dark reference
    image gets a smaller peak and therefore a lower PSNR for the same error.
    """
    a, b = check_pair(a, b, data_range=float("inf"), exhaustive=False)
    err = _per_image_mse(a, b)
    flat = a.flatten(1)
    per_image_range = (flat.amax(1) - flat.amin(1)).to(torch.float64)  # (B,), exact in any float
    return reduce(_psnr_from_mse(err, per_image_range), reduction)


class _MeanOfPerImage(Metric):
    """A metric that is the mean of a per-image value: sums and counts, DDP-summable."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.zeros((), dtype=torch.float64))
        self.add_state("count", torch.zeros((), dtype=torch.float64))

    def _values(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def update(self, a: torch.Tensor, b: torch.Tensor) -> None:
        """Add a batch of reference / distorted image pairs."""
        values = self._values(a, b)
        self._accumulate("total", values.sum())
        self._accumulate("count", torch.tensor(float(values.numel())))

    def compute(self) -> torch.Tensor:
        """Mean over every image pair seen (on every DDP process); NaN before any update."""
        state = self.synced_state()
        if float(state["count"]) == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return state["total"] / state["count"]


class MSE(_MeanOfPerImage):
    """Mean of per-image MSE over all pairs seen (equals the pooled MSE for equal-size images)."""

    higher_is_better = False
    name = "mse"

    def _values(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return mse(a, b)


class PSNR(_MeanOfPerImage):
    """Mean of per-image PSNR (dB) over all pairs seen, at a fixed ``data_range``.

    The mean of per-image PSNRs is what tables of "average PSNR" usually report; it is
    *not* the PSNR of the pooled MSE. One identical pair makes the mean ``inf``.
    """

    higher_is_better = True
    name = "psnr"

    def __init__(self, data_range: float = 1.0) -> None:
        super().__init__()
        self.data_range = data_range

    def _values(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return psnr(a, b, self.data_range)
