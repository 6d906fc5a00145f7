"""One notice when a run is memorising its data instead of learning from it.

Training on 5 photos reached 0.012 bits/pixel with no word said: a training loss that low
is the model reciting its data, and it says nothing about new images. The Trainer runs a
:class:`MemorisationWatch` as its first callback; it says so once per run, from rank 0:

* with held-out data, at the first evaluation where the held-out ``loss`` is both more than
  :data:`GAP_RATIO` times and :data:`GAP_MIN` above the mean training loss of the last
  :data:`RECENT` steps (the two losses are the same quantity only where the task's
  ``eval_step`` returns a ``"loss"``: the GPT priors and the classifiers);
* without, at the first step of a fresh run, when the model has more than
  :data:`PARAMS_PER_UNIT` trainable parameters per training token (tasks that count tokens)
  or pixel (others), and the run passes over the data at least :data:`MIN_PASSES` times:
  fewer passes cannot recite much, whatever the size.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from pixseq.runtime import notice

#: The held-out loss is "far above" the training loss past this ratio ...
GAP_RATIO = 2.0
#: ... and this absolute gap (nats): a nearly solved task's 0.004 against 0.01 is no alarm.
GAP_MIN = 0.1
#: Training steps whose mean loss the held-out loss is held against (one step is noisy).
RECENT = 20
#: Trainable parameters per training token / pixel past which a model can hold its data.
#: (iGPT ``s``, 1.06 M parameters: 0.07 per token on Fashion-MNIST at 16 px, 47 on the 22
#: photos at 32 px, 207 on 5 photos.)
PARAMS_PER_UNIT = 10.0
#: Passes over the data a run must plan before its size is worth a word.
MIN_PASSES = 10.0


class MemorisationWatch:
    """Trainer callback: the one memorisation notice (see the module docstring)."""

    def __init__(self) -> None:
        self.said = False
        self._first = True

    def on_record(self, trainer, step: int, record: dict) -> None:
        first, self._first = self._first, False
        if self.said or not trainer.dist.is_main:
            return
        if trainer.eval_data is None:
            if first and step == 1:  # a fresh run's first step (a resume said it when it started)
                self._check_size(trainer)
        elif "eval/loss" in record:
            self._check_gap(trainer, step, record["eval/loss"])

    def _check_gap(self, trainer, step: int, held_out: float) -> None:
        recent = [r["loss"] for r in trainer.history[-RECENT:] if math.isfinite(r.get("loss", math.nan))]
        if not recent:
            return
        train = sum(recent) / len(recent)
        if held_out > GAP_RATIO * train and held_out - train > GAP_MIN:
            self._say(f"the training loss ({train:.4g}, mean of the last {len(recent)} steps) is far below the "
                      f"held-out loss ({held_out:.4g}) at step {step}: the model is memorising its "
                      f"{len(trainer.dataset)} training items, and its training loss says little about new "
                      f"images; use more data, a smaller model or fewer steps")

    def _check_size(self, trainer) -> None:
        params = count_parameters(trainer.params.values())
        per_item, unit = units_per_item(trainer.task, trainer._last_batch, trainer.config.batch_size)
        if per_item <= 0:
            return
        units = per_item * len(trainer.dataset)
        cfg = trainer.config
        passes = cfg.steps * cfg.batch_size * cfg.grad_accum * trainer.dist.world_size / len(trainer.dataset)
        if params / units > PARAMS_PER_UNIT and passes >= MIN_PASSES:
            self._say(f"the model has {_count(params)} trainable parameters for {_count(units)} training {unit}s "
                      f"({params / units:.0f} per {unit}) and the run passes over them {passes:.0f} times: it "
                      f"will likely memorise them, and a low training loss will say little about new images; "
                      f"use more data or a smaller model, and measure held-out data (--val-data)")

    def _say(self, message: str) -> None:
        self.said = True
        notice(message)


def count_parameters(groups) -> int:
    """Elements of the unique parameters in ``groups`` (lists of parameters; shared ones once)."""
    seen: dict[int, int] = {}
    for group in groups:
        for p in group:
            seen[id(p)] = p.numel()
    return sum(seen.values())


def units_per_item(task: Any, batch: Any, batch_size: int) -> tuple[float, str]:
    """Training tokens per item (``task.count_tokens``), else pixels per item: the ``H x W``
    of every 4-d float tensor ``(B, C, H, W)`` in ``batch``; ``(0, ...)`` when neither."""
    if hasattr(task, "count_tokens"):
        return float(task.count_tokens(batch)) / batch_size, "token"
    return _pixels(batch) / batch_size, "pixel"


def _pixels(batch: Any) -> float:
    if isinstance(batch, torch.Tensor):
        return float(batch.numel() // batch.shape[1]) if batch.dim() == 4 and batch.is_floating_point() else 0.0
    if isinstance(batch, dict):
        return sum(_pixels(v) for v in batch.values())
    if isinstance(batch, (list, tuple)):
        return sum(_pixels(v) for v in batch)
    return 0.0


def _count(n: float) -> str:
    """``1.06 M``, ``5.1 k``, ``640``."""
    for scale, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.0f}"
