"""A training run as a library call: its settings record, its checks, its held-out data.

Every model family has the same three kinds of recipe, in its own package (the igpt's in
:mod:`pixseq.models.igpt_train`, Taming's in :mod:`pixseq.models.taming_train`, a GAN's in
``pixseq.gans.train`` ...):

* ``build_<family>(...)``: a fresh model from settings (never touches disk);
* ``fit_<family>(model or config, images, ..., out_dir, train_config)``: train on arrays
  with the one :class:`~pixseq.train.Trainer`, then write the model directory;
* ``train_<family>(data, out, **settings, train=..., resume=..., force=...)``: the whole of
  ``pixseq train <family>``: data spec to model directory, with exact ``resume``; it returns
  a :class:`TrainResult`. The CLI verb parses options, calls it once and prints.

Models are loaded back with :func:`pixseq.load_model`, whatever their kind.

This module holds what those recipes share. Settings not given are ``None``: on a resumed
run they are read back from the run's record (:data:`RUN_RECORD`), otherwise they take the
family's defaults; a resumed run refuses settings that differ from its record.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from pixseq.errors import PixseqError
from pixseq.io import atomic_write
from pixseq.runtime import notice
from pixseq.train.config import TrainConfig
from pixseq.train.files import CKPT_NAME, check_writable_folder, read_checkpoint_head

#: The model/data settings of a run, next to its checkpoint (``resume`` reuses them).
RUN_RECORD = "run.json"

#: Held-out images evaluated at each checkpoint when ``val_limit`` is not given.
DEFAULT_VAL_LIMIT = 1000


@dataclass
class TrainResult:
    """What a ``train_<family>`` recipe hands back: the trained model (the saved weights:
    the EMA when on), the Trainer's history, the run's resolved settings, the number of
    held-out images measured at each checkpoint (0 without ``val_data``)."""

    model: torch.nn.Module
    history: list[dict]
    settings: dict[str, Any]
    train_config: TrainConfig
    held_out: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def last(self) -> dict:
        """The last history record ({} when the run had no step to log)."""
        return self.history[-1] if self.history else {}


def check_out_dir(model_dir: str | Path, train_dir: str | Path, resume: bool, force: bool,
                  inputs: Sequence[str | Path | None] = ()) -> None:
    """The overwrite policy of the train verbs (:func:`pixseq.io.claim_output`), before
    anything is read or written: ``model_dir`` is created at most one level deep and is none
    of ``inputs`` (a tokenizer, an ``init`` model, the data: not even with ``force``); a
    finished model or the checkpoint of an unfinished run (``train_dir``: hours of work) is
    replaced only with ``force``; ``resume`` with nothing to resume is the one error."""
    from pixseq.io import claim_output

    if resume and force:
        raise PixseqError("--resume and --force contradict each other; choose one")
    claim_output(model_dir, "--out", folder=True, inputs=inputs)
    check_writable_folder(Path(train_dir))  # before the data are loaded, not at the first checkpoint
    if resume:
        if not (Path(train_dir) / CKPT_NAME).is_file():
            raise PixseqError(f"nothing to resume in {model_dir}: it holds no training run ({CKPT_NAME}); "
                              f"drop --resume to start one")
        return
    if force:
        return
    if (Path(model_dir) / "config.json").exists():
        raise PixseqError(f"{model_dir} already holds a trained model; use --resume to continue it "
                          f"or --force to retrain")
    if (Path(train_dir) / CKPT_NAME).exists():
        head = read_checkpoint_head(train_dir)
        where = f" (step {head['step']} of {head['config'].get('steps', '?')})" if head is not None else ""
        raise PixseqError(f"{model_dir} holds an unfinished run{where}; use --resume to continue it or --force "
                          f"to start over")


def train_config(given: Mapping[str, Any] | TrainConfig | None, defaults: TrainConfig | None = None,
                 train_dir: str | Path | None = None, resume: bool = False,
                 seed: int | None = None) -> TrainConfig:
    """The TrainConfig of a run: the fields ``given`` (None: not given), else (``resume`` and
    ``train_dir`` holds a checkpoint) the run's saved settings, else ``defaults``.

    A whole :class:`TrainConfig` given is used as it is (its steps still checked)."""
    if isinstance(given, TrainConfig):
        given = dataclasses.asdict(given)
    base = dataclasses.asdict(defaults or TrainConfig())
    head = read_checkpoint_head(train_dir) if resume and train_dir is not None else None
    saved = head["config"] if head is not None else {}
    base.update({k: v for k, v in saved.items() if k in base})  # a newer pixseq's extra keys are ignored
    unknown = sorted(set(given or {}) - set(base))
    if unknown:
        raise PixseqError(f"unknown training setting(s) {', '.join(unknown)}")
    base.update({k: v for k, v in (given or {}).items() if v is not None})
    if base["steps"] < 1:  # the Trainer allows 0 (restore only); a run would save an untrained model
        raise PixseqError(f"--steps must be >= 1, got {base['steps']}")
    if (given or {}).get("warmup_steps") is None and "warmup_steps" not in saved:
        # the family's default warm-up, not the user's: at most half of a short run, so that
        # pixseq's own default never trips the Trainer's notice of a warm-up that never ends
        base["warmup_steps"] = min(base["warmup_steps"], base["steps"] // 2)
    # --seed defaults to 0 for every verb, so 0 cannot mean "given" here: on resume the run's
    # seed stays (its RNG states come from the checkpoint anyway) unless another one is named.
    if seed is not None and (seed != 0 or "seed" not in saved):
        base["seed"] = seed
    return TrainConfig(**base)


def run_settings(given: Mapping[str, Any], defaults: Sequence[str] | Mapping[str, Any],
                 train_dir: str | Path, resume: bool) -> dict[str, Any]:
    """A run's model/data settings (the keys of ``defaults``): as ``given`` when starting a
    run, or on ``resume`` the ones recorded by :class:`RunRecorder` -- the data spec too, so
    ``--resume`` needs no ``--data``; a different value given again on ``resume`` is refused
    (data specs are compared by what they name: ``fashion-mnist`` is ``fashion-mnist:train``).
    Not given is None, or the default when ``defaults`` is a ``{name: default}`` mapping (a
    family whose defaults depend on the data resolves them itself). A ``data`` key must end
    up with a value: a fresh run without one is refused."""
    defaults = dict(defaults) if isinstance(defaults, Mapping) else dict.fromkeys(defaults)
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise PixseqError(f"unknown setting(s) {', '.join(unknown)} (known: {', '.join(defaults)})")
    settings = _given_or_recorded({k: given.get(k) for k in defaults}, train_dir, resume)
    if "data" in settings and settings["data"] is None:
        if resume:  # a run of an older pixseq without a record, or a record without the spec
            raise PixseqError(f"the run in {train_dir} does not record its data spec; give --data")
        raise PixseqError("--data is required (a data spec: fashion-mnist[:train|test], a folder, photos); "
                          "only --resume takes the run's own")
    return {k: defaults[k] if v is None else v for k, v in settings.items()}


def _given_or_recorded(given: dict[str, Any], train_dir: str | Path, resume: bool) -> dict[str, Any]:
    path = Path(train_dir) / RUN_RECORD
    if not (resume and path.is_file()):  # no record: nothing to resume (the Trainer says so)
        return given
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PixseqError(f"cannot resume: {path} is unreadable ({exc})") from None
    changed = [f"--{k.replace('_', '-')} {saved.get(k)!r} -> {v!r}" for k, v in given.items()
               if v is not None and k in saved and not _same_setting(k, v, saved[k])]
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


def check_limit(value: int | None, flag: str = "--limit") -> None:
    """A count option (``--limit``, ``--image-size`` ...) is a positive integer when given."""
    if value is not None and value < 1:
        raise PixseqError(f"{flag} must be >= 1, got {value}")


def load_val_data(settings: dict[str, Any], train) -> tuple[list[np.ndarray], np.ndarray | None] | None:
    """The ``val_data`` images (the first ``val_limit``; None without ``val_data``) and,
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
    if not settings.get("classes"):
        return list(val.images), None
    labels = val.labels_for(train.class_names, f"the training data {settings['data']!r}")
    if labels is None:
        val.require_labels("--classes with --val-data")
    return list(val.images), labels


def _same_setting(key: str, a: Any, b: Any) -> bool:
    """Whether a setting given again on resume is the recorded one (data specs by meaning)."""
    if key in DATA_KEYS and isinstance(a, str) and isinstance(b, str):
        return _same_data(a, b)
    return a == b


#: The run settings that are data specs.
DATA_KEYS = ("data", "data_b", "val_data", "val_data_b")


def _same_data(a: str, b: str) -> bool:
    """Whether two data specs name the same data, however written: ``fashion-mnist`` is
    ``fashion-mnist:train``, and ``runs/../data/`` is the folder ``data``."""
    def canonical(spec: str) -> str:
        if spec == "fashion-mnist":
            return "fashion-mnist:train"
        return str(Path(spec).resolve()) if Path(spec).is_dir() else spec

    return canonical(a) == canonical(b)
