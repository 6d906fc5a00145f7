"""The stateful-metric base class: ``update`` / ``compute`` / ``reset``, DDP-aware.

State is a dict of tensors that are *summed* across batches and processes (sums, counts,
sums of outer products ...), so accumulating over batches and across DDP ranks gives the
same answer as one big batch. Subclasses declare their state in ``__init__`` with
:meth:`add_state` and reduce it in :meth:`compute`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F


class Metric:
    """Base class for pixseq's stateful metrics."""

    #: True when a larger value means better quality.
    higher_is_better: bool = True
    #: Short name used in tables and JSON.
    name: str = "metric"

    def __init__(self) -> None:
        self._defaults: dict[str, torch.Tensor] = {}
        self._state: dict[str, torch.Tensor] = {}

    def add_state(self, name: str, default: torch.Tensor) -> None:
        """Register a summable state tensor (float64 recommended for sums)."""
        self._defaults[name] = default.clone()
        self._state[name] = default.clone()

    def __getattr__(self, item: str) -> Any:
        state = self.__dict__.get("_state", {})
        if item in state:
            return state[item]
        raise AttributeError(item)

    def _accumulate(self, name: str, value: torch.Tensor) -> None:
        cur = self._state[name]
        self._state[name] = cur + value.detach().to(device=cur.device, dtype=cur.dtype)

    def reset(self) -> None:
        """Forget everything accumulated."""
        self._state = {k: v.clone() for k, v in self._defaults.items()}

    def synced_state(self) -> dict[str, torch.Tensor]:
        """The state summed over all DDP processes (the local state when not distributed)."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return dict(self._state)
        # NCCL reduces CUDA tensors only ("No backend type associated with device type cpu"):
        # there the (CPU) state goes through this process's GPU, which torchrun set-up made current
        gpu = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
        out = {}
        for k, v in self._state.items():
            t = v.to(gpu, copy=True) if gpu is not None else v.clone()
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            out[k] = t.to(v.device)
        return out

    def update(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def compute(self) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


def _describe(x: torch.Tensor) -> str:
    return "x".join(str(s) for s in x.shape)


#: A value-range check on a strided sample looks at about this many values per batch.
_SPAN_SAMPLE = 1 << 16


def check_images(
    x: torch.Tensor,
    data_range: float = 1.0,
    what: str = "images",
    *,
    exhaustive: bool = True,
    keep_uint8: bool = False,
) -> torch.Tensor:
    """Validate a ``(B, C, H, W)`` batch (C = 1 or 3) and return it as a float tensor.

    ``data_range`` is the span of the value scale (1.0 for [0, 1], 255 for uint8-scaled).
    A batch whose values span clearly more than ``data_range`` is almost always a scale
    mistake ([0, 255] images with the default ``data_range=1``), so it is rejected rather
    than silently producing meaningless numbers.

    ``exhaustive=False`` is for metrics as cheap as the check itself (MSE, PSNR): the span
    is then checked on a spread-out sample of about 65 000 values (a scale mistake shifts
    nearly every pixel, so the sample catches it) and NaN / inf are *not* looked for --
    the caller must pass its per-image results to :func:`check_finite`, into which any
    NaN or inf input propagates.

    Integer batches become float64, except uint8 ones with ``keep_uint8=True`` (for
    metrics that compute on bytes exactly, which reads 4-8x less memory); float16 and
    bfloat16 ones become float32 (exactly), so that no sum is taken in half precision.
    Complex batches are refused. The batch is detached: pixseq's metrics are
    measurements, not differentiable losses, and give the same plain values for inputs
    that carry a graph (e.g. a model's output outside ``torch.no_grad()``).
    """
    from pixseq.errors import PixseqError

    if not isinstance(x, torch.Tensor):
        raise PixseqError(f"{what}: expected a torch tensor, got {type(x).__name__}")
    x = x.detach()
    if x.is_complex():
        raise PixseqError(f"{what}: complex values ({x.dtype}); expected real-valued images")
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise PixseqError(f"{what}: expected shape (B, C, H, W) with C = 1 or 3, got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise PixseqError(f"{what}: empty batch")
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise PixseqError(f"{what}: no pixels ({x.shape[3]}x{x.shape[2]})")
    bytes_in = x.dtype == torch.uint8
    if not torch.is_floating_point(x) and not (keep_uint8 and bytes_in):
        x = x.to(torch.float64)
    if not (data_range > 0):
        raise PixseqError(f"data_range must be positive, got {data_range}")
    if (not exhaustive and math.isinf(data_range)) or (bytes_in and data_range >= 255):
        return x  # nothing to check here (bytes are finite and span <= 255; else see above)
    values = x if exhaustive else _strided_sample(x)
    # NaN and inf propagate into the extremes; one host sync for both. (amin + amax are
    # vectorised reductions; on CPU they beat the single-pass ``aminmax`` several times.)
    lo, hi = torch.stack([values.amin(), values.amax()]).tolist()
    if not (math.isfinite(lo) and math.isfinite(hi)):  # found, even if only sampled
        raise PixseqError(f"{what}: contain NaN or infinite values")
    check_span(lo, hi, data_range, what)
    return x


def check_data_range(data_range: Any) -> float:
    """A user's ``data_range`` as a float: a positive, finite number (a Python number or
    a one-element tensor); anything else raises a :class:`PixseqError`."""
    from pixseq.errors import PixseqError

    try:
        if isinstance(data_range, (str, bytes)):
            raise TypeError
        value = float(data_range)
    except (TypeError, ValueError, RuntimeError):
        raise PixseqError(f"data_range must be a number, got {data_range!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise PixseqError(f"data_range must be a positive finite number, got {value:g}")
    return value


def check_span(lo: float, hi: float, data_range: float, what: str = "images") -> None:
    """Raise if values from ``lo`` to ``hi`` clearly do not fit ``data_range`` (a scale mistake)."""
    from pixseq.errors import PixseqError

    span = hi - lo
    if span > data_range * 1.01:  # 1 % slack for clipping noise of generated images
        raise PixseqError(
            f"{what}: values span {span:.4g} but data_range is {data_range:g}; "
            f"pass the right data_range (e.g. 255 for uint8-scaled images)"
        )


def _strided_sample(x: torch.Tensor, block: int = 64) -> torch.Tensor:
    """About ``_SPAN_SAMPLE`` values of ``x``: every k-th run of ``block`` consecutive values.

    Contiguous runs keep the reduction vectorised (a plain ``[::k]`` stride is ~10x
    slower to reduce on CPU) and still spread the sample over every image and channel.
    """
    # Walk the values in memory order (e.g. channels-last batches) so no copy is made.
    dense = x.permute(*memory_order(x))
    if not dense.is_contiguous():
        return x  # an unusual view: check every value instead
    flat = dense.reshape(-1)
    runs = flat.numel() // block
    if runs <= _SPAN_SAMPLE // block:
        return flat
    return flat[: runs * block].view(runs, block)[:: runs // (_SPAN_SAMPLE // block)]


def memory_order(x: torch.Tensor) -> list[int]:
    """``x``'s dims by decreasing stride: ``x.permute(*memory_order(x))`` is contiguous
    exactly when ``x`` is one dense block in any layout (e.g. channels-last)."""
    return sorted(range(x.ndim), key=lambda d: -x.stride(d))


def check_features(x: Any, what: str, width: int | None = None) -> torch.Tensor:
    """Validate a ``(N, D)`` matrix of feature vectors, logits or probabilities (a tensor
    or numpy array; ``(N, D, 1, 1)`` pooled maps are flattened) and return it detached.

    It must be non-empty, real and finite (a NaN feature would make FID's eigensolver
    fail and KID / IS silently NaN); ``width`` is the D it must have, when known.
    """
    from pixseq.errors import PixseqError

    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise PixseqError(f"{what}: expected a tensor or numpy array, got {type(x).__name__}")
    if x.ndim < 2 or x.shape[0] == 0 or x[0].numel() == 0:
        raise PixseqError(f"{what}: expected a non-empty (N, D) matrix, got shape {tuple(x.shape)}")
    x = x.detach().reshape(x.shape[0], -1)
    if x.is_complex() or x.dtype == torch.bool:
        raise PixseqError(f"{what}: expected real numbers, got {x.dtype}")
    if width is not None and x.shape[1] != width:
        raise PixseqError(f"{what}: expected {width} values per row, got {x.shape[1]}")
    if not bool(torch.isfinite(x).all()):
        raise PixseqError(f"{what}: contain NaN or infinite values")
    return x


def check_finite(values: torch.Tensor, what: str = "reference or distorted images") -> torch.Tensor:
    """Raise a :class:`PixseqError` if per-image results are NaN / inf because inputs were.

    Used after ``check_images(..., exhaustive=False)``: a NaN or inf pixel makes its
    image's sum of squared differences NaN or inf, so checking the ``(B,)`` results finds
    it without another pass over the pixels. Returns ``values`` unchanged.
    """
    from pixseq.errors import PixseqError

    if not bool(torch.isfinite(values).all()):
        raise PixseqError(f"{what}: contain NaN or infinite values")
    return values


def check_pair(
    a: torch.Tensor,
    b: torch.Tensor,
    data_range: float = 1.0,
    *,
    exhaustive: bool = True,
    keep_uint8: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a reference / distorted pair of batches (same shape) for full-reference metrics.

    ``exhaustive`` and ``keep_uint8`` as in :func:`check_images`.
    """
    from pixseq.errors import PixseqError

    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape != b.shape:
        if a.ndim == 4 and b.ndim == 4 and a.shape[-2:] != b.shape[-2:]:
            raise PixseqError(
                f"image sizes differ: reference is {a.shape[-1]}x{a.shape[-2]}, "
                f"distorted is {b.shape[-1]}x{b.shape[-2]}; resize one to match"
            )
        raise PixseqError(f"image batches differ in shape: {_describe(a)} vs {_describe(b)}")
    return (
        check_images(a, data_range, "reference images", exhaustive=exhaustive, keep_uint8=keep_uint8),
        check_images(b, data_range, "distorted images", exhaustive=exhaustive, keep_uint8=keep_uint8),
    )


def reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply ``reduction`` ("none" -> the (B,) tensor, "mean" -> its mean) to per-image values."""
    from pixseq.errors import PixseqError

    if reduction == "none":
        return values
    if reduction == "mean":
        return values.mean()
    raise PixseqError(f"unknown reduction {reduction!r}: use 'none' or 'mean'")


def cpu_chunks(x: torch.Tensor, budget: int = 1 << 18) -> list[slice]:
    """Slices of the batch dim of ``x`` holding about ``budget`` elements each (CPU only).

    Per-pixel metrics are memory-bound on CPU: working on cache-sized pieces and reusing
    small allocations is several times faster than materialising float64 copies of a whole
    batch. On accelerators the whole batch is one chunk.
    """
    n = x.shape[0]
    if x.device.type != "cpu":
        return [slice(0, n)]
    step = max(1, budget // max(1, x[0].numel()))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def filter_valid(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering of ``(N, K, H, W)`` maps -> ``(N, K, H - k + 1, W - k + 1)``.

    Rows (along W, the contiguous dim): k shifted multiply-adds over whole contiguous
    slices, which vectorise well. Columns (along H): for float32/float16 one depthwise
    convolution in which the W columns are the *channels* -- a row-major ``(H, W)`` map
    viewed as ``(W, 1, H)`` is a channels-last tensor, so oneDNN / cuDNN filter along H
    vectorised across columns with no layout copy (on CPU about 3x faster than shifted
    adds, and faster than a channels-last convolution over the maps, whose two layout
    transposes cost more than the filtering). float64 has no fast CPU convolution kernel,
    so its columns use shifted adds too. Results are the same sums of products per output,
    so both paths agree with a float64 reference to rounding.
    """
    k, h = w.numel(), x.shape[-2]
    taps = w.tolist()
    rows = shifted_sum(x, taps, -1)
    if rows.dtype == torch.float64 and rows.device.type == "cpu":
        return shifted_sum(rows, taps, -2)
    n, maps, _, w_out = rows.shape
    cols = rows.reshape(n * maps, 1, h, w_out).permute(0, 3, 1, 2)  # (N*K, W', 1, H), channels-last
    # the window is built on the CPU (its taps are read as numbers above); conv2d needs it
    # where the maps are (on a GPU: 'weight is on cpu, different from other tensors on cuda:0')
    kernel = w.to(rows.device).view(1, 1, 1, k).expand(w_out, 1, 1, k)
    out = F.conv2d(cols, kernel, groups=w_out)  # (N*K, W', 1, H'), channels-last
    return out.permute(0, 2, 3, 1).reshape(n, maps, h - k + 1, w_out)


def shifted_sum(x: torch.Tensor, taps: Sequence[float], dim: int) -> torch.Tensor:
    """'Valid' 1-D filtering of ``x`` along ``dim``: ``sum_i taps[i] * x[i : i + n]``."""
    n = x.size(dim) - len(taps) + 1
    out = x.narrow(dim, 0, n) * taps[0]
    for i in range(1, len(taps)):
        out.add_(x.narrow(dim, i, n), alpha=taps[i])
    return out
