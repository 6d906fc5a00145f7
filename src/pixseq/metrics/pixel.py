"""Pixel-wise full-reference metrics: MSE and PSNR.

Conventions (shared by every full-reference metric in :mod:`pixseq.metrics`):

* inputs are float tensors ``(B, C, H, W)`` with C = 1 or 3, reference first;
* ``data_range`` is the span of the value scale: 1.0 for [0, 1] images (the default),
  255 for uint8-scaled ones;
* the functions return one value per image pair, a ``(B,)`` float64 tensor
  (``reduction="none"``), or its mean (``reduction="mean"``).

MSE and PSNR also take uint8 batches as they are (with ``data_range=255``): the
difference is then formed exactly in bytes, reading 4x less memory than float32.

Differences and sums are taken in the inputs' precision (float64 inputs: rounding only;
float32: ~1e-7 relative; uint8: exact differences), so the values agree with scikit-image's ``mean_squared_error`` /
``peak_signal_noise_ratio`` to well within the 1e-6 the tests use.
"""
from __future__ import annotations

import ctypes
import math

import torch

from pixseq import fused
from pixseq.errors import PixseqError
from pixseq.metrics.base import (
    Metric,
    check_data_range,
    check_finite,
    check_pair,
    check_span,
    memory_order,
    reduce,
)


