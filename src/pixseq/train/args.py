"""Command-line options shared by every ``pixseq train <model>`` sub-command.

A train sub-command calls :func:`add_train_arguments` with its model's defaults,
:func:`check_out_dir` before it writes anything, and :func:`config_from_args` to get the
:class:`TrainConfig`; ``--seed`` comes from the common options every verb has.

With ``--resume`` the run continues with its *own* settings (read back from its
checkpoint): an option given again overrides them, and the Trainer refuses overrides that
would make the resume inexact (see ``RESUMABLE_CHANGES``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pixseq.cli.common import notice
from pixseq.errors import PixseqError
from pixseq.io import atomic_write
from pixseq.train.config import TrainConfig
from pixseq.train.files import CKPT_NAME, check_writable_folder, read_checkpoint_head

# (config field, flag, type, help)
_OPTIONS = (
    ("steps", "--steps", int, "optimizer steps"),
    ("batch_size", "--batch-size", int, "samples per process per micro-batch"),
    ("lr", "--lr", float, "peak learning rate (AdamW)"),
    ("warmup_steps", "--warmup-steps", int, "linear warm-up steps before the cosine decay"),
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

    Every option's parsed default is None ("not given"), so that :func:`config_from_args`
    can tell the model's defaults from the settings of a run being resumed."""
    defaults = defaults or TrainConfig()
    group = parser.add_argument_group("training", "with --resume the run's own settings are the defaults")
    for name, flag, tp, text in _OPTIONS:
        value = getattr(defaults, name)
        if tp is bool:  # a switch; --no-compile turns it off for a resumed compiled run
            group.add_argument(flag, dest=f"train_{name}", action=argparse.BooleanOptionalAction, default=None,
                               help=f"{text} (default {'on' if value else 'off'})")
            continue
        kwargs = ({"choices": ["fp32", "bf16"]} if name == "precision"
                  else {"metavar": flag[2:].upper().replace("-", "_")})  # not argparse's TRAIN_STEPS
        group.add_argument(flag, dest=f"train_{name}", type=tp, default=None,
                           help=f"{text} (default {value})", **kwargs)
    group.add_argument("--resume", action="store_true",
                       help="continue the run in --out exactly where it stopped, with its own settings")
    group.add_argument("--force", action="store_true",
                       help="start over in --out, replacing a finished model or an unfinished run there")


def check_out_dir(model_dir: str | Path, train_dir: str | Path, resume: bool, force: bool) -> None:
    """Refuse, before anything is written, to replace a finished model (``model_dir``) or the
    checkpoint of an unfinished run (``train_dir``: hours of work) without ``--force``, or
    to train into a ``train_dir`` that cannot be written."""
    if resume and force:
        raise PixseqError("--resume and --force contradict each other; choose one")
    check_writable_folder(Path(train_dir))  # before the data are loaded, not at the first checkpoint
    if resume or force:
        return
    if (Path(model_dir) / "config.json").exists():
        raise PixseqError(f"{model_dir} already holds a trained model; use --resume to continue it "
                          f"or --force to retrain")
    if (Path(train_dir) / CKPT_NAME).exists():
        head = read_checkpoint_head(train_dir)
        where = f" (step {head['step']} of {head['config'].get('steps', '?')})" if head is not None else ""
        raise PixseqError(f"{model_dir} holds an unfinished run{where}; use --resume to continue it or --force "
                          f"to start over")


def config_from_args(args: argparse.Namespace, defaults: TrainConfig | None = None,
                     train_dir: str | Path | None = None) -> TrainConfig:
    """The TrainConfig for parsed ``args``: options given, else (when ``args.resume`` and
    ``train_dir`` holds a checkpoint) the run's saved settings, else ``defaults``."""
    base = dataclasses.asdict(defaults or TrainConfig())
    head = read_checkpoint_head(train_dir) if getattr(args, "resume", False) and train_dir is not None else None
    saved = head["config"] if head is not None else {}
    base.update({k: v for k, v in saved.items() if k in base})  # a newer pixseq's extra keys are ignored
    for name, *_ in _OPTIONS:
        given = getattr(args, f"train_{name}")
        if given is not None:
            base[name] = given
    if base["steps"] < 1:  # the Trainer allows 0 (restore only); a CLI run would save an untrained model
        raise PixseqError(f"--steps must be >= 1, got {base['steps']}")
    # --seed defaults to 0 for every verb, so 0 cannot mean "given" here: on resume the run's
    # seed stays (its RNG states come from the checkpoint anyway) unless another one is named.
    seed = getattr(args, "seed", None)
    if seed is not None and (seed != 0 or "seed" not in saved):
        base["seed"] = seed
    return TrainConfig(**base)


