"""Model directories: ``config.json`` + ``model.safetensors``, written atomically.

``config.json`` holds ``{"kind": <registry name>, "config": {...}, "pixseq_version": ...,
"meta": {...}}``. :func:`from_pretrained` rebuilds the model from the registry and loads
weights with ``strict=True``. Pickle-based legacy files (``.pt/.pth/.ckpt``) are read only
through :func:`load_legacy_state`, i.e. ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from pixseq import registry
from pixseq.config import from_dict, to_dict
from pixseq.errors import PixseqError, first_line
from pixseq.io import atomic_write
from pixseq.version import __version__

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_pretrained(model: torch.nn.Module, directory: str | os.PathLike, meta: dict | None = None) -> Path:
    """Write ``model`` (which has ``.kind`` and ``.config``) to ``directory`` atomically per file.

    ``config.json`` is the commit mark. The new weights are staged beside the old model (a
    crash while writing them leaves the old model whole); then the old config is removed, the
    weights renamed into place and the new config written last. A crash in those last
    milliseconds leaves a folder that is plainly not a model, never new weights beside an old
    config of the same shapes (which would load as a silently different model).
    """
    directory = Path(directory)
    # Everything that can fail on the user's input (the model, meta, the path) fails here,
    # before anything is written: a bad meta must not leave new weights beside an old config.
    config_text = _config_text(model, meta)
    if directory.exists() and not directory.is_dir():
        raise PixseqError(f"cannot save the model to {directory}: it exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    staged = directory / f".{WEIGHTS_NAME}.staged"
    try:
        with atomic_write(staged) as fh:
            fh.write(save(_dedupe_shared(state)))
        (directory / CONFIG_NAME).unlink(missing_ok=True)
        os.replace(staged, directory / WEIGHTS_NAME)
    finally:
        staged.unlink(missing_ok=True)
    with atomic_write(directory / CONFIG_NAME, "w") as fh:
        fh.write(config_text)
    # the model in hand now is the directory's: its class names, card numbers ... as when loaded
    model.pretrained_meta = dict(meta or {})
    return directory


def refuse_existing_model(directory: str | os.PathLike, force: bool, inputs=(), what: str = "output folder") -> None:
    """The overwrite policy (:func:`pixseq.io.claim_output`) for a model directory written
    whole (``convert``): it may be created (only its last level), is none of ``inputs`` (a
    source folder: refused even with ``force``), and a finished model in it is replaced only
    with ``force``. Checked before the work that would replace it (reading a checkpoint of GBs)."""
    from pixseq.io import claim_output

    claim_output(directory, what, folder=True, inputs=inputs)
    if (Path(directory) / CONFIG_NAME).exists() and not force:
        raise PixseqError(f"{directory} already holds a model; use --force to overwrite it (or another --out)")


def model_files(source: str | os.PathLike) -> list[Path]:
    """The files a model is read from when ``source`` is a model directory (its config and
    weights; none for a zoo name): inputs that no output may replace."""
    directory = Path(source)
    return [directory / n for n in (CONFIG_NAME, WEIGHTS_NAME) if (directory / n).is_file()]


def _config_text(model: torch.nn.Module, meta: dict | None) -> str:
    """The ``config.json`` text for ``model``; PixseqError if it is not a registered model or
    ``meta`` is not a JSON-ready mapping."""
    if not isinstance(getattr(model, "kind", None), str) or not hasattr(model, "config"):
        raise PixseqError(f"save_pretrained needs a registered pixseq model (with .kind and .config), "
                          f"got {type(model).__name__}")
    if meta is not None and not isinstance(meta, dict):
        raise PixseqError(f"meta must be a mapping, got {type(meta).__name__}")
    doc = {"kind": model.kind, "config": to_dict(model.config), "pixseq_version": __version__, "meta": meta or {}}
    try:
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"
    except (TypeError, ValueError) as exc:  # a tensor, a set, a numpy scalar ... in meta
        raise PixseqError(f"cannot save the model: meta must hold plain JSON values ({exc})") from None


def _dedupe_shared(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors sharing memory (tied weights); store independent copies."""
    seen: dict[int, str] = {}
    out = {}
    for k, v in state.items():
        ptr = v.untyped_storage().data_ptr() if v.numel() else -1
        out[k] = v.clone() if ptr in seen and ptr != -1 else v
        seen.setdefault(ptr, k)
    return out


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """Read and sanity-check a model directory's ``config.json``."""
    directory = Path(directory)
    cfg_path = directory / CONFIG_NAME
    if directory.is_file():  # e.g. a weights file or an image given as --model
        raise PixseqError(f"{directory} is a file; a model is a directory holding {CONFIG_NAME}")
    if not directory.is_dir():
        raise PixseqError(f"model directory not found: {directory}")
    if not cfg_path.is_file():
        raise PixseqError(f"not a pixseq model directory (no {CONFIG_NAME}): {directory}")
    try:
        doc = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise PixseqError(f"corrupt {cfg_path}: {exc}") from None
    if not isinstance(doc, dict) or "kind" not in doc or "config" not in doc:
        raise PixseqError(f"not a pixseq model directory ({cfg_path} lacks 'kind'/'config'): {directory}")
    if not isinstance(doc["kind"], str):  # a list here would reach the registry as an unhashable key
        raise PixseqError(f"corrupt {cfg_path}: 'kind' must be a model kind name, got {doc['kind']!r}")
    if not isinstance(doc.get("meta", {}), dict):  # callers read meta.get(...)
        raise PixseqError(f"corrupt {cfg_path}: 'meta' must be a mapping, got {type(doc['meta']).__name__}")
    return doc


