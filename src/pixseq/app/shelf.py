"""The models a web UI server offers: found once at start-up, loaded on first use, shared by all requests.

A source is a model directory (it holds ``config.json``), a folder of model directories
(each first-level sub-folder that is one; e.g. ``runs/``) or ``zoo:NAME``. With no
sources the server offers the shipped pretrained models (:mod:`pixseq.zoo`, when this
pixseq has them). Start-up reads only each ``config.json`` (its kind says which tabs can
use the model); weights load through :func:`pixseq.load_model` when a request first needs
them, once per server, under a lock so that two requests never load the same model twice.
Loaded models are used read-only (eval mode, no gradients), so requests share them.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import torch

from pixseq.errors import PixseqError


@dataclass
class ModelEntry:
    """One model on the shelf: the name shown in the page, what :func:`pixseq.load_model`
    takes, its kind and its ``config.json`` document (settings and card meta)."""

    name: str
    source: str
    kind: str
    doc: dict
    folder: Path
    capabilities: frozenset[str] = field(default_factory=frozenset)

    @property
    def meta(self) -> dict:
        return dict(self.doc.get("meta") or {})


def capabilities(kind: str, doc: dict) -> frozenset[str]:
    """What a model of ``kind`` can do in the UI, read off its registered class (never off
    its name, so a newly registered family appears in every tab that fits it): ``sample``
    (``generate``), ``complete`` (``complete``), ``codec`` (a token-image model)."""
    from pixseq import registry
    from pixseq.codec import CODEC_MODEL_KINDS

    cls = registry.get(kind).cls
    found = set()
    # an image-conditioned prior samples only given a condition image, which Sample has not
    conditioned = bool((doc.get("config") or {}).get("condition"))
    if callable(getattr(cls, "generate", None)) and not conditioned:
        found.add("sample")
    if callable(getattr(cls, "complete", None)):
        found.add("complete")
    if kind in CODEC_MODEL_KINDS and not conditioned:
        found.add("codec")
    return frozenset(found)


def _zoo_sources() -> list[str]:
    """``zoo:NAME`` for each pretrained model this pixseq ships (none without a zoo)."""
    from pixseq.plugins import import_optional

    zoo = import_optional("pixseq.zoo")
    if zoo is None:
        return []
    return [f"zoo:{name}" for name in zoo.names()]


def expand_source(source: str) -> list[tuple[str, Path]]:
    """``(source, model folder)`` for each model a ``--models`` value names."""
    from pixseq.checkpoint import CONFIG_NAME, ZOO_PREFIX, resolve_model_path

    if source.startswith(ZOO_PREFIX):
        return [(source, resolve_model_path(source))]
    folder = Path(source)
    if not folder.exists():
        raise PixseqError(f"--models {source}: not found")
    if not folder.is_dir():
        raise PixseqError(f"--models {source}: is a file; give a model directory or a folder of them")
    if (folder / CONFIG_NAME).is_file():
        return [(source, folder)]
    inner = sorted(p for p in folder.iterdir() if p.is_dir() and (p / CONFIG_NAME).is_file())
    if not inner:
        raise PixseqError(f"--models {source}: neither a model directory (no {CONFIG_NAME}) nor a folder "
                          "holding model directories")
    return [(str(p), p) for p in inner]


def _names(folders: Sequence[tuple[str, Path]]) -> list[str]:
    """Short unique names: the folder's name, or more of its path where two share one."""
    def tail(src: str, path: Path, depth: int) -> str:
        if src.startswith("zoo:"):
            return src
        parts = path.resolve().parts
        return "/".join(parts[-depth:])

    depth = {i: 1 for i in range(len(folders))}
    while True:
        names = [tail(s, p, depth[i]) for i, (s, p) in enumerate(folders)]
        clash = [i for i, n in enumerate(names) if names.count(n) > 1]
        if not clash or all(depth[i] >= len(folders[i][1].resolve().parts) for i in clash):
            return names
        for i in clash:
            depth[i] += 1


class ModelShelf:
    """The server's models by name; :meth:`load` gives the loaded model (cached)."""

    def __init__(self, sources: Iterable[str] = (), device: torch.device | str = "cpu") -> None:
        from pixseq.checkpoint import read_config

        sources = list(sources) or _zoo_sources()
        found: list[tuple[str, Path]] = []
        for source in sources:
            found += [f for f in expand_source(os.fspath(source)) if f[1].resolve() not in
                      {g[1].resolve() for g in found}]
        self.device = torch.device(device)
        self.entries: dict[str, ModelEntry] = {}
        for name, (source, folder) in zip(_names(found), found):
            doc = read_config(folder)
            self.entries[name] = ModelEntry(name, source, doc["kind"], doc, folder,
                                            capabilities(doc["kind"], doc))
        self._models: dict[str, torch.nn.Module] = {}
        self._locks = {name: threading.Lock() for name in self.entries}

    def names(self, capability: str | None = None) -> list[str]:
        """Model names, in the order given, that have ``capability`` (all when None)."""
        return [n for n, e in self.entries.items() if capability is None or capability in e.capabilities]

    def entry(self, name: str | None) -> ModelEntry:
        if not name:
            raise PixseqError("choose a model first")
        if name not in self.entries:
            raise PixseqError(f"unknown model {name!r} (this server has: {', '.join(self.entries) or 'none'})")
        return self.entries[name]

    def is_loaded(self, name: str) -> bool:
        return name in self._models

    def load(self, name: str | None, capability: str | None = None) -> torch.nn.Module:
        """The model ``name``, loaded on first use; PixseqError when it lacks ``capability``."""
        entry = self.entry(name)
        if capability is not None and capability not in entry.capabilities:
            raise PixseqError(f"model {entry.name} ({entry.kind}) cannot {capability}")
        with self._locks[entry.name]:
            if entry.name not in self._models:
                from pixseq.checkpoint import load_model

                model = load_model(entry.source, device=self.device)
                model.requires_grad_(False)  # shared by concurrent requests: inference only
                self._models[entry.name] = model
        return self._models[entry.name]
