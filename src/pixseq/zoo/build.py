"""Putting a trained model into the zoo (a maintainer's tool: ``scripts/zoo_add.py``).

:func:`add_model` copies a model directory into :data:`pixseq.zoo.ZOO_ROOT`, optionally with
its floating-point weights stored as float16 (they are loaded back into float32 models; the
card must show the float16 copy measures the same), writes its card and records the files'
SHA-256 in the index.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from pixseq.errors import PixseqError
from pixseq.io import atomic_write
from pixseq.zoo import CARD_NAME, HASHED, INDEX_PATH, ZOO_ROOT, ZooEntry, card_text, sha256_file

#: The zoo's size limits (issue 24): per model and in all.
MAX_MODEL_BYTES = 20 * 2**20
MAX_TOTAL_BYTES = 100 * 2**20


def half_state(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``path`` with float32 ones as float16 (integer buffers unchanged)."""
    return {k: (v.half() if v.dtype == torch.float32 else v) for k, v in load_file(str(path)).items()}


def add_model(src: str | Path, name: str, summary: str, command: str, data: str,
              quality: dict[str, Any], fp16: bool = False, notes: str = "") -> ZooEntry:
    """Copy the model directory ``src`` into the zoo as ``name`` and index it."""
    src, dest = Path(src), ZOO_ROOT / name
    config = json.loads((src / "config.json").read_text())
    staged = ZOO_ROOT / f".staged-{name}"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    try:
        shutil.copyfile(src / "config.json", staged / "config.json")
        weights = half_state(src / "model.safetensors") if fp16 else load_file(str(src / "model.safetensors"))
        save_file(weights, str(staged / "model.safetensors"))
        size = sum((staged / f).stat().st_size for f in HASHED)
        if size > MAX_MODEL_BYTES:
            raise PixseqError(f"{name}: {size / 2**20:.1f} MiB is over the zoo's {MAX_MODEL_BYTES // 2**20} MiB "
                              f"per model")
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(staged, dest)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    entry = ZooEntry(name=name, kind=config["kind"], summary=summary, files={f: sha256_file(dest / f) for f in HASHED},
                     quality=dict(quality), command=command, data=data,
                     extra={"fp16": fp16, "size_bytes": size})
    text = card_text(entry) + f"- weights: {'float16' if fp16 else 'float32'}, {size / 2**20:.2f} MiB\n"
    with atomic_write(dest / CARD_NAME, "w") as fh:
        fh.write(text + (f"\n{notes.strip()}\n" if notes else ""))
    _write_entry(entry)
    return entry


def add_provided(name: str, kind: str, summary: str, provider: str, files: dict[str, str], data: str = "",
                 quality: dict[str, Any] | None = None) -> ZooEntry:
    """Index a model built on first use by ``provider`` (its result's hashes in ``files``)."""
    entry = ZooEntry(name=name, kind=kind, summary=summary, files=files, quality=quality or {}, data=data,
                     provider=provider)
    _write_entry(entry)
    return entry


def _write_entry(entry: ZooEntry) -> None:
    doc = json.loads(INDEX_PATH.read_text()) if INDEX_PATH.is_file() else {"models": {}}
    record = {k: v for k, v in entry.__dict__.items() if k not in ("name", "extra") and v not in ("", {})}
    doc["models"][entry.name] = {**record, **entry.extra}
    total = sum(m.get("size_bytes", 0) for m in doc["models"].values())
    if total > MAX_TOTAL_BYTES:
        raise PixseqError(f"the zoo would hold {total / 2**20:.1f} MiB, over its {MAX_TOTAL_BYTES // 2**20} MiB")
    doc["models"] = dict(sorted(doc["models"].items()))
    with atomic_write(INDEX_PATH, "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
