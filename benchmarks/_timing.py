"""Timing helpers shared by the benchmarks: the least disturbed time of one call, with the
contenders of a comparison interleaved; pixseq's two CPU paths as two contenders.

This machine is shared, and its noise only ever adds time: another tenant's burst, a
preemption, a cold cache, a slower clock for a while. A fast function (PSNR of a batch
takes ~0.3 ms) is hit hardest: the best of three calls varied 2-3x between runs. So

* every call is timed on its own and the minimum is kept, over about ``budget`` seconds
  of calls per contender (at least ``repeats``): a fast function gets many chances at a
  quiet moment, a slow one a few;
* the contenders take turns (round-robin, each round giving every one about the same
  time), so a noisy stretch of the run hits all of them, not just whoever ran then.
  The ratios between contenders are what the benchmarks report.
"""
from __future__ import annotations

import time
from typing import Callable


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def best_times(fns: dict[str, Callable[[], object]], repeats: int = 3, budget: float = 1.0) -> dict[str, float]:
    """Seconds of the fastest call of each function, the functions timed in turns.

    The first call of each is a warm-up (allocations, kernel selection, lazy builds), not
    counted; its duration sets how many calls the function gets per round (about as many
    as the slowest one's single call lasts) and the number of rounds (``budget`` seconds
    per function, at least ``repeats``).
    """
    first = {name: max(_timed(fn), 1e-9) for name, fn in fns.items()}
    slowest = max(first.values())
    calls = {name: max(1, int(slowest / t)) for name, t in first.items()}
    rounds = max(repeats, int(budget / slowest))
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(calls[name]):
                best[name] = min(best[name], _timed(fn))
    return best


def best_time(fn: Callable[[], object], repeats: int = 3, budget: float = 1.0) -> float:
    """Seconds of the fastest call of ``fn`` (see :func:`best_times`)."""
    return best_times({"fn": fn}, repeats, budget)["fn"]


def fused_and_eager(fn: Callable[[], object]) -> dict[str, Callable[[], object]]:
    """``fn`` as two contenders: "pixseq" (its default on CPU, the fused C kernels of
    :mod:`pixseq.fused`) and "pixseq, eager" (the PyTorch code, as ``PIXSEQ_COMPILE=0``)."""
    from pixseq import fused

    def with_fused(on: bool) -> Callable[[], object]:
        def run() -> object:
            with fused.using(on):
                return fn()
        return run

    return {"pixseq": with_fused(True), "pixseq, eager": with_fused(False)}
