"""Fused kernels: pixseq's own C for the memory-bound per-pixel metrics, on by default.

Per-pixel metrics (PSNR, SSIM's window statistics, BRISQUE's feature maps) are chains
of cheap elementwise ops, filters and reductions. Eager PyTorch runs each op as its own
pass over memory, so a chain of twenty ops reads and writes the image twenty times. A
fused kernel does the whole chain in one sweep while the data is in cache: pixseq ships
small C kernels for MSE / PSNR, SSIM / MS-SSIM and BRISQUE (``pixseq/kernels/*.c``), and
:func:`native` builds each once per machine with the system C compiler (1-4 s, the first
time a metric is used), caches the shared library (``~/.cache/pixseq/kernels``, or
``$PIXSEQ_KERNEL_CACHE``) and loads it with :mod:`ctypes`. They do the arithmetic of the
PyTorch code step for step, so the numbers agree with the eager path to rounding (the
metrics' tests bound it).

(TorchInductor, used for these functions before, reached a quarter (BRISQUE) to two
thirds (PSNR) of the C kernels' speed on CPU, after a start-up of 15-60 s per process.)

They are **on by default** for CPU tensors; ``PIXSEQ_COMPILE=0``, :func:`set_enabled`
(or :func:`using` for a block) or ``pixseq assess --no-compile`` turn them off. Where no
build is possible (no C compiler, an unsupported platform), pixseq says so once per
process on stderr and uses the eager PyTorch code, with the same numbers. On a GPU the
eager code already runs in parallel kernels and is always used.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from pixseq.errors import first_line

_enabled: bool | None = None  # None: read PIXSEQ_COMPILE
_broken: str | None = None  # why compiling failed, once it has
_OFF = ("0", "false", "no", "off")


def enabled() -> bool:
    """Whether fused (compiled) kernels are used: :func:`set_enabled`, else on unless
    ``PIXSEQ_COMPILE`` is ``0`` / ``false`` / ``no`` / ``off``."""
    if _enabled is not None:
        return _enabled
    return os.environ.get("PIXSEQ_COMPILE", "").strip().lower() not in _OFF


def set_enabled(value: bool | None) -> None:
    """Turn fused kernels on / off for this process (``None``: follow ``PIXSEQ_COMPILE`` again)."""
    global _enabled
    _enabled = value


def available() -> bool:
    """False once a kernel build has failed in this process (the eager code is used from then on)."""
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


def _give_up(err: BaseException) -> None:
    global _broken
    _broken = f"{type(err).__name__}: {first_line(err)}"
    print(f"pixseq: fused kernels unavailable ({_broken}); using eager PyTorch, same numbers "
          "(PIXSEQ_COMPILE=0 skips the build)", file=sys.stderr)


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
    kernels are off or cannot be built here (the first failure prints one line on stderr;
    callers then use their eager code)."""
    if not active():
        return None
    if name not in _libraries:
        try:
            _libraries[name] = ctypes.CDLL(str(_build_for_this_cpu(_KERNELS / f"{name}.c")))
        except Exception as err:  # noqa: BLE001 - no compiler, a failed build: fall back to eager
            _give_up(err)
            return None
    return _libraries[name]


def run_split(count: int, fn: Callable[[range], None], grain: int = 1) -> None:
    """Call ``fn`` on contiguous parts of ``range(count)``, one per thread of
    ``torch.get_num_threads()`` (all in this thread when that is 1), each part at least
    ``grain`` long (waking a thread costs tens of us: cheap items need several per part).
    For native kernels, which ctypes runs without the GIL; ``fn`` must only write its own
    part of the output."""
    workers = max(1, min(torch.get_num_threads(), count // max(1, grain)))
    if workers == 1:
        fn(range(count))
        return
    bounds = [count * i // workers for i in range(workers + 1)]
    parts = [range(lo, hi) for lo, hi in zip(bounds, bounds[1:])]
    # The calling thread takes the first part; a persistent pool the rest (starting threads
    # per call cost ~2 ms each: more than a 512x512 SSIM).
    futures = [_pool(workers - 1).submit(fn, part) for part in parts[1:]]
    fn(parts[0])
    for future in futures:
        future.result()


_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _pool(size: int) -> ThreadPoolExecutor:
    # Keyed by process too: a forked child (e.g. a DataLoader worker) inherits the pool
    # object but not its threads, and work submitted to it would never run.
    key = (os.getpid(), size)
    if key not in _pools:
        _pools[key] = ThreadPoolExecutor(size, thread_name_prefix="pixseq-kernel")
    return _pools[key]


def _compiler() -> str:
    """``$CC``, else the first of cc / gcc / clang on the PATH."""
    chosen = os.environ.get("CC", "").strip()
    if chosen:
        if not shutil.which(shlex.split(chosen)[0]):  # CC may carry flags ("ccache gcc", "gcc -m64")
            raise RuntimeError(f"CC={chosen} is not a program on this machine")
        return chosen
    cc = next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if not cc:
        raise RuntimeError("no C compiler found (install gcc or clang, or set CC)")
    return cc


@functools.lru_cache(maxsize=4)
def _compiler_version(cc: str) -> str:
    """The first line of ``cc --version`` (asked once per process and compiler)."""
    done = subprocess.run([*shlex.split(cc), "--version"], capture_output=True, text=True, timeout=60)
    return (done.stdout.splitlines() or [""])[0]


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


class BuildFailed(RuntimeError):
    """The compiler ran and rejected the kernel (as opposed to there being no compiler)."""


def _build_for_this_cpu(source: Path) -> Path:
    """:func:`_build` with ``-march=native``, or without it where the compiler refuses that
    flag (older clang on ARM, some cross compilers): the generic code paths, same numbers."""
    try:
        return _build(source)
    except BuildFailed:
        if "-march=native" not in _CFLAGS:
            raise
        try:
            return _build(source, tuple(f for f in _CFLAGS if f != "-march=native"))
        except BuildFailed:
            pass
        raise  # the first, native build's error is the one worth reading


def _build(source: Path, flags: tuple[str, ...] | None = None) -> Path:
    """Compile ``source`` into a shared library, once per (source, compiler, flags, CPU).

    The library is written under a temporary name and renamed into place, so a build that
    is interrupted, or two processes building at once, never leave a broken file behind.
    """
    flags = _CFLAGS if flags is None else flags
    cc = _compiler()
    key = hashlib.sha256("\0".join([source.read_text(), cc, _compiler_version(cc), *flags, _cpu_id()]).encode())
    target = _cache_dir() / f"{source.stem}-{key.hexdigest()[:16]}.so"
    if target.is_file():
        return target
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        done = subprocess.run([*shlex.split(cc), *flags, "-o", tmp, str(source), "-lm"], capture_output=True, text=True,
                              timeout=300)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit code {done.returncode}"]
            first = next((ln for ln in lines if "error" in ln.lower()), lines[0])  # not "In function ..."
            raise BuildFailed(f"building {source.name} with {cc} failed: {first.strip()}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
