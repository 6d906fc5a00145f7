"""The one registry: model kind name -> (model class, config dataclass).

A model directory's ``config.json`` names its kind; :mod:`pixseq.checkpoint` looks the
kind up here to rebuild the model. Register a class with::

    @register("igpt", IGPTConfig)
    class IGPT(nn.Module): ...

There is deliberately no second name table anywhere else.
"""
from __future__ import annotations

from pixseq.plugins import import_optional
from dataclasses import dataclass
from typing import Any, Callable

from pixseq.errors import PixseqError


@dataclass(frozen=True)
class Entry:
    """A registered model kind."""

    name: str
    cls: type
    config_cls: type
    description: str


_REGISTRY: dict[str, Entry] = {}

# Modules that register kinds when imported; imported lazily so `pixseq --help` stays fast.
_PROVIDERS = (
    "pixseq.models.igpt",
    "pixseq.tokenizers.vqgan",
    "pixseq.models.taming",
    "pixseq.classifiers.vit",
    "pixseq.gans.model",
    "pixseq.gans.translator",
    "pixseq.upscale.rrdb",
    "pixseq.guidance.clip",
    "pixseq.guidance.lit",
)


def register(name: str, config_cls: type, description: str = "") -> Callable[[type], type]:
    """Class decorator: register ``cls`` under ``name`` with its config dataclass."""

    def deco(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise RuntimeError(f"model kind {name!r} registered twice")
        _REGISTRY[name] = Entry(name, cls, config_cls, description or (cls.__doc__ or "").strip().split("\n")[0])
        cls.kind = name
        return cls

    return deco


def _load_providers() -> None:
    for mod in _PROVIDERS:
        import_optional(mod)


def get(name: str) -> Entry:
    """Look up a kind; unknown names are a PixseqError listing the known ones."""
    if name not in _REGISTRY:
        _load_providers()
    if name not in _REGISTRY:
        raise PixseqError(f"unknown model kind {name!r} (known: {', '.join(sorted(_REGISTRY)) or 'none'})")
    return _REGISTRY[name]


def names() -> list[str]:
    """All registered kind names."""
    _load_providers()
    return sorted(_REGISTRY)


def build(name: str, config: Any) -> Any:
    """Construct a model of kind ``name`` from a config dataclass or dict (never touches disk)."""
    from pixseq.config import from_dict

    entry = get(name)
    if isinstance(config, dict):
        config = from_dict(entry.config_cls, config)
    return entry.cls(config)
