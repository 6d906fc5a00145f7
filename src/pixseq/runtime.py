"""The runtime at the bottom of pixseq: notices, progress bars and seeding.

Everything above it (models, the Trainer, recipes, the CLI, the web UI) says things to the
user through :func:`notice` and shows long loops with :func:`progress`, so that one place
decides where those go:

* the CLI leaves them on stderr (``pixseq: ...`` lines; tqdm bars on terminals, and where
  stderr is a file or a pipe a plain progress line every :data:`PLAIN_EVERY_S` seconds);
* under torchrun only rank 0 speaks, so N processes do not say the same thing N times;
* the web UI (or any caller) collects a request's notices with :func:`capture_notices`
  and shows them beside its result. The capture is per thread, so concurrent requests of a
  server do not see each other's notices.

Errors are not notices: they are :class:`~pixseq.errors.PixseqError` and come from every rank.
"""
from __future__ import annotations

import contextlib
import functools
import os
import random
import sys
import threading
import time
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np
import torch

T = TypeVar("T")

_local = threading.local()


def is_main_rank() -> bool:
    """True outside torchrun and on its rank 0 (read from the environment torchrun sets,
    so it is right before the process group is joined too)."""
    return os.environ.get("RANK", "0") == "0"


def notice(message: str) -> None:
    """A one-line notice to the user (not an error): on stderr as ``pixseq: message``, or
    to the innermost :func:`capture_notices` of this thread; from rank 0 only."""
    sinks = getattr(_local, "sinks", None)
    if sinks:
        sinks[-1](message)
        return
    if is_main_rank():
        sys.stderr.write(f"pixseq: {message}\n")


@contextlib.contextmanager
def capture_notices(sink: Callable[[str], None] | None = None) -> Iterator[list[str]]:
    """Collect this thread's notices instead of printing them: ``with capture_notices() as
    notes: ...`` gives the list of messages; ``sink`` (when given) receives each one too."""
    notes: list[str] = []

    def collect(message: str) -> None:
        notes.append(message)
        if sink is not None:
            sink(message)

    stack = getattr(_local, "sinks", None)
    if stack is None:
        stack = _local.sinks = []
    stack.append(collect)
    try:
        yield notes
    finally:
        stack.pop()


def capturing() -> bool:
    """Whether this thread's notices are being captured (then progress bars stay off too:
    a server's log is no place for them)."""
    return bool(getattr(_local, "sinks", None))


@contextlib.contextmanager
def capture_progress(sink: Callable[[str, int, int | None], None]) -> Iterator[None]:
    """Report this thread's :func:`progress` bars to ``sink(desc, done, total)`` at every step
    (a web UI shows a long run's progress as it goes). ``sink`` may raise ``KeyboardInterrupt``
    to stop the work as Ctrl-C would: loops that keep their partial result on Ctrl-C keep it."""
    stack = getattr(_local, "progress_sinks", None)
    if stack is None:
        stack = _local.progress_sinks = []
    stack.append(sink)
    try:
        yield
    finally:
        stack.pop()


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", initial: int = 0, **kwargs) -> "tqdm":  # noqa: F821
    """A tqdm progress bar on stderr: rank 0 only, on terminals only, and never while notices
    are captured; where stderr is not a terminal (a log file, a pipe) a plain line every
    :data:`PLAIN_EVERY_S` seconds instead; under :func:`capture_progress` each step goes to
    its sink. Use it as tqdm (iterate, or ``update`` / ``set_postfix_str`` / ``close``)."""
    from tqdm.auto import tqdm

    sinks = getattr(_local, "progress_sinks", None)
    if sinks:
        return _reporting(tqdm)(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=True,
                                sink=sinks[-1], **kwargs)
    if not is_main_rank() or capturing():
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=True, **kwargs)
    if not _is_terminal(sys.stderr):  # a log file, a pipe, CI, nohup: no bar, but a line now and then
        return _plain(tqdm)(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=True, **kwargs)
    return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, file=sys.stderr,
                dynamic_ncols=True, disable=False, **kwargs)


