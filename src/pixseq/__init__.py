"""pixseq: images as sequences of tokens, modelled with transformers, measured honestly."""
from __future__ import annotations

from pixseq.errors import PixseqError

__all__ = ["PixseqError", "__version__"]
__version__ = "0.1.0"
