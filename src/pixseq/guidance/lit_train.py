"""LiT recipes: ``build_clip`` / ``fit_clip`` / ``train_clip`` (all of ``pixseq train clip``).

Captioned images:

* ``fashion-mnist[:train|test]``: each image's caption is one of :data:`TEMPLATES` filled
  with its class name (:data:`FASHION_MNIST_NAMES`), drawn afresh at every step;
* a folder with a captions file (``captions.tsv`` / ``captions.txt``: ``relative/path.png<TAB>
  caption`` per line; several lines for one image give it several captions);
* a folder of class sub-folders (no captions file): the templates filled with the folder names.

Training is contrastive (InfoNCE, both directions, learned temperature) between the image
tower's embeddings and the locked text tower's embeddings of the captions drawn. Captions of
the same *concept* (the same class, or the same caption text) are all positives of each
other's images (a multi-positive target, as in UniCL, Yang et al. 2022): with ten classes,
a batch holds many images of each, which plain InfoNCE would push apart. Images are
augmented as VQGAN-CLIP's cut-outs are (:mod:`pixseq.guidance.cutouts`: random crops,
flips, rotations, colour jitter, noise), so the tower judges cut-outs as it judges images.
Held-out data (``val_data``) gives ``eval/zero_shot_acc``: the share of images whose nearest
concept (mean caption embedding) is their own.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pixseq.errors import PixseqError
from pixseq.guidance.cutouts import CutoutConfig, draw_cutouts, make_cutouts
from pixseq.guidance.lit import LiT, LiTConfig, text_tower
from pixseq.io import to_tensor
from pixseq.train.config import TrainConfig

if TYPE_CHECKING:
    from pixseq.train.runs import TrainResult

TEMPLATES = ("a photo of a {}.", "a picture of a {}.", "a {}.", "a black and white photo of a {}.",
             "a small photo of a {}.", "a grey {}.", "an image of a {}.", "a product photo of a {}.")
#: Fashion-MNIST's classes as a caption names them
FASHION_MNIST_NAMES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                       "ankle boot")
CAPTION_FILES = ("captions.tsv", "captions.txt")
#: augmentation of training images: the cut-outs' (crops of at least 70 % of the side)
AUGMENT = CutoutConfig(cutn=1, cut_pow=1.0, flip=0.5, rotate=10.0, jitter=0.05, noise=0.05)
MIN_CROP = 0.7


class Captions:
    """Concepts (caption groups) and their caption texts; each image belongs to one concept."""

    def __init__(self, concepts: Sequence[str], texts: Sequence[Sequence[str]]) -> None:
        if not concepts:
            raise PixseqError("no captions: nothing to train a LiT model on")
        self.concepts = list(concepts)
        self.texts = [list(t) for t in texts]
        flat = [t for group in self.texts for t in group]
        self.flat = flat
        counts = [len(t) for t in self.texts]
        self.offsets = torch.tensor(np.cumsum([0] + counts[:-1]), dtype=torch.long)
        self.counts = torch.tensor(counts, dtype=torch.long)

    @classmethod
    def from_templates(cls, names: Sequence[str], templates: Sequence[str] = TEMPLATES) -> "Captions":
        return cls(list(names), [[t.format(n) for t in templates] for n in names])


def fashion_mnist_captions() -> Captions:
    return Captions.from_templates(FASHION_MNIST_NAMES)


def read_captions_file(folder: Path, names: Sequence[str]) -> tuple[Captions, np.ndarray]:
    """The captions file of ``folder``: (captions, concept index of each image in ``names``)."""
    path = next((folder / n for n in CAPTION_FILES if (folder / n).is_file()), None)
    if path is None:
        raise PixseqError(f"{folder} has no captions file ({' or '.join(CAPTION_FILES)}: "
                          f"'relative/path.png<TAB>caption' per line) and no class sub-folders")
    by_image: dict[str, list[str]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        name, sep, caption = line.partition("\t")
        if not sep or not caption.strip():
            raise PixseqError(f"{path}:{n}: expected 'image<TAB>caption', got {line[:60]!r}")
        by_image.setdefault(name.strip(), []).append(caption.strip())
    missing = [n for n in names if n not in by_image]
    if missing:
        raise PixseqError(f"{path}: no caption for {len(missing)} image(s), e.g. {missing[0]}")
    # a concept = one image's set of captions; identical sets are one concept
    keys = [tuple(by_image[n]) for n in names]
    index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    return Captions([k[0] for k in index], [list(k) for k in index]), np.array([index[k] for k in keys])


def captions_for(data) -> tuple[Captions, np.ndarray]:
    """(captions, concept per image) of an :class:`~pixseq.data.ImageSet` from ``load_data``."""
    if data.spec.startswith("fashion-mnist"):
        return fashion_mnist_captions(), np.asarray(data.labels)
    folder = Path(data.spec)
    if any((folder / n).is_file() for n in CAPTION_FILES) or data.labels is None:
        return read_captions_file(folder, data.names)
    return Captions.from_templates(data.class_names), np.asarray(data.labels)


class CaptionedImages(torch.utils.data.Dataset):
    """``{"image": (3, S, S) in [0, 1], "concept": ()}`` items (images resized to ``size``)."""

    def __init__(self, images: Sequence[np.ndarray], concepts: np.ndarray, size: int) -> None:
        from pixseq.data import resize_square

        self.images = resize_square(images, size)
        self.concepts = torch.as_tensor(np.asarray(concepts), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": to_tensor(self.images[i]), "concept": self.concepts[i]}


def augment(images: torch.Tensor) -> torch.Tensor:
    """Each image of ``(B, 3, S, S)`` its own random crop (>= 70 % of the side), flip,
    rotation, jitter and noise (torch's global RNG: the Trainer restores it on resume)."""
    B, _, S, _ = images.shape
    cfg = CutoutConfig(**{**AUGMENT.__dict__, "cutn": B})
    d = draw_cutouts(cfg, S, S, max(1, int(S * MIN_CROP)), None)
    return make_cutouts(images, d, slice(None), S, None)


def multi_positive_loss(img: torch.Tensor, txt: torch.Tensor, concepts: torch.Tensor,
                        scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of unit embeddings ``(B, D)`` where pairs of the same concept are
    all positives (target: uniform over them)."""
    logits = scale * img @ txt.t()  # (B, B)
    pos = (concepts[:, None] == concepts[None]).to(logits.dtype)
    target = pos / pos.sum(1, keepdim=True)
    i2t = -(target * logits.log_softmax(1)).sum(1).mean()
    t2i = -(target * logits.t().log_softmax(1)).sum(1).mean()
    return (i2t + t2i) / 2


class LiTTask:
    """The Trainer's view: one part, the image tower and temperature; the caption
    embeddings are computed once by the locked text tower."""

    def __init__(self, model: LiT, captions: Captions) -> None:
        self.model, self.captions = model, captions
        self.text = text_tower().embed(captions.flat)  # (T, 384), locked
        protos = torch.stack([self.text[o:o + c].mean(0) for o, c in zip(captions.offsets, captions.counts)])
        self.prototypes = F.normalize(protos, dim=-1)  # (concepts, 384)

    def parts(self) -> list[str]:
        return ["image"]

    def modules(self) -> dict[str, nn.Module]:
        return {"lit": self.model}

    def parameters(self, part: str) -> Iterable[nn.Parameter]:
        return self.model.parameters()

    def training_step(self, batch: dict, step: int, part: str):
        concepts = batch["concept"]
        c = self.captions
        pick = c.offsets[concepts.cpu()] + (torch.rand(len(concepts)) * c.counts[concepts.cpu()]).long()
        txt = self.text[pick].to(batch["image"].device)  # (B, 384): a caption drawn per image
        x = self.model.normalize(augment(batch["image"]))
        img = F.normalize(self.model.encode_image(x).float(), dim=-1)
        scale = self.model.logit_scale.exp().clamp(max=100)
        loss = multi_positive_loss(img, txt, concepts, scale)
        return loss, {"scale": scale.detach()}

    def eval_step(self, batch: dict) -> dict[str, float]:
        img = self.model.embed_images(batch["image"], resize=False)
        pred = (img @ self.prototypes.to(img.device).t()).argmax(1)
        return {"zero_shot_acc": float((pred == batch["concept"]).float().mean())}


def build_clip(concepts: Sequence[str], image_size: int = 28, channels: Sequence[int] = (32, 64, 128),
               blocks: int = 1, seed: int = 0) -> LiT:
    """A fresh LiT model (random image tower) for ``concepts``."""
    try:
        cfg = LiTConfig(image_size=image_size, channels=tuple(channels), blocks=blocks, concepts=list(concepts))
    except ValueError as exc:
        raise PixseqError(f"LiT model: {exc}") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LiT(cfg)


def fit_clip(model: LiT, images: Sequence[np.ndarray], concepts: np.ndarray, captions: Captions,
             out_dir: str | os.PathLike, train_config: TrainConfig, device="cpu", resume: bool = False,
             callbacks=(), meta: dict | None = None,
             held_out: tuple[Sequence[np.ndarray], np.ndarray] | None = None) -> tuple[LiT, list[dict]]:
    """Train ``model`` on captioned ``images`` with the one Trainer; write the model directory."""
    from pixseq.checkpoint import save_pretrained
    from pixseq.train.distributed import is_main_process
    from pixseq.train.trainer import Trainer

    size = model.config.image_size
    data = CaptionedImages(images, concepts, size)
    eval_data = CaptionedImages(*held_out, size) if held_out is not None else None
    history = Trainer(LiTTask(model, captions), data, train_config, out_dir, device, callbacks=callbacks,
                      eval_data=eval_data).fit(resume=resume)
    model.eval()
    last = history[-1] if history else {}
    info = {**(meta or {}), "final_loss": last.get("image/loss", last.get("loss"))}
    if "eval/zero_shot_acc" in last:
        info.update(held_out_zero_shot_acc=last["eval/zero_shot_acc"], held_out_images=len(eval_data))
    if is_main_process():
        save_pretrained(model, out_dir, meta=info)
    return model, history


def default_clip_train_config() -> TrainConfig:
    """``pixseq train clip``'s training defaults."""
    return TrainConfig(steps=1500, batch_size=128, lr=2e-3, warmup_steps=100, ckpt_every=250, weight_decay=0.05)


#: A LiT run's model/data settings (recorded; ``resume`` refuses to change them) and defaults
CLIP_RUN_DEFAULTS = {"data": None, "limit": None, "image_size": 28, "channels": "32,64,128", "blocks": 1,
                     "val_data": None, "val_limit": None}


def _channels(text: str) -> tuple[int, ...]:
    try:
        chans = tuple(int(c) for c in str(text).split(","))
    except ValueError:
        raise PixseqError(f"--channels {text!r}: expected comma-separated integers, e.g. 32,64,128") from None
    if not chans or min(chans) < 1:
        raise PixseqError(f"--channels {text!r}: channel counts must be >= 1")
    return chans


def train_clip(data: str, out: str | os.PathLike, *, train: dict | TrainConfig | None = None, device="cpu",
               resume: bool = False, force: bool = False, seed: int | None = None, callbacks=(),
               **settings) -> "TrainResult":
    """``pixseq train clip`` as one call: a LiT model for the captioned images of ``data``,
    written to ``out``. ``settings``: the keys of :data:`CLIP_RUN_DEFAULTS`."""
    from pixseq.data import load_data
    from pixseq.device import resolve_device
    from pixseq.train.runs import (RunRecorder, TrainResult, check_limit, check_out_dir, load_val_data,
                                   run_settings, train_config)

    out = Path(out)
    check_out_dir(out, out, resume, force, inputs=[data, settings.get("val_data")])
    s = run_settings({"data": data, **settings}, CLIP_RUN_DEFAULTS, out, resume)
    check_limit(s["limit"])
    check_limit(s["image_size"], "--image-size")
    chans = _channels(s["channels"])
    tc = train_config(train, default_clip_train_config(), out, resume, seed)
    images = load_data(s["data"], limit=s["limit"])
    captions, concepts = captions_for(images)
    val = load_val_data({**s, "classes": False}, images)
    held = None
    if val is not None:
        vset = load_data(s["val_data"], limit=len(val[0]))
        vcap, vconc = captions_for(vset)
        if vcap.concepts != captions.concepts:
            raise PixseqError(f"--val-data {s['val_data']} has other concepts than the training data")
        held = (val[0], vconc)
    model = build_clip(captions.concepts, s["image_size"], chans, s["blocks"], tc.seed)
    model, history = fit_clip(model, images.images, concepts, captions, out, tc, resolve_device(device), resume,
                              [RunRecorder(out, s, resume), *callbacks], {"data": s["data"]}, held)
    return TrainResult(model, history, s, tc, held_out=0 if held is None else len(held[0]))
