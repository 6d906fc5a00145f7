"""Shared set-up for the iGPT benchmarks: the same-config Hugging Face ImageGPT and pixseq GPT.

The pixseq model is *converted* from the randomly initialised HF model, so both compute the
same function with the same weights (HF's RMS-style norm and quick-GELU); only the
implementation differs. Not a test; run the ``igpt_*.py`` scripts directly.
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Callable

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pixseq.convert.hf_imagegpt import convert_hf_imagegpt  # noqa: E402
from pixseq.priors.gpt import GPT_PRESETS  # noqa: E402


def hf_and_pixseq(preset: str, palette: int = 512, side: int = 32, seed: int = 0):
    """A random HF ``ImageGPTForCausalImageModeling`` of a pixseq size preset, and its conversion."""
    from transformers import ImageGPTConfig, ImageGPTForCausalImageModeling

    torch.manual_seed(seed)
    p = GPT_PRESETS[preset]
    cfg = ImageGPTConfig(vocab_size=palette + 1, n_positions=side * side, n_embd=p["n_embd"],
                         n_layer=p["n_layer"], n_head=p["n_head"], attn_pdrop=0.0, resid_pdrop=0.0,
                         embd_pdrop=0.0)
    hf = ImageGPTForCausalImageModeling(cfg).eval()
    clusters = np.random.default_rng(seed).uniform(-1, 1, (palette, 3))
    return hf, convert_hf_imagegpt(hf, clusters=clusters)


def timeit(fns: dict[str, Callable[[], object]], repeats: int = 3) -> dict[str, tuple[float, float]]:
    """Median (CPU seconds, wall seconds) per call of each function, interleaved (A, B, A,
    B, ...) so that load from other processes hits every contender alike. With one thread,
    process CPU time is the robust measure on a shared machine: wall time also counts the
    time the scheduler gave to the neighbours."""
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            times[name].append((time.process_time() - c0, time.perf_counter() - w0))
    return {k: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v)) for k, v in times.items()}


def matmul_peak(dtype: torch.dtype, n: int = 1024, repeats: int = 10) -> float:
    """FLOP/s of an ``n x n @ n x n`` matmul in ``dtype`` per *CPU* second (best of ``repeats``),
    the same clock the benchmarks use for the models."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        a @ b
        best = min(best, time.process_time() - t0)
    return 2 * n ** 3 / best


def machine_line() -> str:
    """One line naming the CPU, threads and load, for the tables' captions."""
    name = "cpu"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{name}, torch {torch.__version__}, {torch.get_num_threads()} threads, load avg {load:.1f}"
