"""pixseq: images as sequences of tokens, modelled with transformers, measured honestly."""
from __future__ import annotations

from pixseq.errors import PixseqError
from pixseq.version import __version__

__all__ = ["PixseqError", "__version__", "load_model"]


def __getattr__(name: str):
    # pixseq.load_model without importing torch for `import pixseq` (the CLI's --help stays fast)
    if name == "load_model":
        from pixseq.checkpoint import load_model

        return load_model
    raise AttributeError(f"module 'pixseq' has no attribute {name!r}")
