"""The HTML page of ``pixseq evaluate --html DIR`` for a classifier: accuracy, per-class
accuracy, the confusion matrix (table and heat map), the most confused pairs and examples of
the mistakes."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from pixseq.report.html import Page

if TYPE_CHECKING:
    from pixseq.classifiers.evaluate import ClassifierScores


def _heat_map(cm: np.ndarray, names: Sequence[str]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = cm.sum(1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    size = 2.5 + 0.45 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted class"), ax.set_ylabel("true class")
    if len(names) <= 20:
        for i in range(len(names)):
            for j in range(len(names)):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    return fig


def confused_pairs(cm: np.ndarray, names: Sequence[str], top: int = 10) -> list[tuple[str, str, int, float]]:
    """The ``top`` most frequent mistakes: (true class, predicted class, images, share of the true class)."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:top]
    out = []
    for flat in order:
        i, j = divmod(int(flat), cm.shape[1])
        if off[i, j]:
            out.append((names[i], names[j], int(off[i, j]), float(off[i, j] / cm[i].sum())))
    return out


def classifier_page(scores: "ClassifierScores", images: Sequence[np.ndarray], title: str, facts: list[tuple],
                    examples: int = 32) -> Page:
    """The evaluation page; ``images`` are the evaluated uint8 images (for the mistakes),
    ``facts`` ``(name, value)`` rows shown first (model, data, ...)."""
    from pixseq.report.grid import legible_scale

    names = scores.class_names
    page = Page(title)
    page.table(["", "value"], [*facts, ("images", len(scores.labels)), ("accuracy", scores.accuracy),
                               ("cross-entropy (nats)", scores.loss)])
    page.section("Accuracy per class")
    page.table(["class", "images", "accuracy"], scores.per_class())
    page.section("Confusion matrix")
    cm = scores.confusion
    page.plot(_heat_map(cm, names), caption="Rows: true class; columns: predicted class; colour: share of the row.")
    present = [i for i in range(len(names)) if cm[i].sum()]
    page.table(["true \\ predicted", *names], [[names[i], *cm[i].tolist()] for i in present])
    pairs = confused_pairs(cm, names)
    if pairs:
        page.section("Most confused pairs")
        page.table(["true class", "predicted as", "images", "share of the true class"], pairs)
        wrong = np.flatnonzero(scores.labels != scores.predictions)[:examples]
        if len(wrong):
            tiles = [np.asarray(images[i]) for i in wrong]
            what = "; ".join(f"{names[scores.labels[i]]} as {names[scores.predictions[i]]}" for i in wrong)
            page.grid(tiles, ncol=8, scale=legible_scale(max(t.shape[0] for t in tiles), 56),
                      caption=f"The first {len(wrong)} mistakes, row by row (true class as predicted class): {what}.")
    return page


def write_classifier_page(scores: "ClassifierScores", images: Sequence[np.ndarray], out_dir: str | Path,
                          title: str, facts: list[tuple]) -> Path:
    """Build and save the page in ``out_dir`` (``index.html`` + ``assets/``); its path."""
    return classifier_page(scores, images, title, facts).save(out_dir)
