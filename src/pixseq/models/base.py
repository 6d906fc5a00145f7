"""The contracts every token-image model follows (DESIGN.md, "Contracts").

Image convention everywhere in pixseq's tensor APIs: float tensors ``(B, 3, H, W)`` in
``[0, 1]``. File-level APIs use uint8 ``(H, W, 3)`` arrays (see :mod:`pixseq.io`).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Tokenizer(Protocol):
    """Images <-> token grids."""

    vocab_size: int

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1] -> ``(B, h, w)`` long token grid."""
        ...

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, h, w)`` long -> ``(B, 3, H, W)`` float in [0, 1]."""
        ...

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Token-grid size ``(h, w)`` for an image of ``height x width`` pixels."""
        ...


@runtime_checkable
class Prior(Protocol):
    """An autoregressive model over a flattened (row-major) token sequence."""

    def forward(self, tokens: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, T)`` tokens (+ ``(B, Tc)`` conditioning tokens) -> ``(B, T, V)`` logits.

        Logit ``t`` predicts token ``t`` from tokens ``< t`` and the conditioning, i.e.
        the sequence is internally shifted (a start/conditioning position comes first).
        """
        ...


class TokenImageModel(Protocol):
    """A tokenizer + prior pair stored as one model directory (iGPT, VQGAN + latent GPT).

    Attributes:
        tokenizer: the :class:`Tokenizer`.
        prior: the :class:`Prior` over the tokenizer's codes.
        image_size: ``(H, W)`` of the images the prior was trained on.
        num_classes: number of class labels the prior is conditioned on (0: unconditional).
    """

    tokenizer: Tokenizer
    prior: Prior
    image_size: tuple[int, int]
    num_classes: int
