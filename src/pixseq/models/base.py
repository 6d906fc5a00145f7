"""The contracts every token-image model follows (DESIGN.md, "Contracts").

Image convention everywhere in pixseq's tensor APIs: float tensors ``(B, 3, H, W)`` in
``[0, 1]``. File-level APIs use uint8 ``(H, W, 3)`` arrays (see :mod:`pixseq.io`).
"""
from __future__ import annotations

import numbers
from typing import Protocol, runtime_checkable

import torch

from pixseq.errors import PixseqError
from pixseq.runtime import notice

#: Model kinds with a tokenizer + a prior over its tokens (the :class:`TokenImageModel` contract):
#: what ``sample``, ``complete``, ``probe`` and the codec take.
TOKEN_MODEL_KINDS = ("igpt", "taming")

#: slack on the [0, 1] range for float rounding (resizing, colour conversion); 0..255 or
#: [-1, 1] images are far outside it
_RANGE_SLACK = 1e-3


def check_images(images: torch.Tensor, channels: int = 3) -> None:
    """PixseqError unless ``images`` are float ``(B, channels, H, W)`` in [0, 1] (the image convention).

    A tokenizer fed uint8 or [-1, 1] images does not fail: it quietly maps every pixel to
    the wrong token, which is why the range is checked (one pass over the pixels).
    """
    if not isinstance(images, torch.Tensor):
        raise PixseqError(f"images must be a torch tensor (B, {channels}, H, W), got {type(images).__name__}")
    if images.dim() != 4 or images.size(1) != channels:
        raise PixseqError(f"images must be (B, {channels}, H, W), got shape {tuple(images.shape)}")
    if not images.dtype.is_floating_point:
        raise PixseqError(f"images must be float in [0, 1], got dtype {images.dtype} (uint8? divide by 255)")
    if images.numel():
        lo, hi = float(images.min()), float(images.max())
        if not (-_RANGE_SLACK <= lo and hi <= 1 + _RANGE_SLACK):  # written so that NaN fails too
            raise PixseqError(f"images must be in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")


def check_token_ids(tokens: torch.Tensor, vocab_size: int, name: str = "tokens") -> None:
    """PixseqError naming ``name`` unless ``tokens`` holds integer ids in ``0..vocab_size-1``."""
    if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
        raise PixseqError(f"{name} must hold integer token ids, got dtype {tokens.dtype}")
    # negative ids would otherwise index from the end of a palette or embedding: a silent wrong value
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab_size):
        raise PixseqError(f"{name} holds ids outside 0..{vocab_size - 1} "
                          f"(min {int(tokens.min())}, max {int(tokens.max())})")


def check_token_grid(tokens: torch.Tensor, vocab_size: int) -> None:
    """PixseqError unless ``tokens`` is an integer ``(B, h, w)`` grid of ids in ``0..vocab_size-1``."""
    if not isinstance(tokens, torch.Tensor):
        raise PixseqError(f"tokens must be a torch tensor (B, h, w), got {type(tokens).__name__}")
    if tokens.dim() != 3:
        raise PixseqError(f"tokens must be a (B, h, w) grid, got shape {tuple(tokens.shape)}")
    check_token_ids(tokens, vocab_size)


def check_keep_rows(keep_rows, height: int) -> None:
    """``keep_rows`` (rows of an image kept by a completion) is an integer in ``0..height-1``
    (a float like 4.5 passed a range check and failed later as a slice TypeError)."""
    if isinstance(keep_rows, bool) or not isinstance(keep_rows, numbers.Integral) or not 0 <= keep_rows < height:
        raise PixseqError(f"keep_rows must be an integer in 0..{height - 1}, got {keep_rows!r}")


def class_names(model) -> list[str]:
    """Class names stored with a model directory at training time (``meta.class_names``).

    Empty for models built in Python rather than loaded with ``from_pretrained``, and for
    model directories trained without names.
    """
    return list(getattr(model, "pretrained_meta", {}).get("class_names", []))


def class_names_meta(meta: dict | None, num_classes: int, kind: str) -> dict:
    """``meta`` to save with a (``kind``) model of ``num_classes`` classes, its ``class_names``
    checked before training: as many names as classes (a shorter list would map ``--class``
    names to the wrong ids), strings. A class-conditional model saved without names is said
    once: ``--class`` then takes indices only (the names are what a user knows the classes by)."""
    meta = dict(meta or {})
    if not num_classes:
        return meta
    names = meta.get("class_names") or []
    if not names:
        notice(f"the class-conditional {kind} model is saved without class names, so --class and labels= take "
               f"only indices 0..{num_classes - 1}; give meta={{'class_names': [...]}} to name them")
    elif len(names) != num_classes or not all(isinstance(n, str) for n in names):
        raise PixseqError(f"meta class_names must be {num_classes} strings, one per class of the {kind} model, "
                          f"got {len(names)}: {list(names)[:12]}")
    return meta


def class_index(model, value: str | int, what: str = "label") -> int:
    """One class id from an index or a stored class name (case-insensitive, see :func:`class_names`).

    ``what`` names the value in the error (``"--class"`` on the command line). The model
    must be class-conditional (``model.num_classes > 0``).
    """
    K = model.num_classes
    names = class_names(model)
    if isinstance(value, str):
        lowered = [n.lower() for n in names]
        if value.lower() in lowered:
            return lowered.index(value.lower())
        try:
            value = int(value)
        except ValueError:
            known = f" or one of: {', '.join(names)}" if names else " (this model stores no class names)"
            raise PixseqError(f"{what} {value!r} is not a class index 0..{K - 1}{known}") from None
    if not 0 <= value < K:
        raise PixseqError(f"{what} {value} is out of range: this model has classes 0..{K - 1}")
    return int(value)


def class_labels(model, labels) -> torch.Tensor:
    """``labels`` as a 1-D long tensor of class ids (on the CPU; ranges are the caller's check).

    Takes an int, a class name, a sequence mixing both, or an integer array / tensor.
    Names resolve through :func:`class_index`; anything else (floats, which ``torch``
    would truncate, or objects) is one PixseqError instead of a raw ``TypeError``.
    """
    K = model.num_classes
    if not K:
        raise PixseqError("this model is unconditional; it takes no class")
    if isinstance(labels, str):
        labels = [labels]
    if isinstance(labels, (list, tuple)) and any(isinstance(v, str) for v in labels):
        if not class_names(model):
            name = next(v for v in labels if isinstance(v, str))
            raise PixseqError(f"labels must be integer class ids 0..{K - 1}, got {name!r}: this model stores "
                              f"no class names (only models loaded from a directory trained with names do)")
        labels = [class_index(model, v) if isinstance(v, str) else v for v in labels]
    try:
        ids = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError):  # e.g. None inside a list, ragged nesting
        ids = None
    if ids is None or ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        names = class_names(model)
        also = f" or class names ({', '.join(names)})" if names else ""
        got = f"dtype {ids.dtype}" if ids is not None else type(labels).__name__
        raise PixseqError(f"labels must be integer class ids 0..{K - 1}{also}, got {got}")
    return ids.reshape(-1).long()


def completion_labels(model, labels, images: int, num: int):
    """Labels for ``images * num`` completions (``num`` per image): one class for all, one per
    image (repeated for each of its completions) or one per completion, as ``generate`` takes
    them. None, and an unconditional model's labels, go on as given (``generate`` refuses those)."""
    if labels is None or not model.num_classes:
        return labels
    ids = class_labels(model, labels)
    return ids.repeat_interleave(num) if ids.numel() == images else ids


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
