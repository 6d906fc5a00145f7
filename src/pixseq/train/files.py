"""The files of a training run in its ``out_dir``: the checkpoint, the loss history, TensorBoard.

Shared by the :class:`~pixseq.train.trainer.Trainer` and the CLI, which reads a run's
settings (:func:`read_checkpoint_head`) and checks ``--out`` before any data are loaded.
"""
from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import torch

from pixseq.errors import PixseqError
from pixseq.runtime import notice

CKPT_NAME = "train_state.pt"
HISTORY_NAME = "history.jsonl"
TB_DIR = "tb"
FORMAT, VERSION = "pixseq-train-state", 1


def read_checkpoint_state(out_dir: str | os.PathLike | None) -> dict | None:
    """The training checkpoint in ``out_dir`` memory-mapped (tensors are read only when
    touched), or None when there is none or it cannot be read (:meth:`Trainer.load_checkpoint`
    then says why)."""
    path = Path(out_dir) / CKPT_NAME if out_dir is not None else None
    if path is None or not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - any unreadable file: not this function's to report
        return None


def read_checkpoint_head(out_dir: str | os.PathLike | None) -> dict | None:
    """``{"step": int, "config": dict}`` of the training checkpoint in ``out_dir``, or None
    (see :func:`read_checkpoint_state`). The weights and optimizer moments are not read."""
    state = read_checkpoint_state(out_dir)
    try:
        return None if state is None else {"step": int(state["step"]), "config": dict(state["config"])}
    except (KeyError, TypeError, ValueError):  # not a pixseq checkpoint: the Trainer says so
        return None


def check_crcs(path: Path) -> None:
    """PixseqError when a member of the checkpoint's zip fails its CRC. ``torch.load`` does
    not check them, so a flipped bit would resume silently inexact (one extra read of the
    file, once per resume). Files that are not zips are left to ``torch.load``."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return  # unreadable as a zip: load_legacy_state reports it in its own words
    if bad is not None:
        raise PixseqError(f"{path} is corrupt: its part {bad!r} fails its checksum, so it cannot resume exactly; "
                          f"resume from a copy or start a fresh run with --force")


def check_writable_folder(out_dir: str | os.PathLike) -> None:
    """PixseqError now, rather than at the first checkpoint (at the end with ``ckpt_every=0``,
    the whole run lost), when ``out_dir`` cannot be created: its nearest existing ancestor
    must be a writable folder. Nothing is created here."""
    existing = Path(out_dir).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise PixseqError(f"cannot write the training state to {out_dir}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PixseqError(f"cannot write the training state to {out_dir}: {existing} is not writable")


def json_line(record: dict[str, Any]) -> str:
    """One strict-JSON line of a step record: a task's scalar may be NaN or inf (e.g. a
    perplexity of an empty batch), which ``json.dumps`` would write as a bare ``NaN`` that
    strict readers (jq, JavaScript, pandas with ``engine="pyarrow"``) reject; it is ``null``."""
    clean = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
    return json.dumps(clean) + "\n"


def read_history(path: Path) -> list[dict]:
    """The per-step records of ``history.jsonl``; lines that are not JSON objects (a damaged
    log) are skipped with one notice, since the log is not needed to resume exactly. A
    ``null`` value reads back as NaN, as it was in memory."""
    if not path.is_file():
        return []
    records, bad = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):  # null is how json_line wrote a non-finite number
            records.append({k: math.nan if v is None else v for k, v in record.items()})
        else:
            bad += 1
    if bad:
        notice(f"{path}: skipped {bad} damaged line(s) of the loss history; training resumes exactly all the same")
    return records
