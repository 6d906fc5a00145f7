"""``pixseq demo``'s classifier section, from the zoo: the Vision Transformer ``vit-fm``
(Fashion-MNIST, 4x4 patches) on held-out test images: accuracy, the classes it confuses most,
and a few of its predictions."""
from __future__ import annotations

import numpy as np
import torch

ZOO_NAME = "vit-fm"
#: Demo-scale settings: a few seconds on 2 shared CPU cores.
DEMO = dict(test_images=2000)


def demo_section(page, out_dir, device: str | torch.device = "cpu", quick: bool = False) -> dict:
    """Accuracy and top confusions of ``vit-fm`` on held-out test images; returns the numbers shown."""
    from pixseq.classifiers.evaluate import evaluate_classifier
    from pixseq.data import load_data
    from pixseq.demo.common import Clock, card_number, zoo_model
    from pixseq.report.classifier import confused_pairs

    clock = Clock()
    model = zoo_model(ZOO_NAME, "vit", device)
    test = load_data("fashion-mnist:test", limit=200 if quick else DEMO["test_images"])
    scores = evaluate_classifier(model, test.images, np.asarray(test.labels), device=model.device)
    worst = confused_pairs(scores.confusion, list(model.class_names), top=3)
    c = model.config
    stats = {"accuracy": scores.accuracy, "images": len(test.images), "seconds": clock()}
    page.section(f"Vision Transformer from the zoo: {ZOO_NAME}")
    page.text(f"A ViT (Dosovitskiy et al. 2021) that cuts each 28x28 image into {c.patch_size}x{c.patch_size} "
              f"patches, {c.depth} transformer blocks of width {c.dim}, trained here from scratch with "
              f"`pixseq train vit` ({card_number(ZOO_NAME, 'training')}). `pixseq classify IMAGE --model "
              f"zoo:{ZOO_NAME}` names the garment in any image.")
    page.table(["measure", "value"], [
        [f"accuracy on the first {len(test.images)} held-out test images", f"{stats['accuracy']:.1%}"],
        ["accuracy on all 10 000 test images (its card)", card_number(ZOO_NAME, "test accuracy")],
    ] + [[f"'{a}' taken for '{b}'", f"{n} times ({share:.0%} of {a})"] for a, b, n, share in worst],
        caption=f"{ZOO_NAME} on held-out data, and the classes it confuses most")
    return stats