def _flat_in_memory_order(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both batches as ``(B, N)`` rows holding each image's values in memory order.

    MSE does not care about the order of the pixels inside an image, so a channels-last
    batch (e.g. ``torch.from_numpy(hwc).permute(0, 3, 1, 2)``) is read as it lies instead
    of being copied into NCHW order first. Falls back to a copy when the two layouts
    differ or an image is not one dense block.
    """
    batch = a.shape[0]
    if a.is_contiguous() and b.is_contiguous():  # the two common layouts first: cheap checks
        return a.view(batch, -1), b.view(batch, -1)
    if a.ndim == 4 and all(x.is_contiguous(memory_format=torch.channels_last) for x in (a, b)):
        return a.permute(0, 2, 3, 1).reshape(batch, -1), b.permute(0, 2, 3, 1).reshape(batch, -1)
    if a.stride() == b.stride():
        order = memory_order(a)
        dense_a, dense_b = a.permute(*order), b.permute(*order)
        if order[0] == 0 and dense_a.is_contiguous() and dense_b.is_contiguous():
            return dense_a.reshape(a.shape[0], -1), dense_b.reshape(b.shape[0], -1)
    return a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)


def _abs_diff(x: torch.Tensor, y: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    """``x - y`` in a float dtype; uint8 pairs go through an exact ``|x - y|`` in uint8.

    For uint8 images ``max - min`` stays in one byte per value, so the difference is
    formed reading a quarter of the memory a float32 difference would, and only the
    result is widened (exactly: |d| <= 255) to be squared and summed.
    """
    if x.dtype == torch.uint8 and y.dtype == torch.uint8:
        d = torch.maximum(x, y).sub_(torch.minimum(x, y))
        return d.to(torch.float32) if out is None else out.copy_(d)
    if not torch.is_floating_point(x) or not torch.is_floating_point(y):
        x, y = x.to(torch.float64), y.to(torch.float64)
    return torch.sub(x, y) if out is None else torch.sub(x, y, out=out)


def _sse_per_image(fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    """Sums of squared differences of ``(B, N)`` rows -> ``(B,)``, for eager PyTorch.

    One pass forms the difference, one squares it and one sums it. On CPU this is done
    an image at a time into one reused buffer, so the difference stays in cache (MSE is
    memory-bound: the difference of a whole batch would go out to DRAM and back).
    """
    if fa.device.type != "cpu":
        d = _abs_diff(fa, fb, None)
        return torch.linalg.vecdot(d, d)
    dtype = torch.promote_types(fa.dtype, fb.dtype)
    dtype = dtype if dtype.is_floating_point else (torch.float32 if dtype == torch.uint8 else torch.float64)
    buf = torch.empty(fa.shape[1], dtype=dtype, device=fa.device)
    # square + sum, not a dot product: BLAS sdot (and 1-D vecdot, which calls it)
    # accumulates long float32 runs per lane, ~5e-6 relative off on photos (2e-5 dB);
    # torch's cascade sum stays at ~1e-7 and costs about the same.
    return torch.stack([_abs_diff(x, y, buf).square_().sum() for x, y in zip(fa, fb)])


_NATIVE_SSE = {torch.float32: "pixseq_sse_f32", torch.float64: "pixseq_sse_f64", torch.uint8: "pixseq_sse_u8"}

#: The C kernel cuts each image into runs of this many values (fixed, so that results do
#: not depend on the thread count), which threads share: even one large image is split.
_RUN = 1 << 18
#: ...and gives a thread at least this many values (~1 ms of work: waking an idle thread
#: took up to ~1 ms on a shared 2-core VM, so a 256x256 batch of 8 stays on one thread).
_VALUES_PER_THREAD = 1 << 20


def _native_sse_extremes(fa: torch.Tensor, fb: torch.Tensor) -> list[list[float]] | None:
    """Per image of ``(B, N)`` rows, with pixseq's C kernel (``kernels/pixel.c``): mean
    squared error and the min / max of each image, as 7 Python lists of ``B`` numbers,
    ``[mse, min a, max a, min b, max b, nonfinite, max a - min a]``; ``None`` when the
    kernel is not available or the pair is not one of its dtypes (float32, float64,
    uint8, both alike).

    One pass over both inputs (float32 squares summed in short float32 blocks, the blocks
    in float64; float64 throughout for float64; uint8 exactly in integers), so the
    exhaustive range check comes with it for free. Images are cut into runs of ``_RUN``
    values shared out over ``torch.get_num_threads()`` threads; an image's runs are
    combined here, in order.
    """
    name = _NATIVE_SSE.get(fa.dtype)
    if name is None or fb.dtype != fa.dtype or fa.device.type != "cpu":
        return None
    lib = fused.native("pixel")
    if lib is None:
        return None
    if fa.stride() != fb.stride() or fa.stride(1) != 1:
        fa, fb = fa.contiguous(), fb.contiguous()
    count, n = fa.shape
    parts = -(-n // _RUN)
    out = torch.empty(6, count * parts, dtype=torch.float64)
    kernel = getattr(lib, name)
    args = (*map(ctypes.c_int64, (count, n, fa.stride(0), _RUN)), ctypes.c_void_p(out.data_ptr()))
    pa, pb = ctypes.c_void_p(fa.data_ptr()), ctypes.c_void_p(fb.data_ptr())

    def run(units: range) -> None:
        kernel(pa, pb, ctypes.c_int64(units.start), ctypes.c_int64(units.stop), *args)

    fused.run_split(count * parts, run, grain=-(-_VALUES_PER_THREAD // min(n, _RUN)))
    sse, lo_a, hi_a, lo_b, hi_b, bad = out.tolist()
    if parts > 1:  # an image's runs, in order (fixed: the same sums at any thread count)
        runs = [slice(i * parts, (i + 1) * parts) for i in range(count)]
        sse = [sum(sse[r]) for r in runs]
        lo_a, lo_b = ([min(v[r]) for r in runs] for v in (lo_a, lo_b))
        hi_a, hi_b, bad = ([max(v[r]) for r in runs] for v in (hi_a, hi_b, bad))
    return [[s / n for s in sse], lo_a, hi_a, lo_b, hi_b, bad, [h - lo for h, lo in zip(hi_a, lo_a)]]


def _per_image_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean of squared differences per image pair -> ``(B,)`` float64; NaN / inf inputs raise.

    Precision: float64 inputs round only; float32 differences are exact or within 2^-24
    relative and the sum is a cascade (measured ~1e-7 relative on photos, i.e. ~5e-7 dB
    of PSNR); uint8 differences are exact.
    """
    fa, fb = _flat_in_memory_order(a, b)
    # A NaN / inf pixel makes its image's sum NaN / inf: checked here, not with extra passes.
    return check_finite(_sse_per_image(fa, fb).to(torch.float64) / fa.shape[1])


def _fused_table(a: torch.Tensor, b: torch.Tensor, data_range: float) -> list[list[float]] | None:
    """Validate a pair with pixseq's C kernel and return its table of 7 lists (rows as in
    :func:`_native_sse_extremes`), or ``None`` when fused kernels are off or do not take
    these inputs (then the eager path runs).

    One pass of the kernel gives the squared errors and every image's extremes, so the
    range check is exhaustive at no cost. The table comes back as Python numbers: checked,
    and turned into results, without a tensor op per step (for a batch of 256x256 images
    the kernel takes ~30 us per image; a few us per op were a fifth of the call).
    """
    if not fused.active():
        return None
    a, b = check_pair(a, b, float("inf"), exhaustive=False, keep_uint8=True)  # shapes, dtypes
    table = _native_sse_extremes(*_flat_in_memory_order(a, b))
    if table is None:
        return None
    if any(table[5]):
        raise PixseqError("reference or distorted images: contain NaN or infinite values")
    if not math.isinf(data_range):
        check_span(min(table[1]), max(table[2]), data_range, "reference images")
        check_span(min(table[3]), max(table[4]), data_range, "distorted images")
    return table


def _eager_mse(a: torch.Tensor, b: torch.Tensor, data_range: float) -> torch.Tensor:
    """Validate a pair (the value range on a sample, :func:`check_images`; ``data_range=inf``
    skips it) and return its per-image MSE with eager PyTorch."""
    return _per_image_mse(*check_pair(a, b, data_range, exhaustive=False, keep_uint8=True))


def mse(a: torch.Tensor, b: torch.Tensor, reduction: str = "none") -> torch.Tensor:
    """Mean squared error per image pair, over all channels and pixels (in the input's units)."""
    table = _fused_table(a, b, float("inf"))
    err = torch.tensor(table[0], dtype=torch.float64) if table is not None else _eager_mse(a, b, float("inf"))
    return reduce(err, reduction)


def _psnr_from_mse(err: torch.Tensor, data_range: torch.Tensor | float) -> torch.Tensor:
    # 10 log10(R^2 / MSE); MSE = 0 gives +inf (identical images), which is what
    # scikit-image returns too, rather than an arbitrary cap.
    # (In-place steps on one new tensor: each op with a Python scalar costs a few us.)
    peak = data_range * data_range if isinstance(data_range, torch.Tensor) else float(data_range) ** 2
    return torch.reciprocal(err).mul_(peak).log10_().mul_(10.0)


def _decibels(peak: float, err: float) -> float:
    """``10 log10(peak / err)`` of Python floats; ``inf`` for ``err = 0`` as above."""
    return 10.0 * math.log10(peak / err) if err > 0 else math.inf


def psnr(
    a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, reduction: str = "none"
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image pair, ``10 log10(data_range^2 / MSE)``.

    ``data_range`` is fixed (1.0 for [0, 1] images, 255 for uint8-scaled). Identical images
    give ``inf`` (MSE = 0), as in scikit-image. ``reduction="mean"`` is the mean of the
    per-image PSNRs (not the PSNR of the pooled MSE). The check that values fit
    ``data_range`` sees every value on the fused CPU path (the default: it comes with the
    kernel's one pass) and a strided sample on the eager path (PSNR itself costs no more
    than an exhaustive check; see :func:`pixseq.metrics.base.check_images`).
    """
    data_range = check_data_range(data_range)
    table = _fused_table(a, b, data_range)
    if table is not None:  # straight from the kernel's numbers: one tensor made, no op on it
        peak = data_range**2
        return reduce(torch.tensor([_decibels(peak, err) for err in table[0]], dtype=torch.float64), reduction)
    return reduce(_psnr_from_mse(_eager_mse(a, b, data_range), data_range), reduction)


def psnr_thesis(a: torch.Tensor, b: torch.Tensor, reduction: str = "none") -> torch.Tensor:
    """The original study's PSNR: ``data_range`` = max - min of each *reference* image.

    This is scikit-image's ``peak_signal_noise_ratio(ref, dist, data_range=ref.max() - ref.min())``
    as the study called it. It is not comparable with fixed-range PSNR: a dark reference
    image gets a smaller peak and therefore a lower PSNR for the same error.
    """
    table = _fused_table(a, b, float("inf"))
    if table is not None:  # the kernel's extremes give the range for free
        err, value_range = (torch.tensor(row, dtype=torch.float64) for row in (table[0], table[6]))
    else:
        a, b = check_pair(a, b, float("inf"), exhaustive=False, keep_uint8=True)
        err, flat = _per_image_mse(a, b), a.flatten(1)
        value_range = flat.amax(1) - flat.amin(1)  # (B,), exact in any float and in bytes
    if bool((value_range == 0).any()):
        raise PixseqError("thesis PSNR is undefined for a constant reference image (max - min = 0)")
    return reduce(_psnr_from_mse(err, value_range.to(torch.float64)), reduction)


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
        self.data_range = check_data_range(data_range)

    def _values(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return psnr(a, b, self.data_range)
