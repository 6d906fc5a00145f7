"""Command-line options shared by every ``pixseq train <model>`` sub-command.

A train sub-command calls :func:`add_train_arguments` with its model's defaults and
:func:`config_from_args` to get the :class:`TrainConfig`; ``--seed`` comes from the common
options every verb has.
"""
from __future__ import annotations

import argparse
import dataclasses

from pixseq.errors import PixseqError
from pixseq.train.config import TrainConfig

# (config field, flag, type, help)
_OPTIONS = (
    ("steps", "--steps", int, "optimizer steps"),
    ("batch_size", "--batch-size", int, "samples per process per micro-batch"),
    ("lr", "--lr", float, "peak learning rate (AdamW)"),
    ("warmup_steps", "--warmup-steps", int, "linear warm-up steps before the cosine decay"),
    ("grad_accum", "--grad-accum", int, "micro-batches accumulated per optimizer step"),
    ("precision", "--precision", str, "fp32 or bf16 (autocast)"),
    ("ema_decay", "--ema-decay", float, "EMA of weights, e.g. 0.999 (0: off)"),
    ("ckpt_every", "--ckpt-every", int, "checkpoint every N steps (0: only at the end)"),
    ("log_every", "--log-every", int, "TensorBoard scalars every N steps (0: off)"),
    ("image_every", "--image-every", int, "TensorBoard image grids every N steps (0: off)"),
    ("num_workers", "--num-workers", int, "data-loading worker processes"),
    ("compile", "--compile", bool, "torch.compile the model after a one-off compile of tens of seconds: "
                                   "on GPUs usually faster steps; on CPU it needs a C++ compiler and can be "
                                   "slower than eager for small models (measure both)"),
)


def add_train_arguments(parser: argparse.ArgumentParser, defaults: TrainConfig | None = None) -> None:
    """Add ``--steps``, ``--batch-size``, ... and ``--resume``, defaulting to ``defaults``."""
    defaults = defaults or TrainConfig()
    group = parser.add_argument_group("training")
    for name, flag, tp, text in _OPTIONS:
        value = getattr(defaults, name)
        if tp is bool:  # a switch, not a value
            group.add_argument(flag, dest=f"train_{name}", action="store_true", default=value, help=text)
            continue
        kwargs = {"choices": ["fp32", "bf16"]} if name == "precision" else {}
        group.add_argument(flag, dest=f"train_{name}", type=tp, default=value,
                           help=f"{text} (default {value})", **kwargs)
    group.add_argument("--resume", action="store_true",
                       help="continue the run in --out exactly where it stopped")


def config_from_args(args: argparse.Namespace, defaults: TrainConfig | None = None) -> TrainConfig:
    """The TrainConfig for parsed ``args`` (fields without a flag keep ``defaults``)."""
    base = dataclasses.asdict(defaults or TrainConfig())
    for name, *_ in _OPTIONS:
        base[name] = getattr(args, f"train_{name}")
    if base["steps"] < 1:  # the Trainer allows 0 (restore only); a CLI run would save an untrained model
        raise PixseqError(f"--steps must be >= 1, got {base['steps']}")
    if getattr(args, "seed", None) is not None:
        base["seed"] = args.seed
    return TrainConfig(**base)
