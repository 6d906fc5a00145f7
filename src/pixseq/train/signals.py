"""Stopping a training run cleanly on SIGINT / SIGTERM (Ctrl-C, SLURM pre-emption)."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

from pixseq.runtime import notice


class StopFlag:
    """Set by the first signal: stop at the next step boundary."""

    requested = False


@contextmanager
def deferred_stop_signals() -> Iterator[StopFlag]:
    """Turn the first SIGINT/SIGTERM into a request to stop at the next step boundary.

    Stopping between steps lets the Trainer save a consistent checkpoint (SLURM sends SIGTERM
    before pre-empting a job). A second signal interrupts at once. Outside the main thread
    signals cannot be caught and the block runs unchanged.
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True
        notice("stop requested: finishing this step and saving a checkpoint (signal again to abort now)")

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)
