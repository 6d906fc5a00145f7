"""Optional imports of pixseq's own pluggable modules (verbs, model kinds, demo sections)."""
from __future__ import annotations

import importlib
from types import ModuleType


def import_optional(name: str) -> ModuleType | None:
    """Import module ``name``; ``None`` when that module itself does not exist.

    A module that exists but whose own imports fail is a bug and still raises: only the
    absence of the named module is tolerated (e.g. a trimmed-down install).
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None
