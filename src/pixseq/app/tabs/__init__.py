"""The web UI's tabs: one module per tab, listed here in page order.

A tab module defines::

    TITLE = "Complete"                 # the tab's label
    KEY = "complete"                   # the prefix of its components' element ids
    NEEDS = "pixseq.models.generate"   # the library module it calls: no module, no tab
    ROLES = {"complete": fits}         # optional: what it uses models for, and which kinds fit
                                       # (fits(kind, registered class, config dict) -> bool)
    def build(ctx) -> None             # make the tab's components and events (inside gr.Tab)

A system whose library package is not in this pixseq (a trimmed install, or a system that
has not landed yet) simply has no tab: :func:`available_tabs` imports each module only when
its ``NEEDS`` is importable.
"""
from __future__ import annotations

import importlib.util
from types import ModuleType

from pixseq.plugins import import_optional

#: Tab modules in page order.
TABS = (
    "pixseq.app.tabs.complete",
    "pixseq.app.tabs.sample",
    "pixseq.app.tabs.text_to_image",
    "pixseq.app.tabs.upscale",
    "pixseq.app.tabs.translate",
    "pixseq.app.tabs.classify",
    "pixseq.app.tabs.compress",
    "pixseq.app.tabs.models",
)


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def available_tabs() -> list[ModuleType]:
    """The tab modules whose library module is importable, in page order."""
    mods = []
    for name in TABS:
        mod = import_optional(name)
        if mod is not None and _importable(mod.NEEDS):
            mods.append(mod)
    return mods


def roles() -> dict:
    """Every available tab's roles: role name -> its test of a model kind."""
    return {role: fits for m in available_tabs() for role, fits in getattr(m, "ROLES", {}).items()}


def capability_tabs(capabilities) -> list[str]:
    """The titles of the tabs that use models with any of ``capabilities``."""
    return [m.TITLE for m in available_tabs() if set(getattr(m, "ROLES", {})) & set(capabilities)]


def has(cls: type, method: str) -> bool:
    """Whether a registered model class has ``method`` (the usual test of a role)."""
    return callable(getattr(cls, method, None))


def image_conditioned(config: dict) -> bool:
    """A prior conditioned on images (Taming's ``condition``): it cannot sample or code from nothing."""
    return bool(config.get("condition"))