@functools.lru_cache(maxsize=None)
def _reporting(base: type) -> type:
    """A silent ``base`` (tqdm) bar that hands every step to a sink (a disabled tqdm counts nothing)."""

    class Reporting(base):  # type: ignore[misc, valid-type]
        def __init__(self, iterable=None, *args, sink, desc: str = "", initial: int = 0, **kwargs) -> None:
            self._sink, self._desc, self._done = sink, desc, initial
            super().__init__(iterable, *args, desc=desc, initial=initial, **kwargs)

        def update(self, n: float = 1):
            self._done += n
            self._sink(self._desc, self._done, self.total)
            return super().update(n)

        def __iter__(self):
            for item in super().__iter__():  # disabled: the iterable's own items
                yield item
                self.update(1)

    return Reporting


#: Seconds between the plain progress lines written where stderr is not a terminal.
PLAIN_EVERY_S = 30.0


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


@functools.lru_cache(maxsize=None)
def _plain(base: type) -> type:
    """A silent ``base`` (tqdm) bar that writes a plain line (``pixseq: train 120/2000 (6%),
    02:05 elapsed, ~32:38 left, loss 3.21``) to stderr every :data:`PLAIN_EVERY_S` seconds,
    and a last one when it closes if it wrote any: tqdm draws nothing where stderr is not a
    terminal (and its carriage returns make no sense in a log file), so a long run said
    nothing until it ended. Loops shorter than the interval stay quiet."""

    class Plain(base):  # type: ignore[misc, valid-type]
        def __init__(self, iterable=None, *args, desc: str = "", unit: str = "it", initial: int = 0,
                     total=None, **kwargs) -> None:
            self._clock = time.monotonic
            self._desc, self._unit, self._done, self._lines = desc, unit, initial, 0
            self._scale = (kwargs.get("unit_divisor", 1000) if kwargs.get("unit_scale") else None)
            self._start = self._last = self._clock()
            self._start_done = initial
            self._closed = False
            super().__init__(iterable, *args, desc=desc, unit=unit, initial=initial, total=total, **kwargs)

        def update(self, n: float = 1):
            self._done += n
            now = self._clock()
            if now - self._last >= PLAIN_EVERY_S:
                self._last = now
                self._write(now)
            return super().update(n)

        def __iter__(self):
            for item in super().__iter__():  # disabled: the iterable's own items
                yield item
                self.update(1)

        def close(self) -> None:
            if not self._closed and self._lines:
                self._write(self._clock())
            self._closed = True
            super().close()

        def _write(self, now: float) -> None:
            self._lines += 1
            line = plain_progress_line(self._desc, self._done, self.total, now - self._start, self._start_done,
                                       self._unit if self._scale else None, self._scale,
                                       getattr(self, "postfix", None))
            sys.stderr.write(f"pixseq: {line}\n")
            sys.stderr.flush()

    return Plain


def plain_progress_line(desc: str, done: float, total: float | None, elapsed: float, start: float = 0,
                        unit: str | None = None, scale: int | None = None, postfix: str | None = None) -> str:
    """``"train 120/2000 (6%), 2:05 elapsed, ~31:20 left, loss 3.21"``: one plain progress
    report. With ``scale`` (a divisor, as tqdm's ``unit_divisor``) counts read ``1.50MB``
    (``unit`` "B"). The time left extrapolates the rate since ``start`` (where a resumed run
    began)."""
    from tqdm import tqdm

    def count(x: float) -> str:
        return tqdm.format_sizeof(x, unit or "", scale) if scale else f"{x:g}"

    head = f"{desc} " if desc else ""
    if total:
        head += f"{count(done)}/{count(total)} ({100 * done / total:.0f}%)"
    else:
        head += f"{count(done)} so far"
    parts = [head, f"{tqdm.format_interval(elapsed)} elapsed"]
    rate = (done - start) / elapsed if elapsed > 0 else 0.0
    if total and rate > 0 and done < total:
        parts.append(f"~{tqdm.format_interval((total - done) / rate)} left")
    if postfix:
        parts.append(str(postfix))
    return ", ".join(parts)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices). NumPy takes seeds below 2^32 only, so it
    gets ``seed mod 2^32``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def plural(count: int, noun: str) -> str:
    """``"1 sample"``, ``"3 samples"``: a count and a regular English noun."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
