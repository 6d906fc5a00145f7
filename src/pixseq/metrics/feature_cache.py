"""Inception features of an image set, computed once and cached on disk.

Inception-v3 at 299x299 costs about a quarter of a CPU second per image, so the features of
a reference set (10 000 Fashion-MNIST test images: ~40 CPU minutes) are computed once and
kept in ``<weights cache>/features/`` as a float32 ``.npy`` file named after a key made of
the SHA-256 of the feature extractor's weights file and the SHA-256 of the images' pixels
(shape and bytes, in order): other weights or other images are another file. Reads check
the stored shape; the file is written atomically.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from pixseq.io import atomic_write

#: Images per Inception call (299x299: ~100 MB of activations per batch of 25 on the CPU).
BATCH = 25


def images_digest(images: Sequence[np.ndarray]) -> str:
    """SHA-256 of uint8 images (shape and bytes of each, in order)."""
    h = hashlib.sha256()
    for im in images:
        h.update(str(im.shape).encode())
        h.update(np.ascontiguousarray(im).tobytes())
    return h.hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@torch.no_grad()
def inception_features(model, images: Sequence[np.ndarray] | torch.Tensor, batch: int = BATCH,
                       desc: str | None = None) -> torch.Tensor:
    """``(N, D)`` float32 pool features of uint8 ``(H, W, 3)`` images (or float ``(N, 3, H, W)``
    in [0, 1]) on the model's device, in batches, with a progress bar when ``desc`` is given."""
    from pixseq.runtime import progress

    device = next(model.parameters()).device
    out = []
    bar = progress(total=len(images), desc=desc, unit="img") if desc is not None else None
    for i in range(0, len(images), batch):
        chunk = images[i:i + batch]
        if isinstance(chunk, torch.Tensor):
            x = chunk.float()
        else:
            x = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
        out.append(model.pool_features(x.to(device)).float().cpu())
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return torch.cat(out) if out else torch.empty(0, getattr(model, "num_features", 0))


def cached_features(model, images: Sequence[np.ndarray], folder: str | os.PathLike | None = None,
                    desc: str | None = None) -> tuple[torch.Tensor, bool]:
    """The features of ``images`` from the cache, else computed and cached. Returns them and
    whether they came from the cache. ``model.weights_file`` keys the cache; a model without
    one (random weights, a plug-in extractor) is never cached."""
    from pixseq.weights import cache_dir

    weights = getattr(model, "weights_file", None)
    if weights is None:
        return inception_features(model, images, desc=desc), False
    key = hashlib.sha256(f"{file_digest(weights)}:{images_digest(images)}".encode()).hexdigest()[:32]
    path = Path(folder) if folder is not None else cache_dir() / "features"
    path = path / f"inception-{key}.npy"
    if path.is_file():
        try:
            feats = np.load(path, allow_pickle=False)
            if feats.shape == (len(images), model.num_features):
                return torch.from_numpy(feats), True
        except (OSError, ValueError):
            pass  # damaged: computed again and replaced
    feats = inception_features(model, images, desc=desc)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as fh:
        np.save(fh, feats.numpy(), allow_pickle=False)
    return feats, False
