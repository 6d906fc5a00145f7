"""The models a web UI server offers: found once at start-up, loaded on first use, shared by all requests.

A source is a model directory (it holds ``config.json``) or a folder of model directories
(each first-level sub-folder that is one; e.g. ``runs/``); after them the server offers the
shipped pretrained models (:mod:`pixseq.zoo`) as ``zoo:NAME``. Start-up reads only each
``config.json`` (its kind says which tabs can use the model); weights load through
:func:`pixseq.load_model` when a request first needs them, once per server, under a lock so that two requests never load the same model twice.
Loaded models are used read-only (eval mode, no gradients), so requests share them.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import torch

from pixseq.errors import PixseqError


@dataclass
class ModelEntry:
    """One model on the shelf: the name shown in the page, what :func:`pixseq.load_model`
    takes, its kind, its ``config.json`` document (settings and card meta; a zoo model built
    on first use has only its kind until then), its folder (None until such a model is built)
    and the roles the tabs found it fit for."""

    name: str
    source: str
    kind: str
    doc: dict
    folder: Path | None
    capabilities: frozenset[str] = field(default_factory=frozenset)
    zoo: object = None  # the pixseq.zoo entry of a shipped model

    @property
    def meta(self) -> dict:
        return dict(self.doc.get("meta") or {})


#: a role's test: (kind, registered class, config dict) -> whether a model of that kind fits
Role = Callable[[str, type, dict], bool]


def capabilities(kind: str, doc: dict, roles: Mapping[str, Role]) -> frozenset[str]:
    """The ``roles`` (a tab's use of a model: ``"complete"``, ``"upscale"`` ...) a model of
    ``kind`` fits, each judged by its tab from the registered class and the config, never from
    a model's name: a newly registered family appears in every tab that fits it."""
    from pixseq import registry

    cls = registry.get(kind).cls
    config = doc.get("config") or {}
    return frozenset(role for role, fits in roles.items() if fits(kind, cls, config))


def _zoo_models() -> list[tuple[str, str, dict, Path | None, object]]:
    """``(zoo:NAME, kind, doc, folder, entry)`` for each model this pixseq ships: a stored
    model's folder and config as they are (checked at load), a model built on first use
    by its kind alone (nothing is built before a request needs it)."""
    from pixseq.checkpoint import CONFIG_NAME, ZOO_PREFIX, read_config
    from pixseq.plugins import import_optional

    zoo = import_optional("pixseq.zoo")
    if zoo is None:
        return []
    found = []
    for name, entry in zoo.entries().items():
        folder = zoo.ZOO_ROOT / name if entry.stored else None
        if folder is not None and (folder / CONFIG_NAME).is_file():
            doc = read_config(folder)
        else:
            doc = {"kind": entry.kind, "config": {}, "meta": {}}
        found.append((f"{ZOO_PREFIX}{name}", entry.kind, doc, folder, entry))
    return found


def expand_source(source: str) -> list[tuple[str, Path]]:
    """``(source, model folder)`` for each model a ``--models`` value names."""
    from pixseq.checkpoint import CONFIG_NAME

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
        return "/".join(path.resolve().parts[-depth:])

    depth = {i: 1 for i in range(len(folders))}
    while True:
        names = [tail(s, p, depth[i]) for i, (s, p) in enumerate(folders)]
        clash = [i for i, n in enumerate(names) if names.count(n) > 1]
        if not clash or all(depth[i] >= len(folders[i][1].resolve().parts) for i in clash):
            return names
        for i in clash:
            depth[i] += 1


class ModelShelf:
    """The server's models by name; :meth:`load` gives the loaded model (cached).

    ``sources``: model directories or folders of them (``--models``), offered first; then,
    unless ``zoo=False``, the models that ship with pixseq. ``roles``: what the tabs use
    models for (see :func:`capabilities`)."""

    def __init__(self, sources: Iterable[str] = (), device: torch.device | str = "cpu",
                 roles: Mapping[str, Role] | None = None, zoo: bool = True) -> None:
        from pixseq.checkpoint import read_config

        found: list[tuple[str, Path]] = []
        for source in sources:
            found += [f for f in expand_source(os.fspath(source)) if f[1].resolve() not in
                      {g[1].resolve() for g in found}]
        self.device = torch.device(device)
        self.roles = dict(roles or {})
        self.entries: dict[str, ModelEntry] = {}
        for name, (source, folder) in zip(_names(found), found):
            doc = read_config(folder)
            self._add(ModelEntry(name, source, doc["kind"], doc, folder))
        for name, kind, doc, folder, entry in (_zoo_models() if zoo else []):
            self._add(ModelEntry(name, name, kind, doc, folder, zoo=entry))
        self._models: dict[str, torch.nn.Module] = {}
        self._locks = {name: threading.Lock() for name in self.entries}

    def _add(self, entry: ModelEntry) -> None:
        from pixseq import registry

        if entry.kind not in registry.names():  # e.g. a zoo model of a family this install lacks
            return
        entry.capabilities = capabilities(entry.kind, entry.doc, self.roles)
        self.entries[entry.name] = entry

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

    def _fitting(self, name: str | None, capability: str | None) -> ModelEntry:
        entry = self.entry(name)
        if capability is not None and capability not in entry.capabilities:
            raise PixseqError(f"model {entry.name} ({entry.kind}) is not one this tab can use")
        return entry

    def folder(self, name: str | None, capability: str | None = None) -> Path:
        """The model directory of ``name``, for library calls that load a model themselves (a
        zoo model is verified, and built on first use)."""
        from pixseq.checkpoint import resolve_model_path

        entry = self._fitting(name, capability)
        with self._locks[entry.name]:
            if entry.folder is None or entry.zoo is not None:
                entry.folder = resolve_model_path(entry.source)
        return entry.folder

    def load(self, name: str | None, capability: str | None = None) -> torch.nn.Module:
        """The model ``name``, loaded on first use; PixseqError when it lacks ``capability``."""
        entry = self._fitting(name, capability)
        with self._locks[entry.name]:
            if entry.name not in self._models:
                from pixseq.checkpoint import load_model, resolve_model_path

                model = load_model(entry.source, device=self.device)  # a zoo model: verified (built once)
                model.requires_grad_(False)  # shared by concurrent requests: inference only
                if entry.folder is None:
                    entry.folder = resolve_model_path(entry.source)
                self._models[entry.name] = model
        return self._models[entry.name]
