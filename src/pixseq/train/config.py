"""Training hyper-parameters and the task protocol the Trainer drives."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Iterable, Protocol

import numpy as np
from torch import Tensor, nn

from pixseq.errors import PixseqError
from pixseq.train.schedule import SCHEDULES


@dataclass
class TrainConfig:
    """Everything that shapes a training run.

    ``batch_size`` is per process and per micro-batch: one optimizer step sees
    ``batch_size * grad_accum * world_size`` samples. ``steps`` counts optimizer steps.
    ``ckpt_every=0`` checkpoints only at the end; ``log_every=0`` disables TensorBoard;
    ``image_every>0`` logs image grids from ``task.sample_images`` (when the task has it).
    ``schedule``: ``"cosine"`` (warm-up, cosine to ``min_lr_ratio``) or ``"linear"`` (warm-up,
    constant until ``decay_start * steps``, then linear towards ``min_lr_ratio``; see
    :mod:`pixseq.train.schedule`).
    """

    steps: int = 1000
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    schedule: str = "cosine"
    decay_start: float = 0.5
    grad_clip: float = 1.0
    grad_accum: int = 1
    precision: str = "fp32"
    ema_decay: float = 0.0
    ckpt_every: int = 200
    log_every: int = 10
    image_every: int = 0
    seed: int = 0
    num_workers: int = 0
    compile: bool = False

    def __post_init__(self) -> None:
        # Called by from_dict too, so a bad config file gets the same one-line errors.
        self._check_types()
        checks = [
            (self.steps >= 0, "steps must be >= 0"), (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0, "lr must be > 0"), (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas must be two numbers in [0, 1)"),
            (self.warmup_steps >= 0, "warmup_steps must be >= 0"),
            (0 <= self.min_lr_ratio <= 1, "min_lr_ratio must be in [0, 1]"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"),
            (0 <= self.decay_start <= 1, "decay_start must be in [0, 1] (a fraction of the steps)"),
            (self.grad_clip >= 0, "grad_clip must be >= 0 (0 disables clipping)"),
            (self.grad_accum >= 1, "grad_accum must be >= 1"),
            (self.precision in ("fp32", "bf16"), f"precision must be 'fp32' or 'bf16', got {self.precision!r}"),
            (0 <= self.ema_decay < 1, "ema_decay must be in [0, 1) (0 disables EMA)"),
            (min(self.ckpt_every, self.log_every, self.image_every, self.num_workers) >= 0,
             "ckpt_every, log_every, image_every and num_workers must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise PixseqError(f"bad training config: {message}")
        self.betas = (float(self.betas[0]), float(self.betas[1]))

    def _check_types(self) -> None:
        """from_dict checks types for config files; a config built in Python gets them checked
        here, before the range checks compare a str with 0, or steps=2.5 trains silently."""
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise PixseqError(f"bad training config: {name} must be an integer, got {value!r}")
            setattr(self, name, int(value))  # a NumPy integer is no JSON: the first checkpoint would fail
        if not 0 <= self.seed < 2**63:  # what torch, NumPy and Python all take (as the CLI's --seed)
            raise PixseqError(f"bad training config: seed must be in 0..2^63-1, got {self.seed}")
        for name in _FLOAT_FIELDS:
            if not _finite(getattr(self, name)):
                raise PixseqError(f"bad training config: {name} must be a finite number, got {getattr(self, name)!r}")
            setattr(self, name, float(getattr(self, name)))  # np.float32 too: see above
        if not isinstance(self.compile, (bool, np.bool_)):
            raise PixseqError(f"bad training config: compile must be true or false, got {self.compile!r}")
        self.compile = bool(self.compile)
        if not (isinstance(self.betas, (tuple, list)) and len(self.betas) == 2 and all(map(_finite, self.betas))):
            raise PixseqError(f"bad training config: betas must be two numbers in [0, 1), got {self.betas!r}")


_INT_FIELDS = ("steps", "batch_size", "warmup_steps", "grad_accum", "ckpt_every", "log_every", "image_every",
               "seed", "num_workers")
_FLOAT_FIELDS = ("lr", "weight_decay", "min_lr_ratio", "decay_start", "grad_clip", "ema_decay")


def _finite(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


#: Config keys that may change between a run and its resumption without breaking exactness
#: of what was already trained (``steps`` extends/shortens the cosine horizon; ``compile``
#: changes how the same function is computed, not which; ``lr`` and ``grad_clip`` apply from
#: the resumed step on: the way out of a run that stopped on a NaN, whose kept checkpoint
#: would otherwise replay the same steps into the same NaN).
RESUMABLE_CHANGES = frozenset({"steps", "ckpt_every", "log_every", "image_every", "num_workers", "compile",
                               "lr", "grad_clip"})


class TrainTask(Protocol):
    """What a model family gives the Trainer.

    Within one step every part sees the same ``grad_accum`` micro-batches (a GAN's
    discriminator and generator steps use the same real images), in ``parts()`` order.

    Required: ``parts``, ``modules``, ``parameters``, ``training_step``. Optional methods the
    Trainer uses when present:

    * ``lr_scale(part) -> float``: multiply ``config.lr`` for that part's optimizer;
    * ``optim_overrides(part) -> dict``: any of ``lr``, ``betas``, ``weight_decay`` for that part
      (e.g. ``{"betas": (0.5, 0.999)}`` for a DCGAN);
    * ``sample_images(batch) -> Tensor (B,3,H,W) in [0,1]``: TensorBoard image grids;
    * ``count_tokens(batch) -> int``: tokens in a batch, for tokens/s (else samples/s);
    * ``count_flops(batch) -> float``: training FLOPs of a batch (forward + backward), for the
      achieved TFLOP/s logged next to tokens/s (to compare with the hardware's peak);
    * ``on_step_end(step)``: after all parts of a step were updated (e.g. codebook restarts);
    * ``compile_targets() -> Iterable[nn.Module]``: what ``compile=True`` compiles, the modules
      whose ``module(...)`` calls do the work (default: ``modules()``);
    * ``eval_step(batch) -> dict[str, float]``: per-item means of held-out scalars for a batch
      (called without gradients, modules in eval mode); needed when the Trainer is given
      ``eval_data``.
    """

    def parts(self) -> list[str]:
        """Optimizer names in update order, e.g. ``["model"]`` or ``["disc", "gen"]``."""
        ...

    def modules(self) -> dict[str, nn.Module]:
        """Every module that is trained and checkpointed, by name."""
        ...

    def parameters(self, part: str) -> Iterable[nn.Parameter]:
        """The parameters ``part``'s optimizer updates."""
        ...

    def training_step(self, batch, step: int, part: str) -> tuple[Tensor, dict[str, float | Tensor]]:
        """Scalar loss for ``part`` on ``batch`` (already on the device) and scalars to log:
        numbers, or one-element tensors, which the Trainer reads back together once per step
        (an ``.item()`` here would make the host wait for the device between forward and
        backward)."""
        ...
