"""The regression check of a zoo model: one quick number on a small held-out sample.

Every stored zoo model's index entry carries a ``check``: the data spec, how many images, the
number measured when the model was added and the tolerance. :func:`run_check` measures the
same number again with today's code; the tests (``tests/test_zoo_models.py``) and
``scripts/zoo/add.py`` both call it, so a later change to a model, a tokenizer or an
evaluation that silently makes a shipped model worse fails a test.

The numbers are the ones ``pixseq evaluate`` prints (:func:`pixseq.models.evaluation.evaluate_model`),
plus zero-shot accuracy for a LiT guide:

=========  ======================  =====================================================
kind       metric                  why this tolerance
=========  ======================  =====================================================
igpt       bits_per_pixel          0.01 bits: float reductions differ across CPUs / BLAS
taming     bits_per_code           0.02 bits (the same, over fewer, larger terms)
vqgan      psnr_db                 0.1 dB
vit        accuracy                2 images of the sample may flip on a near-tie
lit        zero_shot_accuracy      2 images, as for vit
gan        vit_is                  0.05: the seeded samples are the same; only the
                                   ViT's float rounding differs
=========  ======================  =====================================================

A GAN's check is not FID: Inception-v3 on a few hundred 299x299 images takes minutes on two
CPU cores. ``vit_is`` is the Inception Score's formula (Salimans et al. 2016),
exp(E_x KL(p(y|x) || p(y))), with the zoo's Fashion-MNIST ViT (``vit-fm``) as the classifier,
on ``images`` seeded samples (for a conditional GAN, sample i is of class i mod K): high when
samples are both recognisable (confident p(y|x)) and varied (a broad p(y)); at most 10. Its
cards give the real FID too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pixseq.errors import PixseqError

#: kind -> (metric, data spec, images, absolute tolerance or None, relative tolerance)
DEFAULTS: dict[str, tuple[str, str, int, float | None, float]] = {
    "igpt": ("bits_per_pixel", "fashion-mnist:test", 64, 0.01, 0.0),
    "taming": ("bits_per_code", "fashion-mnist:test", 128, 0.02, 0.0),
    "vqgan": ("psnr_db", "fashion-mnist:test", 128, 0.1, 0.0),
    "vit": ("accuracy", "fashion-mnist:test", 500, 2 / 500, 0.0),
    "lit": ("zero_shot_accuracy", "fashion-mnist:test", 500, 2 / 500, 0.0),
    "gan": ("vit_is", "fashion-mnist:test", 200, 0.05, 0.0),
}
#: Lower is better for these metrics (the check fails only in the worse direction, plus noise).
LOWER_IS_BETTER = {"bits_per_pixel", "bits_per_code", "kid", "fid"}


@dataclass(frozen=True)
class Check:
    """What a zoo model must still reach: ``metric`` on the first ``images`` of ``data``."""

    metric: str
    data: str
    images: int
    value: float
    tolerance: float

    def passed(self, measured: float) -> bool:
        """Whether ``measured`` is no worse than the recorded value beyond the tolerance."""
        if self.metric in LOWER_IS_BETTER:
            return measured <= self.value + self.tolerance
        return measured >= self.value - self.tolerance

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "data": self.data, "images": self.images, "value": round(self.value, 5),
                "tolerance": round(self.tolerance, 5)}


def default_check(kind: str, data: str | None = None) -> tuple[str, str, int]:
    """(metric, data spec, images) of the check for a model ``kind``."""
    if kind not in DEFAULTS:
        raise PixseqError(f"the zoo has no regression check for models of kind {kind!r}")
    metric, spec, n, _, _ = DEFAULTS[kind]
    return metric, data or spec, n


def measure(model: torch.nn.Module, metric: str, data: str, images: int) -> float:
    """``metric`` of ``model`` (in eval mode, on its device) on the first ``images`` of ``data``."""
    if model.kind == "lit":
        return _zero_shot_accuracy(model, data, images)
    if model.kind == "gan" and metric == "vit_is":
        return vit_inception_score(model, images)
    from pixseq.models.evaluation import evaluate_model

    device = next(model.parameters()).device
    result = evaluate_model(model, data, limit=images, device=device, samples=images if model.kind == "gan" else None)
    if metric not in result.means:
        raise PixseqError(f"evaluating a {model.kind} model gives {sorted(result.means)}, not {metric!r}")
    return float(result.means[metric])


def new_check(model: torch.nn.Module, data: str | None = None) -> Check:
    """Measure the default check of ``model``'s kind now (when the model is added to the zoo)."""
    metric, spec, n = default_check(model.kind, data)
    value = measure(model, metric, spec, n)
    _, _, _, absolute, relative = DEFAULTS[model.kind]
    tolerance = absolute if absolute is not None else relative * abs(value)
    return Check(metric, spec, n, value, tolerance)


def entry_check(entry) -> Check:
    """The check recorded in a zoo entry's quality, or a one-line error when it has none."""
    raw = entry.quality.get("check")
    if not isinstance(raw, dict):
        raise PixseqError(f"zoo model {entry.name} records no regression check")
    return Check(raw["metric"], raw["data"], int(raw["images"]), float(raw["value"]), float(raw["tolerance"]))


def run_check(name: str, device: str | torch.device = "cpu") -> tuple[Check, float]:
    """Load zoo model ``name`` (checksums verified) and measure its check again: (check, measured)."""
    from pixseq import zoo
    from pixseq.checkpoint import load_model

    entry = zoo.get(name)
    check = entry_check(entry)
    model = load_model(f"zoo:{name}", device=device)
    return check, measure(model, check.metric, check.data, check.images)


@torch.no_grad()
def _zero_shot_accuracy(guide, data: str, images: int) -> float:
    """Zero-shot accuracy of a LiT guide on labelled data, its concepts (in the data's class
    order, as :func:`pixseq.guidance.lit_train.fit_clip` trains them) as the labels."""
    from pixseq.data import load_data
    from pixseq.guidance.zero_shot import zero_shot_classify
    from pixseq.io import to_tensor

    test = load_data(data, limit=images)
    test.require_labels("a zero-shot check")
    x = to_tensor(np.stack(test.images))
    labels = list(guide.config.concepts) or list(test.class_names)
    if len(labels) != len(test.class_names):
        raise PixseqError(f"the guide knows {len(labels)} concepts, {data} has {len(test.class_names)} classes")
    probs = torch.cat([zero_shot_classify(x[i:i + 128], labels, guide).probs
                       for i in range(0, len(x), 128)])
    return float((probs.argmax(1).numpy() == np.asarray(test.labels)).mean())


#: The classifier of the GAN checks (a zoo model itself).
JUDGE = "vit-fm"


@torch.no_grad()
def vit_inception_score(generator: torch.nn.Module, num: int, seed: int = 0, judge: str = JUDGE) -> float:
    """The Inception Score's formula with zoo classifier ``judge`` on ``num`` seeded samples."""
    from pixseq.checkpoint import load_model
    from pixseq.classifiers.predict import predict
    from pixseq.gans.evaluate import sample_uint8

    classifier = load_model(f"zoo:{judge}", "vit", generator.device)
    p = predict(classifier, sample_uint8(generator, num, seed)).double().clamp_min(1e-12)  # (N, K) softmax
    marginal = p.mean(0, keepdim=True)
    return float(torch.exp((p * (p.log() - marginal.log())).sum(1).mean()))
