"""Dataclass configs <-> plain dicts / JSON / YAML, strictly.

Unknown keys and mistyped values are errors (a typo in a config must not silently fall
back to a default). Nested dataclasses, ``Optional``, tuples and lists of plain types
are supported; that is all a model config needs.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from pixseq.errors import PixseqError

T = TypeVar("T")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass instance as a JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _check(value: Any, tp: Any, where: str) -> Any:
    """Validate (and lightly coerce) ``value`` against type ``tp``; return it."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(value, arg, where)
            except PixseqError as exc:
                errors.append(str(exc))
        raise PixseqError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise PixseqError(f"config key {where!r} must be a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            # tuple[int, int]: that many items, a type per place (an image size of three
            # numbers was accepted here and failed later as an unpacking ValueError)
            if len(value) != len(args):
                raise PixseqError(f"config key {where!r} must be a list of {len(args)} items, got {value!r}")
            return tuple(_check(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item_tp = args[0] if args else Any
        items = [_check(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise PixseqError(f"config key {where!r} must be a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise PixseqError(f"config key {where!r} must be a mapping, got {value!r}")
        return from_dict(tp, value, prefix=f"{where}.")
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise PixseqError(
                f"config key {where!r} must be {tp.__name__}, got {type(value).__name__} {value!r}"
            )
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys or wrong types raise PixseqError."""
    if not isinstance(data, dict):
        raise PixseqError(f"config for {cls.__name__} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise PixseqError(
            f"unknown config key(s) for {cls.__name__}: {', '.join(prefix + k for k in unknown)} "
            f"(known: {', '.join(sorted(fields))})"
        )
    kwargs = {k: _check(v, hints[k], prefix + k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise PixseqError(f"invalid {cls.__name__} config: {exc}") from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON (or, when PyYAML is installed, YAML) config file as a dict."""
    path = Path(path)
    if not path.is_file():
        raise PixseqError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml  # optional: only needed for YAML configs
            except ImportError:
                raise PixseqError(f"{path}: YAML configs need PyYAML (pip install pyyaml)") from None
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (ValueError, Exception) as exc:  # json.JSONDecodeError / yaml.YAMLError
        if isinstance(exc, PixseqError):
            raise
        raise PixseqError(f"cannot parse config file {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise PixseqError(f"config file {path} must hold a mapping at the top level")
    return data
