"""ViT-Score: how many of a classifier's top-K ImageNet labels survive regeneration.

As first defined (the founding study, see ASSETS.md): a ViT-B/16 (ImageNet-21k -> 1k,
384 px) classifies the original and the regenerated image (resized to 384x384 without crop,
by PIL on the 8-bit image as the study's torchvision ``Resize`` did, see
:data:`pixseq.metrics.backbones.STUDY_PREPROCESS`; normalised with mean = std = 0.5); the score is ``|topK(a) ∩ topK(b)| / K`` with K = 100 —
order and probabilities ignored. Variants the study asked for:

* ``weighted`` — probability-weighted overlap: each image's softmax restricted to its own
  top-K and renormalised; the score is the histogram intersection ``sum_y min(pa_y, pb_y)``
  (1 for identical images, 0 for disjoint label sets);
* ``rbo`` — rank-biased overlap (Webber, Moffat & Zobel 2010, "A similarity measure for
  indefinite rankings"), extrapolated form truncated at depth K, persistence ``p``;
* ``cosine`` — cosine similarity of the pooled (pre-logits) embeddings.

The score is only called *ViT-Score* when computed with the study's backbone; with any other
classifier it is reported as "label-overlap score (<backbone>, K=<K>)" (:func:`score_label`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pixseq.errors import PixseqError
from pixseq.metrics.backbones import STUDY_BACKBONE, Classifier
from pixseq.metrics.base import Metric, check_features

VARIANTS = ("overlap", "weighted", "rbo", "cosine")


def _check_pair(a: torch.Tensor, b: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Two ``(B, D)`` matrices of the same shape, one row per image pair (no broadcasting)."""
    a = check_features(a, f"{what} of the reference images")
    b = check_features(b, f"{what} of the distorted images", a.shape[1])
    if a.shape[0] != b.shape[0]:
        raise PixseqError(f"{what}: {a.shape[0]} reference rows but {b.shape[0]} distorted ones")
    return a, b


def _check_k(logits: torch.Tensor, k: int) -> None:
    if not 1 <= k <= logits.shape[-1]:
        raise PixseqError(f"K must be between 1 and the number of classes ({logits.shape[-1]}), got {k}")


def topk_overlap(logits_a: torch.Tensor, logits_b: torch.Tensor, k: int = 100) -> torch.Tensor:
    """``|topK(a) ∩ topK(b)| / K`` per row: (B, C), (B, C) -> (B,)."""
    logits_a, logits_b = _check_pair(logits_a, logits_b, "logits")
    _check_k(logits_a, k)

    def member(logits: torch.Tensor) -> torch.Tensor:  # (B, C) bool: label is in the top K
        return torch.zeros(logits.shape, dtype=torch.bool, device=logits.device).scatter_(
            -1, logits.topk(k, -1).indices, True)

    in_a, in_b = member(logits_a), member(logits_b)
    return (in_a & in_b).sum(-1).double() / k