def from_pretrained(directory: str | os.PathLike, expected_kind: str | tuple[str, ...] | None = None,
                    map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild a model from a directory written by :func:`save_pretrained`."""
    directory = Path(directory)
    device = _target_device(map_location)
    doc = read_config(directory)
    kind = doc["kind"]
    if expected_kind is not None:
        allowed = (expected_kind,) if isinstance(expected_kind, str) else expected_kind
        if kind not in allowed:
            raise PixseqError(f"{directory} holds a model of kind {kind!r}, expected {' or '.join(allowed)}")
    entry = registry.get(kind)
    config = from_dict(entry.config_cls, doc["config"], prefix="config.")
    try:
        model = entry.cls(config)
    except ValueError as exc:  # parts that disagree, e.g. a taming prior's length vs its image_size
        raise PixseqError(f"invalid {kind} config in {directory / CONFIG_NAME}: {exc}") from None
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise PixseqError(f"model directory {directory} has no {WEIGHTS_NAME}")
    load_state_strict(model, load_tensors(weights), source=str(weights))
    model.pretrained_meta = doc.get("meta", {})
    return model.to(device).eval()


#: The prefix of a shipped pretrained model's name wherever a model directory is accepted.
ZOO_PREFIX = "zoo:"


def resolve_model_path(source: str | os.PathLike) -> Path:
    """The model directory ``source`` names: a path as it is, or a pretrained model that ships
    with pixseq (``zoo:NAME``, or a bare ``NAME`` that is no existing path; see
    :mod:`pixseq.zoo`), verified against its checksums."""
    text = os.fspath(source)
    if isinstance(text, str):
        from pixseq.plugins import import_optional

        zoo = import_optional("pixseq.zoo")
        if zoo is None and text.startswith(ZOO_PREFIX):
            raise PixseqError(f"{text}: this pixseq has no model zoo installed")
        found = zoo.resolve(text) if zoo is not None else None
        if found is not None:
            return found
    return Path(text)


def load_model(source: str | os.PathLike, kind: str | tuple[str, ...] | None = None,
               device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load any pixseq model directory, whatever its kind: the one way every verb, the web
    UI and the demo load models.

    ``source``: a model directory or ``zoo:NAME``. ``kind``: the kind(s) the caller can use
    (a one-line error names the kind found otherwise). The model comes back on ``device``
    in eval mode, with ``model.pretrained_meta`` holding its card's numbers and settings::

        model = load_model("runs/fm")                      # whatever it is
        prior = load_model("runs/fm", ("igpt", "taming"))  # only models with a token prior
    """
    return from_pretrained(resolve_model_path(source), expected_kind=kind, map_location=device)


def _target_device(map_location: str | torch.device) -> torch.device:
    """``map_location`` as a device the model can be moved to, checked before any loading."""
    try:
        device = torch.device(map_location)
    except (RuntimeError, TypeError):
        raise PixseqError(f"map_location {map_location!r} is not a torch device (e.g. 'cpu', 'cuda:0')") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PixseqError(f"map_location {map_location!r}: no CUDA GPU is available")
    return device


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with shape checks, reported as one PixseqError line."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise PixseqError(
            f"{source} does not match the model: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise PixseqError(f"{source}: tensor {k} has shape {tuple(v.shape)}, model expects {tuple(own[k].shape)}")
    model.load_state_dict(state, strict=True)


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file, else from a pickle checkpoint through
    :func:`load_legacy_state`; on the CPU (``load_state_dict`` copies into the parameters
    wherever they are); a corrupt file is one PixseqError."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return load_legacy_state(path)
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise PixseqError(f"corrupt weights file {path}: {exc}") from None


def load_legacy_state(path: str | os.PathLike) -> dict[str, Any]:
    """Load a pickle-based checkpoint safely (``weights_only=True``); never executes code."""
    path = Path(path)
    if path.is_dir():
        raise PixseqError(f"{path} is a folder; give the checkpoint file in it (.ckpt, .pt, .pth, .bin)")
    if not path.is_file():
        raise PixseqError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise PixseqError(f"cannot load {path}: not a readable PyTorch checkpoint, or not a safe one "
                          f"(weights_only=True) ({type(exc).__name__}: {first_line(exc, 200)})") from None


def model_id(directory: str | os.PathLike) -> str:
    """A content hash identifying a model directory: sha256 of its config and weights files."""
    directory = Path(directory)
    doc = read_config(directory)
    if not (directory / WEIGHTS_NAME).is_file():
        raise PixseqError(f"model directory {directory} has no {WEIGHTS_NAME}")
    h = hashlib.sha256()
    h.update(json.dumps({"kind": doc["kind"], "config": doc["config"]}, sort_keys=True).encode())
    with open(directory / WEIGHTS_NAME, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def config_of(model: torch.nn.Module) -> dict[str, Any]:
    """The registry config of a model as a dict (for logging and reports)."""
    return to_dict(model.config)
