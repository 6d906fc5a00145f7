"""Linear probes: how much class information each layer of a generative prior holds.

iGPT (Chen et al. 2020, section 3.2 / 4.1) average-pools a layer's features over the
sequence and fits a logistic-regression classifier on them; the best layer sits in the
middle of the network, because the last layers specialise in predicting the next pixel.
Here the classifier is scikit-learn's ``LogisticRegression`` on standardised features,
fitted on one part of the data and scored on a held-out part. Raw pixels are probed the
same way as a baseline: a layer is only interesting if it beats them.

Class-conditional models get the *same* class token for every image, so the label cannot
leak into the features through the conditioning: the model's "any class" token when it was
trained with one (see :data:`NULL_CLASS_NAME`), else class 0.

A classifier (the ViT) is probed the same way, on the pooled output of each block (its class
token, or the mean patch token): :func:`probe_models` puts an iGPT's layers and a ViT's in
one table, fitted and scored on the same images with the same split.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pixseq.errors import PixseqError
from pixseq.io import to_tensor
from pixseq.models.base import class_names

#: Class name of the "no particular class" token of models trained with label dropout
#: (``pixseq demo`` does that, so one model gives conditional and unconditional samples).
NULL_CLASS_NAME = "any (unconditional)"


def probe_class(model) -> int:
    """The class token probes feed a class-conditional model: its "any class" token, else 0."""
    names = class_names(model)
    return names.index(NULL_CLASS_NAME) if NULL_CLASS_NAME in names else 0


@dataclass
class ProbeRow:
    """Accuracy of one linear probe."""

    layer: str
    dim: int
    train_accuracy: float
    test_accuracy: float


def layer_names(num_layers: int) -> list[str]:
    """Names of the ``num_layers + 1`` feature sets a GPT prior returns."""
    return [f"block {i + 1}" for i in range(num_layers)] + ["final norm"]


@torch.no_grad()
def extract_features(model, images: np.ndarray, batch_size: int = 64,
                     cond_class: int | None = None) -> list[np.ndarray]:
    """Mean-pooled features of every layer: a list of ``(N, C)`` float32 arrays.

    ``images``: uint8 ``(N, H, W, 3)`` at the model's size. The model needs
    ``pooled_features(tokens, labels)`` (iGPT has it). ``cond_class``: the class token given
    to every image of a class-conditional model (default :func:`probe_class`).
    """
    if not hasattr(model, "pooled_features") and not hasattr(model, "layer_features"):
        raise PixseqError(f"linear probes need a model with pooled features (igpt, vit); got {model.kind!r}")
    H, W = model.image_size
    if images.ndim != 4 or tuple(images.shape[1:3]) != (H, W):
        raise PixseqError(f"probe images must be {W}x{H} for this model, got {images.shape}")
    device = next(model.parameters()).device
    cls = probe_class(model) if cond_class is None else cond_class
    out: list[list[np.ndarray]] = []
    for i in range(0, len(images), batch_size):
        x = to_tensor(images[i:i + batch_size])
        if hasattr(model, "layer_features"):  # a classifier: its pooled output after every block
            feats = model.layer_features(x.to(device))
        else:
            tokens = model.tokenizer.encode(x.to(device)).flatten(1)  # (B, h*w)
            labels = torch.full((len(x),), cls, dtype=torch.long) if model.num_classes else None  # same for all
            feats = model.pooled_features(tokens, labels)
        if not out:
            out = [[] for _ in feats]
        for store, f in zip(out, feats):
            store.append(f.float().cpu().numpy())
    return [np.concatenate(chunks) for chunks in out]


def split_indices(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded train/test split, stratified by class when every class has two or more images."""
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise PixseqError(f"test fraction must be in (0, 1), got {test_fraction}")
    n = len(labels)
    n_test = math.ceil(test_fraction * n)  # how scikit-learn sizes the held-out part
    n_train = n - n_test
    if n_train < 2:  # scikit-learn's own error here was a traceback
        raise PixseqError(f"a test fraction of {test_fraction} holds out {n_test} of {n} images, leaving "
                          f"{n_train} to fit the probe on: use a smaller test fraction or more images")
    idx = np.arange(n)
    _, counts = np.unique(labels, return_counts=True)
    # stratifying needs every class twice and room for each class in both parts
    strat = labels if counts.min() >= 2 and len(counts) <= min(n_train, n_test) else None
    train, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=strat)
    if len(np.unique(labels[train])) < 2:  # logistic regression cannot be fitted on one class
        raise PixseqError(f"the probe's {n_train} training images (test fraction {test_fraction} of {n}) hold "
                          f"only one class: use a smaller test fraction or more images")
    return train, test