def weighted_overlap(logits_a: torch.Tensor, logits_b: torch.Tensor, k: int = 100) -> torch.Tensor:
    """Histogram intersection of the two top-K softmax distributions (each renormalised)."""
    logits_a, logits_b = _check_pair(logits_a, logits_b, "logits")
    _check_k(logits_a, k)

    def topk_dist(logits: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(logits.double(), -1)
        idx = p.topk(k, -1).indices
        masked = torch.zeros_like(p).scatter_(-1, idx, p.gather(-1, idx))
        return masked / masked.sum(-1, keepdim=True)

    return torch.minimum(topk_dist(logits_a), topk_dist(logits_b)).sum(-1).float()


def rank_biased_overlap(logits_a: torch.Tensor, logits_b: torch.Tensor, k: int = 100,
                        p: float = 0.98) -> torch.Tensor:
    """Extrapolated RBO of the two top-K rankings (Webber et al. 2010, eq. 32).

    ``RBO = (X_K / K) p^K + (1-p)/p * sum_{d=1..K} (X_d / d) p^d`` where ``X_d`` is the overlap
    of the top-d prefixes; identical rankings give exactly 1. p = 0.98 spreads the weight over
    roughly the first 50 ranks.
    """
    logits_a, logits_b = _check_pair(logits_a, logits_b, "logits")
    _check_k(logits_a, k)
    if not 0 < p < 1:
        raise PixseqError(f"rank-biased overlap needs 0 < p < 1, got {p}")
    ra, rb = logits_a.topk(k, -1).indices, logits_b.topk(k, -1).indices  # (B, K) ranked labels
    # rank_in_b[b, j] = rank of label ra[b, j] in rb (K when absent)
    match = ra.unsqueeze(-1) == rb.unsqueeze(-2)  # (B, K, K)
    rank_in_b = torch.where(match.any(-1), match.float().argmax(-1), torch.full_like(ra, k))
    depth = torch.arange(1, k + 1, device=ra.device)
    # X_d = #{j < d : rank_in_b[j] < d}: a label counts from the depth both lists contain it.
    first_common = torch.maximum(torch.arange(k, device=ra.device).expand_as(ra), rank_in_b)  # (B, K)
    x = (first_common.unsqueeze(-1) < depth.view(1, 1, k)).sum(1).double()  # (B, K) X_1..X_K
    d = depth.double()
    weights = p ** d
    rbo = (x[:, -1] / k) * p ** k + (1 - p) / p * ((x / d) * weights).sum(-1)
    return rbo.float()


def cosine_similarity(emb_a: torch.Tensor, emb_b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of pooled embeddings: (B, D), (B, D) -> (B,)."""
    emb_a, emb_b = _check_pair(emb_a, emb_b, "embeddings")
    return F.cosine_similarity(emb_a.double(), emb_b.double(), dim=-1).float()


def vit_score(a: torch.Tensor, b: torch.Tensor, classifier: Classifier, k: int = 100,
              variant: str = "overlap") -> torch.Tensor:
    """Label-overlap score per image pair: (B,3,H,W), (B,3,H',W') in [0,1] -> (B,)."""
    if variant not in VARIANTS:
        raise PixseqError(f"unknown ViT-Score variant {variant!r} (known: {', '.join(VARIANTS)})")
    if variant == "cosine":
        return cosine_similarity(classifier.embeddings(a), classifier.embeddings(b))
    if a.shape == b.shape:  # one forward pass for both images
        la, lb = classifier.logits(torch.cat([a, b])).chunk(2)
    else:
        la, lb = classifier.logits(a), classifier.logits(b)
    fn = {"overlap": topk_overlap, "weighted": weighted_overlap, "rbo": rank_biased_overlap}[variant]
    return fn(la, lb, k)


def score_label(backbone: str, k: int = 100, variant: str = "overlap") -> str:
    """What the number is, for tables: 'ViT-Score (...)' only for the study's backbone."""
    if variant == "cosine":  # no labels involved: say what it is
        return f"pooled-embedding cosine similarity ({backbone})"
    base = "ViT-Score" if backbone == STUDY_BACKBONE else "label-overlap score"
    extra = "" if variant == "overlap" else f", {variant}"
    return f"{base} ({backbone}, K={k}{extra})"


class ViTScore(Metric):
    """Mean label-overlap score over all pairs seen; :attr:`label` states backbone and K."""

    higher_is_better = True
    name = "vit_score"

    def __init__(self, classifier: Classifier, k: int = 100, variant: str = "overlap") -> None:
        super().__init__()
        self.classifier, self.k, self.variant = classifier, k, variant
        self.label = score_label(classifier.name, k, variant)
        self.add_state("total", torch.zeros((), dtype=torch.float64))
        self.add_state("count", torch.zeros((), dtype=torch.float64))

    def update(self, a: torch.Tensor, b: torch.Tensor) -> None:
        s = vit_score(a, b, self.classifier, self.k, self.variant)
        self._accumulate("total", s.double().sum())
        self._accumulate("count", torch.tensor(float(s.numel())))

    def compute(self) -> float:
        s = self.synced_state()
        return float(s["total"] / s["count"])