#: The model/data settings of a run, next to its checkpoint (``--resume`` reuses them).
RUN_RECORD = "run.json"


def run_settings(args: argparse.Namespace, keys: Sequence[str] | dict[str, Any],
                 train_dir: str | Path) -> dict[str, Any]:
    """A run's model/data settings (the options named ``keys``): as given when starting a run,
    or on ``--resume`` the ones recorded by :class:`RunRecorder`; a different value given
    again with ``--resume`` is refused. Not given is None, or the default when ``keys`` is a
    ``{name: default}`` dict (a verb with defaults that depend on the data resolves them itself)."""
    defaults = keys if isinstance(keys, dict) else dict.fromkeys(keys)
    settings = _given_or_recorded(args, tuple(defaults), train_dir)
    return {k: defaults[k] if v is None else v for k, v in settings.items()}


def _given_or_recorded(args: argparse.Namespace, keys: Sequence[str], train_dir: str | Path) -> dict[str, Any]:
    given = {k: getattr(args, k) for k in keys}
    path = Path(train_dir) / RUN_RECORD
    if not (args.resume and path.is_file()):  # no record: nothing to resume (the Trainer says so)
        return given
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PixseqError(f"cannot resume: {path} is unreadable ({exc})") from None
    changed = [f"--{k.replace('_', '-')} {saved.get(k)!r} -> {v!r}" for k, v in given.items()
               if v is not None and k in saved and v != saved[k]]
    if changed:
        raise PixseqError(f"--resume must keep the run's model/data settings ({'; '.join(changed)}); "
                          f"drop those options or start a fresh run with another --out")
    return {**given, **{k: v for k, v in saved.items() if k in given}}


class RunRecorder:
    """Trainer callback that writes a new run's resolved settings (``RUN_RECORD``) beside its
    first checkpoint, so a run that fails before it has anything to resume (a bad option met
    by the Trainer, a dataset too small for the processes) leaves no file behind.
    A resumed run keeps the record it has; only rank 0 writes."""

    def __init__(self, train_dir: str | Path, settings: dict[str, Any], resume: bool) -> None:
        self.path, self.settings, self.pending = Path(train_dir) / RUN_RECORD, dict(settings), not resume

    def on_checkpoint(self, trainer, step: int) -> None:
        if self.pending and trainer.dist.is_main:
            with atomic_write(self.path, "w") as fh:
                json.dump(self.settings, fh, indent=2)
        self.pending = False


#: Held-out images evaluated at each checkpoint when --val-limit is not given.
DEFAULT_VAL_LIMIT = 1000


def add_val_arguments(parser: argparse.ArgumentParser) -> None:
    """``--val-data SPEC`` and ``--val-limit N`` (run settings: record them with the run)."""
    parser.add_argument("--val-data", default=None, metavar="SPEC",
                        help="held-out data spec (e.g. fashion-mnist:test): its loss is measured at every "
                             "checkpoint on the saved weights and printed at the end")
    parser.add_argument("--val-limit", type=int, default=None, metavar="N",
                        help=f"evaluate the first N held-out images (default {DEFAULT_VAL_LIMIT})")


def load_val_data(settings: dict[str, Any], train) -> tuple[list[np.ndarray], np.ndarray | None] | None:
    """The ``--val-data`` images (the first ``--val-limit``; None without ``--val-data``) and,
    for a class-conditional run (``settings["classes"]``), their labels renumbered to the
    training data's classes by name (:meth:`pixseq.data.ImageSet.labels_for`)."""
    from pixseq.data import load_data

    if settings["val_data"] is None:
        if settings["val_limit"] is not None:
            raise PixseqError("--val-limit needs --val-data")
        return None
    if _same_data(settings["val_data"], settings["data"]):
        notice(f"--val-data is the training data {settings['data']!r}: its loss is not a held-out measure")
    limit = settings["val_limit"] if settings["val_limit"] is not None else DEFAULT_VAL_LIMIT
    if limit < 1:
        raise PixseqError(f"--val-limit must be >= 1, got {limit}")
    val = load_data(settings["val_data"], limit=limit)
    if not settings["classes"]:
        return list(val.images), None
    labels = val.labels_for(train.class_names, f"the training data {settings['data']!r}")
    if labels is None:
        val.require_labels("--classes with --val-data")
    return list(val.images), labels


def _same_data(a: str, b: str) -> bool:
    """Whether two data specs name the same data, however written: ``fashion-mnist`` is
    ``fashion-mnist:train``, and ``runs/../data/`` is the folder ``data``."""
    def canonical(spec: str) -> str:
        if spec == "fashion-mnist":
            return "fashion-mnist:train"
        return str(Path(spec).resolve()) if Path(spec).is_dir() else spec

    return canonical(a) == canonical(b)
