"""Shared test set-up: CPU-only, deterministic, GPU/weights tests skipped with a reason."""
from __future__ import annotations

import os

import pytest
import torch

# Tests must never reach the network (CI has none): make hub libraries fail fast offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PIXSEQ_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# Eager kernels unless a test asks for fused ones (the fused_kernels fixture, or its own
# switch): fused kernels are pixseq's default, and each fused path has tests against the
# same references, but most tests check the eager code, which also runs on GPUs.
os.environ["PIXSEQ_COMPILE"] = "0"

# One thread everywhere: the test models are tiny (two threads fight over CI's two shared
# cores and run slower), and a fixed thread count keeps CPU reductions identical between
# the runs and subprocesses that exactness tests compare.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip @gpu tests without CUDA; @weights tests unless PIXSEQ_WEIGHTS_DIR is set."""
    no_gpu = pytest.mark.skip(reason="needs a CUDA GPU; none available")
    no_weights = pytest.mark.skip(reason="needs downloaded pretrained weights; set PIXSEQ_WEIGHTS_DIR to run")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_gpu)
        if "weights" in item.keywords and not os.environ.get("PIXSEQ_WEIGHTS_DIR"):
            item.add_marker(no_weights)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def fused_kernels():
    """Fused kernels (pixseq's C kernels) switched on for one test, and off again after it.

    A test using it should call :func:`pixseq.fused.available` after its first fused call
    and skip when the kernels cannot be built on the machine (no C compiler).
    """
    from pixseq import fused

    with fused.using(True):
        yield fused


@pytest.fixture
def stop_training_after(monkeypatch):
    """``stop_training_after(n)``: from now on a Trainer raises KeyboardInterrupt (what Ctrl-C
    between two steps does) once ``n`` steps are complete; ``stop_training_after(None)`` undoes it."""
    from pixseq.train.trainer import Trainer

    original = Trainer._run_one_step

    def arm(n: int | None) -> None:
        def stop_after_n(self, pbar):
            original(self, pbar)
            if self.step == n:
                raise KeyboardInterrupt

        monkeypatch.setattr(Trainer, "_run_one_step", original if n is None else stop_after_n)

    return arm
