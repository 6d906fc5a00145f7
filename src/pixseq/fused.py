"""Opt-in fused kernels: ``torch.compile`` and pixseq's own C for memory-bound per-pixel work.

Per-pixel metrics (PSNR, SSIM's window statistics, BRISQUE's feature maps) are chains
of cheap elementwise ops and reductions. Eager PyTorch runs each op as its own pass over
memory, so a chain of twenty ops reads and writes the image twenty times; a fused kernel
does the chain in one vectorised loop while the data is in cache.

Two kinds of fused kernel, switched on together:

* :func:`fusable` functions go through TorchInductor (SSIM / MS-SSIM). The price is a
  one-off start-up (each function compiles for its first shape and once more for
  shape-generic code: ~60 s for every metric of ``pixseq assess`` in a fresh
  environment, ~15 s once Inductor's on-disk cache is warm).
* Where Inductor's code stays far from what the hardware can do (BRISQUE's stencils and
  moment sums; PSNR, where its per-call overhead and unvectorised byte loads cost more
  than the pass itself), pixseq ships a small C kernel (``pixseq/kernels/*.c``):
  :func:`native` builds it once per machine with the system C compiler (under a second),
  caches the shared library and loads it with :mod:`ctypes`.

Both need a compiler, and the Inductor start-up only pays off over hundreds of images, so
fused kernels are **off by default** and turned on with :func:`set_enabled` (or
:func:`using` for a block), ``PIXSEQ_COMPILE=1``, or ``pixseq assess --compile``. If a
build fails (no compiler, an unsupported platform), pixseq says so once on stderr and
keeps using the eager code -- results are the same up to floating-point summation order,
which the metrics' tests bound.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
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


_KERNELS = Path(__file__).resolve().parent / "kernels"
# -march=native: the library is built for (and cached per) this CPU. No -ffast-math:
# -fno-math-errno / -fno-trapping-math only let sqrt and rounding vectorise, and
# -ffp-contract=off keeps every product and sum rounded as in PyTorch (the kernels write
# their fused multiply-adds explicitly, where ATen uses them too).
_CFLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off",
           "-shared", "-fPIC")
_libraries: dict[str, ctypes.CDLL] = {}


def native(name: str) -> ctypes.CDLL | None:
    """pixseq's C kernel ``kernels/<name>.c`` as a loaded library, or ``None`` when fused
    kernels are off or cannot be built here (then with the one-line notice, as for
    compiled functions; callers use their eager code)."""
    if not active():
        return None
    if name not in _libraries:
        try:
            _libraries[name] = ctypes.CDLL(str(_build(_KERNELS / f"{name}.c")))
        except Exception as err:  # noqa: BLE001 - no compiler, a failed build: fall back to eager
            _give_up(err)
            return None
    return _libraries[name]


def _compiler() -> str:
    cc = os.environ.get("CC") or next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if not cc:
        raise RuntimeError("no C compiler found (install gcc or clang, or set CC)")
    return cc


def _cpu_id() -> str:
    """What the compiled code depends on: the CPU model and instruction-set flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags", "Features"))}))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def _cache_dir() -> Path:
    base = os.environ.get("PIXSEQ_KERNEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "pixseq", "kernels")
    try:
        os.makedirs(base, exist_ok=True)
        return Path(base)
    except OSError:  # a read-only home: a per-user temporary folder
        fallback = Path(tempfile.gettempdir()) / f"pixseq-kernels-{os.getuid() if hasattr(os, 'getuid') else 0}"
        fallback.mkdir(exist_ok=True)
        return fallback


def _build(source: Path) -> Path:
    """Compile ``source`` into a shared library, once per (source, compiler, flags, CPU).

    The library is written under a temporary name and renamed into place, so a build that
    is interrupted, or two processes building at once, never leave a broken file behind.
    """
    cc = _compiler()
    run = lambda *args: subprocess.run([cc, *args], capture_output=True, text=True, timeout=300)  # noqa: E731
    version = run("--version").stdout.splitlines()[:1]
    key = hashlib.sha256("\0".join([source.read_text(), cc, *version, *_CFLAGS, _cpu_id()]).encode()).hexdigest()
    target = _cache_dir() / f"{source.stem}-{key[:16]}.so"
    if target.is_file():
        return target
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        done = run(*_CFLAGS, "-o", tmp, str(source), "-lm")
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[0]
            raise RuntimeError(f"building {source.name} with {cc} failed: {first}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
