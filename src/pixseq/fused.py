"""Opt-in fused kernels: ``torch.compile`` for memory-bound per-pixel work.

Per-pixel metrics (PSNR, SSIM's window statistics, BRISQUE's feature maps) are chains
of cheap elementwise ops and reductions. Eager PyTorch runs each op as its own pass over
memory, so a chain of twenty ops reads and writes the image twenty times; TorchInductor
fuses the chain into one vectorised C++ loop per output, which on CPU runs these
functions 2-5x faster.

The price is a one-off start-up (each function compiles for its first shape and once
more for shape-generic code: ~60 s for every metric of ``pixseq assess`` in a fresh
environment, ~15 s once Inductor's on-disk cache is warm) and a C++ compiler on the
machine. That only pays off over hundreds of images, so it is **off by default** and turned
on with :func:`set_enabled` (or :func:`using` for a block), ``PIXSEQ_COMPILE=1``, or
``pixseq assess --compile``. If compiling fails (no compiler, an unsupported platform),
pixseq says so once on stderr and keeps using the eager code -- results are the same up
to floating-point summation order, which the metrics' tests bound.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])

_enabled: bool | None = None  # None: read PIXSEQ_COMPILE
_broken: str | None = None  # why compiling failed, once it has


def enabled() -> bool:
    """Whether fused (compiled) kernels are used: :func:`set_enabled`, else ``PIXSEQ_COMPILE``."""
    if _enabled is not None:
        return _enabled
    return os.environ.get("PIXSEQ_COMPILE", "").strip().lower() in ("1", "true", "yes", "on")


def set_enabled(value: bool | None) -> None:
    """Turn fused kernels on / off for this process (``None``: follow ``PIXSEQ_COMPILE`` again)."""
    global _enabled
    _enabled = value


def available() -> bool:
    """False once a compile has failed in this process (the eager code is used from then on)."""
    return _broken is None


def active() -> bool:
    """Whether fused kernels are both enabled and working: callers that choose between a
    fused and an eager formulation ask this."""
    return enabled() and _broken is None


@contextlib.contextmanager
def using(value: bool = True) -> Iterator[None]:
    """Fused kernels on (or off) inside a ``with`` block; the previous setting afterwards."""
    global _enabled
    previous = _enabled
    _enabled = value
    try:
        yield
    finally:
        _enabled = previous


def fusable(eager: Callable[..., Any] | None = None) -> Callable[[F], F]:
    """Decorate a pure tensor function so it runs compiled when fused kernels are enabled.

    ``eager`` is what runs otherwise (and after a failed compile): an equivalent function
    written for eager PyTorch, when the best eager formulation differs from the one that
    fuses best (e.g. a loop over images that keeps each in cache); by default the
    decorated function itself. The first shape is compiled specialised, and a second one
    switches to shape-generic code (torch's default), so folders of mixed image sizes
    compile twice, not once per size. (Specialising every shape ran BRISQUE ~15 %
    faster but hit torch's recompile limit after four image sizes.)
    """

    def decorate(fn: F) -> F:
        fallback = eager or fn
        compiled: list[Callable[..., Any]] = []

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not active():
                return fallback(*args, **kwargs)
            if not compiled:
                # torch warns on every CPU-only compile that it found no CUDA runtime.
                logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
                compiled.append(torch.compile(fn))
            try:
                return compiled[0](*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - a compiler failure falls back to eager
                result = fallback(*args, **kwargs)  # re-raises if the inputs are at fault
                _give_up(err)
                return result

        wrapper.eager = fallback  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def _give_up(err: BaseException) -> None:
    global _broken
    first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
    _broken = f"{type(err).__name__}: {first_line}"
    print(f"pixseq: fused kernels unavailable ({_broken}); using eager PyTorch", file=sys.stderr)
