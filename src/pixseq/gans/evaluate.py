"""FID, KID and IS of a generator's samples against real images (held-out data).

Samples are drawn from fixed latents (seeded), with labels cycling over the classes for a
conditional generator, rounded to 8-bit levels as a saved image would be, and embedded with
the FID Inception-v3 (:func:`pixseq.metrics.fid.load_fid_inception`) exactly like the real
images: FID (Heusel et al. 2017) of the two feature sets, KID (Bińkowski et al. 2018; mean
over random subsets) and, when the Inception weights have the 1008-way classifier, the
Inception Score of the samples (Salimans et al. 2016). Fewer samples than 2048 give a biased
(higher) FID: compare like with like.

:class:`SampleEvaluator` is what the Trainer's held-out hook uses at every checkpoint (on
the EMA generator); :func:`evaluate_generator` is ``pixseq evaluate`` on a ``gan`` model.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import torch

from pixseq.errors import PixseqError

#: Samples per generator call when scoring.
BATCH = 50


@torch.no_grad()
def sample_uint8(model, num: int, seed: int = 0, offset: int = 0) -> torch.Tensor:
    """``num`` samples ``(num, 3, S, S)`` rounded to 8-bit levels (as floats in [0, 1]).
    Sample ``i`` comes from latent ``offset + i`` of the seeded stream, so shards of one set
    (processes under torchrun) are the set's own samples."""
    out = []
    for start in range(offset, offset + num, BATCH):
        n = min(BATCH, offset + num - start)
        g = torch.Generator(model.device).manual_seed(seed * 1_000_003 + start)
        labels = (torch.arange(start, start + n) % model.num_classes) if model.num_classes else None
        out.append((model.generate(n, labels, generator=g) * 255).round() / 255)
    return torch.cat(out) if out else torch.empty(0, 3, *model.image_size)


def set_scores(real: torch.Tensor, fake: torch.Tensor, fake_logits: torch.Tensor | None = None,
               kid_subsets: int = 100) -> dict[str, float]:
    """``fid``, ``kid`` (mean over subsets of up to 1000), ``kid_std`` and, with logits, ``is`` /
    ``is_std`` (10 splits) from ``(N, D)`` feature matrices."""
    from pixseq.metrics.fid import fid_from_features, kid_from_features
    from pixseq.metrics.inception_score import inception_score

    if min(len(real), len(fake)) < 2:
        raise PixseqError(f"FID needs at least 2 real and 2 generated images, got {len(real)} and {len(fake)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer samples than dimensions: said in the outputs' counts
        out = {"fid": fid_from_features(real, fake)}
        size = min(1000, len(real), len(fake))
        out["kid"], out["kid_std"] = kid_from_features(real, fake, subsets=kid_subsets, subset_size=size)
    if fake_logits is not None and len(fake_logits) >= 10:
        out["is"], out["is_std"] = inception_score(torch.softmax(fake_logits.double(), 1), splits=10)
    return out


class SampleEvaluator:
    """Held-out FID/KID(/IS) of samples at each checkpoint: real features once (or given,
    e.g. from :func:`pixseq.metrics.feature_cache.cached_features`), ``num_samples`` samples
    of the generator at each call of :meth:`score`."""

    def __init__(self, extractor, num_samples: int = 1000, reference: torch.Tensor | None = None,
                 kid_subsets: int = 10, seed: int = 0) -> None:
        self.extractor, self.num_samples, self.seed, self.kid_subsets = extractor, num_samples, seed, kid_subsets
        self.reference = reference
        self._real: list[torch.Tensor] = []

    def add_real(self, images: torch.Tensor) -> None:
        if self.reference is None:
            self._real.append(self._features(images))

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        from pixseq.metrics.feature_cache import inception_features

        return inception_features(self.extractor, images.float().cpu())

    def score(self, model) -> dict[str, float]:
        from pixseq.metrics.fid import _gather
        from pixseq.train.distributed import init_from_env

        if self.reference is None:
            if not self._real:
                raise PixseqError("no held-out images were given to the FID evaluator")
            self.reference, self._real = _gather(torch.cat(self._real)), []
        info = init_from_env(torch.device("cpu"))
        share = math.ceil(self.num_samples / info.world_size)
        first = info.rank * share
        mine = sample_uint8(model, max(0, min(share, self.num_samples - first)), self.seed, offset=first)
        feats = self._features(mine)
        logits = self.extractor.logits_unbiased(feats) if getattr(self.extractor, "has_classifier", False) else None
        fake = _gather(feats)
        logits = _gather(logits) if logits is not None else None
        return set_scores(self.reference, fake, logits, self.kid_subsets)


def evaluate_generator(model, images: Sequence[np.ndarray], num_samples: int = 10_000, seed: int = 0,
                       weights_dir=None, offline: bool | None = None, kid_subsets: int = 100) -> dict:
    """``pixseq evaluate`` on a generator: FID/KID(/IS) of ``num_samples`` samples against the
    uint8 ``images`` (their features cached on disk). Returns the scores plus ``inception``
    (which weights) and ``cached`` (whether the real features came from the cache)."""
    from pixseq.metrics.feature_cache import cached_features, inception_features
    from pixseq.metrics.fid import load_fid_inception

    extractor = load_fid_inception(weights_dir=weights_dir, offline=offline).to(model.device)
    real, hit = cached_features(extractor, list(images), desc="real images")
    samples = sample_uint8(model, num_samples, seed)
    fake = inception_features(extractor, samples, desc="samples")
    logits = extractor.logits_unbiased(fake.to(model.device)).cpu() if extractor.has_classifier else None
    scores = set_scores(real, fake, logits, kid_subsets)
    return {**scores, "inception": extractor.source, "cached": hit, "samples": num_samples, "real": len(real)}
