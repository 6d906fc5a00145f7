"""CLIP score: how well an image fits a text, as judged by a guide (CLIP or LiT).

Hessel et al., "CLIPScore: A Reference-free Evaluation Metric for Image Captioning" (2021),
in torchmetrics' form (``torchmetrics.multimodal.CLIPScore``): for unit embeddings ``e_I`` of
the image and ``e_C`` of the caption,

    score(I, C) = max(100 * cos(e_I, e_C), 0)

per pair, and over a set ``max(mean_i 100 * cos(e_Ii, e_Ci), 0)`` (torchmetrics clamps the
mean). Images are preprocessed as CLIP's own pipeline does (short side to the input size,
centre crop; :meth:`pixseq.guidance.clip.Guide.preprocess`). The score is only as meaningful
as its guide: with a LiT model trained on a few concepts it measures those concepts only.
"""
from __future__ import annotations

from typing import Sequence

import torch

from pixseq.errors import PixseqError
from pixseq.metrics.base import Metric


def clip_cosines(images: torch.Tensor, texts: Sequence[str], guide) -> torch.Tensor:
    """``100 * cos`` of image ``i`` and text ``i``: ``(B, 3, H, W)`` in [0, 1] and ``B`` texts -> ``(B,)``."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise PixseqError(f"clip_score expects (B, 3, H, W) images, got shape {tuple(images.shape)}")
    if len(texts) != images.shape[0]:
        raise PixseqError(f"clip_score needs one text per image, got {len(texts)} texts for {images.shape[0]} images")
    if any(not t.strip() for t in texts):
        raise PixseqError("clip_score: empty prompt")
    with torch.no_grad():
        a = guide.embed_images(images.float())
        b = guide.embed_text(list(texts)).to(a.device)
    return 100 * (a * b).sum(-1)


def score_from_embeddings(images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    """``max(100 * cos, 0)`` of unit embeddings ``(B, D)`` and ``(B, D)`` (or ``(1, D)``)."""
    return (100 * (images * texts).sum(-1)).clamp_min(0)


def clip_score(images: torch.Tensor, texts: Sequence[str], guide) -> torch.Tensor:
    """Per-pair CLIP score ``max(100 * cos, 0)``, ``(B,)``."""
    return clip_cosines(images, texts, guide).clamp_min(0)


class CLIPScore(Metric):
    """Stateful CLIP score over a set: ``max(mean 100 * cos, 0)`` as torchmetrics computes it
    (sums in float64, summed over DDP processes)."""

    higher_is_better = True
    name = "clip_score"

    def __init__(self, guide) -> None:
        super().__init__()
        self.guide = guide
        self.add_state("total", torch.zeros((), dtype=torch.float64))
        self.add_state("count", torch.zeros((), dtype=torch.float64))

    def update(self, images: torch.Tensor, texts: Sequence[str]) -> None:
        self._accumulate("total", clip_cosines(images, texts, self.guide).double().sum().cpu())
        self._accumulate("count", torch.tensor(float(len(texts)), dtype=torch.float64))

    def compute(self) -> float:
        state = self.synced_state()
        if float(state["count"]) == 0:
            raise PixseqError("CLIPScore.compute() before any update")
        return max(float(state["total"] / state["count"]), 0.0)
