"""Inception Score (Salimans et al. 2016, "Improved techniques for training GANs").

``IS = exp(E_x KL(p(y|x) || p(y)))``, computed on ``splits`` consecutive chunks of the image
set and reported as mean ± std over the chunks. As in the original code the class
probabilities come from the TF 2015-12-05 Inception graph: softmax over its 1008 logits,
computed from the pool features *without* the fc bias (see
:meth:`pixseq.metrics.fid.FIDInceptionV3.logits_unbiased`). Any other classifier's logits
can be used instead (then the numbers are not comparable with published ones).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from pixseq.errors import PixseqError
from pixseq.metrics.base import Metric, check_features


def inception_score(probs: torch.Tensor | np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Mean and std of the IS over ``splits`` consecutive chunks of ``probs`` (N, C).

    ``probs`` are class probabilities (softmax outputs: rows of non-negative numbers summing
    to 1); logits or unnormalised scores are refused rather than scored meaninglessly.
    """
    p = check_features(probs, "Inception Score probabilities").double()
    if bool((p < 0).any()) or not torch.allclose(p.sum(1), torch.ones(1, dtype=p.dtype), rtol=0, atol=1e-3):
        raise PixseqError("Inception Score: expected class probabilities (softmax outputs, rows summing to 1)")
    n = p.shape[0]
    if splits < 1:
        raise PixseqError(f"Inception Score: splits must be at least 1, got {splits}")
    if n < splits:
        raise PixseqError(f"Inception Score with {splits} splits needs at least {splits} images, got {n}")
    scores = []
    for chunk in torch.tensor_split(p, splits):
        marginal = chunk.mean(0, keepdim=True)  # p(y) within the split, (1, C)
        # xlogy gives 0 for p = 0 (the KL convention), where p*log(p) would give NaN.
        kl = (torch.xlogy(chunk, chunk) - torch.xlogy(chunk, marginal.expand_as(chunk))).sum(1)
        scores.append(float(torch.exp(kl.mean())))
    arr = np.array(scores)
    return float(arr.mean()), float(arr.std())


class InceptionScore(Metric):
    """Collects class probabilities batch by batch (N x C floats); ``compute`` -> (mean, std).

    Args:
        logits_fn: ``(B,3,H,W) [0,1] -> (B, C)`` logits (e.g. ``inception_logits(model)``).
        splits: number of chunks (10 in the original protocol).
    """

    higher_is_better = True
    name = "is"

    def __init__(self, logits_fn: Callable[[torch.Tensor], torch.Tensor] | None = None, splits: int = 10) -> None:
        super().__init__()
        self.logits_fn, self.splits = logits_fn, splits
        self._probs: list[torch.Tensor] = []

    def update(self, images: torch.Tensor) -> None:
        with torch.no_grad():
            self.update_logits(self.logits_fn(images))

    def update_logits(self, logits: torch.Tensor) -> None:
        """Add a batch of ``(B, C)`` class logits."""
        width = self._probs[0].shape[1] if self._probs else None
        logits = check_features(logits, "Inception Score logits", width)
        self._probs.append(torch.softmax(logits.double(), dim=1).cpu())

    def reset(self) -> None:
        super().reset()
        self._probs = []

    def compute(self) -> tuple[float, float]:
        if not self._probs:
            raise PixseqError("Inception Score: no images were given")
        from pixseq.metrics.fid import _gather

        # Under DDP every rank's probabilities are gathered (the splits need the whole set).
        return inception_score(_gather(torch.cat(self._probs)), self.splits)


def inception_logits(model) -> Callable[[torch.Tensor], torch.Tensor]:
    """Logits function of a :class:`~pixseq.metrics.fid.FIDInceptionV3` (1008 classes, no fc bias)."""
    return lambda images: model.logits_unbiased(model.pool_features(images))
