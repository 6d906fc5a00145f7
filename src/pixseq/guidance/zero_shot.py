"""Zero-shot classification from label text (Radford et al. 2021, section 3.1.2: "create a
dataset classifier from label text").

Each label becomes a class embedding: the mean of the unit text embeddings of the label in
each prompt template (``"a photo of a {}."`` ...; CLIP's prompt ensembling), normalised again.
An image's class probabilities are the softmax of ``scale * cos(image, class)``, ``scale``
the guide's learned temperature. A guide knows only what it was trained on: a LiT model
trained on Fashion-MNIST has ten concepts, and every output says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F

from pixseq.errors import PixseqError

DEFAULT_TEMPLATES = ("a photo of a {}.",)


def parse_labels(text: str | Sequence[str]) -> list[str]:
    """``"cat,dog"`` (or a list) -> labels; empty or repeated labels are errors."""
    labels = [t.strip() for t in (text.split(",") if isinstance(text, str) else text)]
    if not labels or any(not t for t in labels):
        raise PixseqError("--labels: give comma-separated label names, none empty (e.g. 'Sneaker,Sandal,Bag')")
    if len(set(labels)) != len(labels):
        raise PixseqError(f"--labels: {', '.join(sorted({t for t in labels if labels.count(t) > 1}))} given twice")
    if len(labels) < 2:
        raise PixseqError("--labels: give at least two labels to choose between")
    return labels


def class_embeddings(guide, labels: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES) -> torch.Tensor:
    """``(L, D)`` unit embeddings: each label's template embeddings averaged."""
    if not templates or any("{}" not in t for t in templates):
        raise PixseqError("every template must hold '{}' where the label goes, e.g. 'a photo of a {}.'")
    with torch.no_grad():
        rows = [F.normalize(guide.embed_text([t.format(label) for t in templates]).mean(0), dim=-1)
                for label in labels]
    return torch.stack(rows)


@dataclass
class ZeroShot:
    """Class probabilities ``(B, L)`` of images over ``labels``, and the top label of each."""

    labels: list[str]
    probs: torch.Tensor
    names: list[str] = field(default_factory=list)

    def top(self) -> list[str]:
        return [self.labels[i] for i in self.probs.argmax(1).tolist()]


def zero_shot_classify(images: torch.Tensor, labels: Sequence[str], guide,
                       templates: Sequence[str] = DEFAULT_TEMPLATES) -> ZeroShot:
    """Classify ``(B, 3, H, W)`` images in [0, 1] among ``labels`` by their text alone."""
    labels = parse_labels(labels)
    classes = class_embeddings(guide, labels, templates)
    with torch.no_grad():
        emb = guide.embed_images(images.float())
        logits = guide.logit_scale_value() * emb @ classes.to(emb.device).t()
    return ZeroShot(labels, logits.softmax(-1).cpu())


def zero_shot_files(guide, files, labels: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES,
                    json_out=None, batch: int = 64, force: bool = False) -> ZeroShot:
    """``pixseq classify IMAGES --labels ... --clip ...``: every image file classified among
    ``labels``; ``json_out`` (checked before any work, replaced only with ``force``, written
    atomically) gets the table."""
    import json

    from pixseq.io import atomic_write, claim_output, load_image, to_tensor

    labels = parse_labels(labels)
    if json_out is not None:
        claim_output(json_out, "--json", force=force, inputs=files)
    classes = class_embeddings(guide, labels, templates)
    device = next(guide.parameters()).device
    probs = []
    for i in range(0, len(files), batch):
        # one image at a time through the preprocessing (sizes differ), then one forward pass
        with torch.no_grad():
            x = torch.cat([guide.preprocess(to_tensor(load_image(f))[None].to(device)) for f in files[i:i + batch]])
            emb = F.normalize(guide.encode_image(x).float(), dim=-1)
        probs.append((guide.logit_scale_value() * emb @ classes.to(device).t()).softmax(-1).cpu())
    result = ZeroShot(labels, torch.cat(probs), [str(f) for f in files])
    if json_out is not None:
        with atomic_write(json_out, "w") as fh:
            json.dump({"labels": labels, "templates": list(templates), "note": getattr(guide, "scope_note", ""),
                       "predictions": [{"image": n, "probabilities": dict(zip(labels, p.tolist()))}
                                       for n, p in zip(result.names, result.probs)]}, fh, indent=2)
    return result