def fit_probe(features: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray,
              max_iter: int = 1000) -> tuple[float, float]:
    """Logistic regression on standardised ``features``: (train accuracy, test accuracy)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    with warnings.catch_warnings():
        # A probe that has not fully converged is still a fair probe; don't spam the user.
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(features[train], labels[train])
    return float(clf.score(features[train], labels[train])), float(clf.score(features[test], labels[test]))


def linear_probe(model, images: np.ndarray, labels: np.ndarray, test_fraction: float = 0.25,
                 seed: int = 0, batch_size: int = 64, cond_class: int | None = None) -> list[ProbeRow]:
    """Probe raw pixels and every layer of ``model`` on uint8 ``(N, H, W, 3)`` images.

    Returns one :class:`ProbeRow` per feature set: ``"pixels"`` first, then the layers.
    """
    labels = np.asarray(labels)
    if len(labels) != len(images):
        raise PixseqError(f"{len(images)} images but {len(labels)} labels")
    if len(np.unique(labels)) < 2:
        raise PixseqError("a linear probe needs images of at least two classes")
    if len(images) < 8:
        raise PixseqError(f"a linear probe needs at least 8 images, got {len(images)}")
    from threadpoolctl import threadpool_limits

    train, test = split_indices(labels, test_fraction, seed)
    pixels = images.reshape(len(images), -1).astype(np.float32) / 255.0
    sets = [("pixels", pixels)]
    feats = extract_features(model, images, batch_size, cond_class)
    sets += list(zip(layer_names(len(feats) - 1), feats))
    rows = []
    # BLAS threads follow torch's setting: these fits are small, and extra BLAS threads on a
    # busy machine spin for cores (measured: 4x the CPU time for the same fits).
    with threadpool_limits(limits=torch.get_num_threads()):
        for name, f in sets:
            tr, te = fit_probe(f, labels, train, test)
            rows.append(ProbeRow(name, f.shape[1], tr, te))
    return rows


def chance_accuracy(labels: np.ndarray) -> float:
    """The accuracy of always guessing the commonest class among ``labels``: the baseline a
    probe has to beat (1/K only when the K classes are balanced)."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    return float(counts.max() / counts.sum())


def best_layer(rows: list[ProbeRow]) -> ProbeRow:
    """The model layer (not the pixel baseline) with the highest test accuracy."""
    layers = [r for r in rows if r.layer != "pixels"]
    return max(layers, key=lambda r: r.test_accuracy)


def format_table(rows: list[ProbeRow]) -> str:
    """A markdown table of probe accuracies, best layer marked."""
    best = best_layer(rows).layer
    lines = ["| features | dim | train acc | test acc |", "|---|---:|---:|---:|"]
    for r in rows:
        mark = " **best**" if r.layer == best else ""
        lines.append(f"| {r.layer}{mark} | {r.dim} | {r.train_accuracy:.3f} | {r.test_accuracy:.3f} |")
    return "\n".join(lines)


@dataclass
class ProbeRun:
    """What :func:`probe_model` measured: a row per layer (raw pixels first) and the data's facts."""

    rows: list[ProbeRow]
    images: int
    num_classes: int
    side: tuple[int, int]
    chance: float


def probe_model(model, data: str, limit: int | None = 2000, test_fraction: float = 0.25, seed: int = 0,
                batch_size: int = 64) -> ProbeRun:
    """``pixseq probe`` as one call: linear probes of every layer of ``model`` on the labelled
    data spec ``data`` (the first ``limit`` images, ``test_fraction`` held out)."""
    from pixseq.data import load_data, resize_square

    if limit is not None and limit < 8:
        raise PixseqError(f"--limit must be >= 8, got {limit}")
    if batch_size < 1:
        raise PixseqError(f"--batch-size must be >= 1, got {batch_size}")
    images_set = load_data(data, limit=limit)
    images_set.require_labels("a probe")
    H, W = model.image_size
    if H != W:
        raise PixseqError(f"probe supports square models, this one is {H}x{W}")
    images = resize_square(images_set.images, H)
    rows = linear_probe(model, images, images_set.labels, test_fraction, seed, batch_size)
    # the classes among the images probed: a --limit on a folder sorted by class keeps only the
    # first few, and 1 / (all the data's classes) understated the accuracy of always guessing
    # the commonest class
    return ProbeRun(rows, len(images), len(np.unique(images_set.labels)), (H, W), chance_accuracy(images_set.labels))


@dataclass
class ModelProbe:
    """One model's rows in a joint probe (:func:`probe_models`): its name, kind and input side."""

    name: str
    kind: str
    side: tuple[int, int]
    rows: list[ProbeRow]


def probe_models(models: list[tuple[str, object]], data: str, limit: int | None = 2000, test_fraction: float = 0.25,
                 seed: int = 0, batch_size: int = 64) -> tuple[list[ModelProbe], ProbeRun]:
    """Linear probes of every layer of several models (an iGPT and a ViT ...) on the same
    images of ``data`` with the same held-out split, each at its own input size (raw pixels
    probed once per size). Returns one :class:`ModelProbe` per model and the data's facts
    (a :class:`ProbeRun` whose rows are those of the first model)."""
    from pixseq.data import load_data, resize_square

    if limit is not None and limit < 8:
        raise PixseqError(f"--limit must be >= 8, got {limit}")
    images_set = load_data(data, limit=limit)
    labels = images_set.require_labels("a probe")
    out, seen_sides = [], set()
    for name, model in models:
        H, W = model.image_size
        if H != W:
            raise PixseqError(f"probe supports square models, {name} is {H}x{W}")
        rows = linear_probe(model, resize_square(images_set.images, H), labels, test_fraction, seed, batch_size)
        if (H, W) in seen_sides:
            rows = rows[1:]  # the raw pixels at this size are in the table already
        seen_sides.add((H, W))
        out.append(ModelProbe(name, getattr(model, "kind", "?"), (H, W), rows))
    facts = ProbeRun(out[0].rows, len(labels), len(np.unique(labels)), out[0].side, chance_accuracy(labels))
    return out, facts


def format_joint_table(probes: list[ModelProbe]) -> str:
    """One markdown table of several models' probes; each model's best layer is marked."""
    lines = ["| model | features | dim | train acc | test acc |", "|---|---|---:|---:|---:|"]
    for p in probes:
        best = best_layer(p.rows).layer
        for r in p.rows:
            who = f"raw pixels {p.side[1]}x{p.side[0]}" if r.layer == "pixels" else f"{p.name} ({p.kind})"
            mark = " **best**" if r.layer == best else ""
            lines.append(f"| {who} | {r.layer}{mark} | {r.dim} | {r.train_accuracy:.3f} | {r.test_accuracy:.3f} |")
    return "\n".join(lines)
