"""Command-line options shared by every ``pixseq train <family>`` sub-command.

A train sub-command adds its options, :func:`add_train_arguments` with its family's
defaults and :func:`add_val_arguments`; its ``run`` passes :func:`train_options` and the
settings it parsed to the family's ``train_<family>`` recipe (see :mod:`pixseq.train.runs`),
which resolves them against a resumed run's own record. ``--seed`` comes from the common
options every verb has.

With ``--resume`` the run continues with its *own* settings (read back from its
checkpoint): an option given again overrides them, and the Trainer refuses overrides that
would make the resume inexact (see ``RESUMABLE_CHANGES``).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from pixseq.train.config import TrainConfig
from pixseq.train.runs import DEFAULT_VAL_LIMIT
from pixseq.train.schedule import SCHEDULES

# (config field, flag, type, help)
_OPTIONS = (
    ("steps", "--steps", int, "optimizer steps"),
    ("batch_size", "--batch-size", int, "samples per process per micro-batch"),
    ("lr", "--lr", float, "peak learning rate (AdamW)"),
    ("warmup_steps", "--warmup-steps", int, "linear warm-up steps before the decay"),
    ("schedule", "--schedule", str, "learning-rate decay: cosine, or linear (constant, then linear from "
                                    "--decay-start: pix2pix / CycleGAN)"),
    ("decay_start", "--decay-start", float, "with --schedule linear: the fraction of --steps after which "
                                            "the rate decays"),
    ("grad_clip", "--grad-clip", float, "clip the gradient norm to this (0: off)"),
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
    """Add ``--steps``, ``--batch-size``, ..., ``--resume`` and ``--force``.

    Every option's parsed default is None ("not given"), so that the recipe can tell the
    family's defaults from the settings of a run being resumed."""
    defaults = defaults or TrainConfig()
    group = parser.add_argument_group("training", "with --resume the run's own settings are the defaults")
    for name, flag, tp, text in _OPTIONS:
        value = getattr(defaults, name)
        if tp is bool:  # a switch; --no-compile turns it off for a resumed compiled run
            group.add_argument(flag, dest=f"train_{name}", action=argparse.BooleanOptionalAction, default=None,
                               help=f"{text} (default {'on' if value else 'off'})")
            continue
        kwargs = ({"choices": ["fp32", "bf16"]} if name == "precision"
                  else {"choices": list(SCHEDULES)} if name == "schedule"
                  else {"metavar": flag[2:].upper().replace("-", "_")})  # not argparse's TRAIN_STEPS
        group.add_argument(flag, dest=f"train_{name}", type=tp, default=None,
                           help=f"{text} (default {value})", **kwargs)
    group.add_argument("--resume", action="store_true",
                       help="continue the run in --out exactly where it stopped, with its own settings, "
                            "its data included (--data and the like need not be given again)")
    group.add_argument("--force", action="store_true",
                       help="start over in --out, replacing a finished model or an unfinished run there")


def train_options(args: argparse.Namespace) -> dict[str, Any]:
    """The training options as parsed (``None``: not given), keyed by TrainConfig field."""
    return {name: getattr(args, f"train_{name}", None) for name, *_ in _OPTIONS}


def config_from_args(args: argparse.Namespace, defaults: TrainConfig | None = None,
                     train_dir: str | Path | None = None) -> TrainConfig:
    """The TrainConfig for parsed ``args`` (:func:`pixseq.train.runs.train_config`)."""
    from pixseq.train.runs import train_config

    return train_config(train_options(args), defaults, train_dir, getattr(args, "resume", False),
                        getattr(args, "seed", None))


def given(args: argparse.Namespace, keys: Sequence[str]) -> dict[str, Any]:
    """The run settings ``keys`` as parsed (``None``: not given), for a ``train_<family>`` recipe."""
    return {k: getattr(args, k) for k in keys}


def add_val_arguments(parser: argparse.ArgumentParser) -> None:
    """``--val-data SPEC`` and ``--val-limit N`` (run settings: recorded with the run)."""
    parser.add_argument("--val-data", default=None, metavar="SPEC",
                        help="held-out data spec (e.g. fashion-mnist:test): its loss is measured at every "
                             "checkpoint on the saved weights and printed at the end")
    parser.add_argument("--val-limit", type=int, default=None, metavar="N",
                        help=f"evaluate the first N held-out images (default {DEFAULT_VAL_LIMIT})")
