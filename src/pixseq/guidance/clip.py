"""CLIP (Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision", 2021) as pixseq's *guide*: image and text embeddings in one space.

The networks are ``open_clip_torch``'s own model definitions (:class:`open_clip.model.CLIP`)
and its BPE tokenizer, whose vocabulary ships inside the wheel; pixseq adds the parts around
them: a registered model kind (``clip``: ``config.json`` + ``model.safetensors`` with
open_clip's exact key layout), weights found by :func:`pixseq.weights.resolve_weights`, strict
shape checks, and the :class:`Guide` interface that :mod:`pixseq.guidance.vqgan_clip`, the
CLIP score and zero-shot classification use (the LiT models of :mod:`pixseq.guidance.lit`
have it too).

``--clip`` accepts (:func:`load_guide`):

* ``ViT-B-32`` / ``ViT-B-32:laion2b_s34b_b79k`` - an open_clip architecture and pretrained
  tag (default ``openai``); the weights are the open_clip-layout ``open_clip_model.safetensors``
  of the Hugging Face repository open_clip names for that tag, resolved as every pixseq weight
  file is (``--clip-weights FILE`` > ``--weights-dir`` > cache > download > a one-line error
  naming the file);
* ``random:ViT-B-32`` - that architecture with random weights (benchmarks; said in a notice);
* a pixseq model directory of kind ``clip`` or ``lit``, or a folder holding open_clip's
  ``open_clip_config.json`` + ``open_clip_model.safetensors`` (a downloaded hub repository);
* ``zoo:NAME`` - a pixseq zoo model of kind ``clip`` or ``lit`` (``zoo:lit-fm``; a bare name
  would read as an open_clip architecture).

OpenAI's original ``.pt`` files are TorchScript archives, which ``torch.load(weights_only=True)``
cannot read and pixseq does not unpickle otherwise; the same weights are published in
open_clip's layout as safetensors (the default download).
"""
from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from open_clip.model import CLIP as _OpenCLIP
from open_clip.model import CLIPTextCfg, CLIPVisionCfg

from pixseq.errors import PixseqError
from pixseq.registry import register
from pixseq.runtime import notice

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_TAG = "openai"
RANDOM_PREFIX = "random:"
#: keys OpenAI's state dicts carry beside the weights (read from them by open_clip, no tensors of ours)
_OPENAI_EXTRA = ("input_resolution", "context_length", "vocab_size")


class Guide:
    """What every guide (a CLIP, a LiT model) offers: unit-length embeddings of images and
    texts in one space, its input size and preprocessing, and what it knows.

    Subclasses implement :meth:`encode_image` (preprocessed ``(B, 3, S, S)``) and
    :meth:`embed_text`; the rest is shared."""

    #: a sentence every output of this guide carries (LiT: the only concepts it knows), or ""
    scope_note: str = ""

    @property
    def input_size(self) -> int:
        raise NotImplementedError

    @property
    def pixel_mean(self) -> tuple[float, float, float]:
        raise NotImplementedError

    @property
    def pixel_std(self) -> tuple[float, float, float]:
        raise NotImplementedError

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` in [0, 1] -> the network's input (per-channel mean / std)."""
        mean = images.new_tensor(self.pixel_mean).view(1, 3, 1, 1)
        std = images.new_tensor(self.pixel_std).view(1, 3, 1, 1)
        return (images - mean) / std

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """CLIP's own preprocessing of ``(B, 3, H, W)`` in [0, 1]: the short side resized to
        the input size (bicubic, antialiased), the centre square cropped; then normalised."""
        s = self.input_size
        H, W = images.shape[-2:]
        if (H, W) != (s, s):
            h, w = (s, max(s, round(W * s / H))) if H <= W else (max(s, round(H * s / W)), s)
            images = F.interpolate(images, size=(h, w), mode="bicubic", align_corners=False,
                                   antialias=True).clamp(0, 1)
            top, left = (h - s) // 2, (w - s) // 2
            images = images[..., top:top + s, left:left + s]
        return self.normalize(images)

    def embed_images(self, images: torch.Tensor, resize: bool = True) -> torch.Tensor:
        """Unit embeddings ``(B, D)`` of images ``(B, 3, H, W)`` in [0, 1], preprocessed as CLIP
        is (:meth:`preprocess`); ``resize=False``: already at the input size."""
        pixels = self.preprocess(images) if resize else self.normalize(images)
        return F.normalize(self.encode_image(pixels).float(), dim=-1)

    def logit_scale_value(self) -> float:
        """The temperature of zero-shot logits (``exp`` of the learned ``logit_scale``)."""
        return float(self.logit_scale.exp())

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit embeddings ``(N, D)`` of ``texts``."""
        raise NotImplementedError

    def drop_text_tower(self) -> None:
        """Free what only :meth:`embed_text` needs (a memory saving; may do nothing)."""

    def frozen(self) -> "Guide":
        """Eval mode, no parameter gradients (a guide is never trained while it guides)."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self


@dataclass
class CLIPConfig:
    """An open_clip CLIP: ``vision`` / ``text`` are open_clip's ``CLIPVisionCfg`` /
    ``CLIPTextCfg`` fields (as in its model JSON files), plus the input normalisation."""

    embed_dim: int = 512
    vision: dict[str, Any] = field(default_factory=dict)
    text: dict[str, Any] = field(default_factory=dict)
    quick_gelu: bool = False
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    name: str = ""  # the open_clip architecture (and tag) it was built as, for messages

    def __post_init__(self) -> None:
        if self.embed_dim < 1:
            raise ValueError(f"embed_dim must be >= 1, got {self.embed_dim}")
        for what, cls, cfg in (("vision", CLIPVisionCfg, self.vision), ("text", CLIPTextCfg, self.text)):
            known = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(set(cfg) - known)
            if unknown:
                raise ValueError(f"unknown open_clip {what} setting(s) {', '.join(unknown)}")
        # towers from timm / Hugging Face would download their own weights in the constructor
        if self.vision.get("timm_model_name") or self.text.get("hf_model_name"):
            raise ValueError("only open_clip's own towers are supported (no timm / Hugging Face towers)")


@register("clip", CLIPConfig, "CLIP image and text encoders (open_clip model definitions)")
class CLIP(_OpenCLIP, Guide):
    """open_clip's CLIP, built from a :class:`CLIPConfig`; its state dict keys are open_clip's."""

    def __init__(self, config: CLIPConfig) -> None:
        super().__init__(config.embed_dim, CLIPVisionCfg(**config.vision), CLIPTextCfg(**config.text),
                         quick_gelu=config.quick_gelu)
        self.config = config
        self._tokenizer = None

    @property
    def input_size(self) -> int:
        size = self.visual.image_size
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    @property
    def pixel_mean(self) -> tuple[float, float, float]:
        return tuple(self.config.mean)

    @property
    def pixel_std(self) -> tuple[float, float, float]:
        return tuple(self.config.std)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """open_clip's BPE tokens ``(N, context_length)`` (its vocabulary ships in the wheel)."""
        if self._tokenizer is None:
            from open_clip.tokenizer import SimpleTokenizer

            self._tokenizer = SimpleTokenizer(context_length=self.context_length)
        return self._tokenizer(list(texts))

    def drop_text_tower(self) -> None:
        """Free the text transformer (a third of ViT-B/32's weights) once the prompts are
        embedded: an optimisation looks at images only. :meth:`embed_text` fails after."""
        for name in ("transformer", "token_embedding", "ln_final", "positional_embedding", "text_projection"):
            if hasattr(self, name):
                delattr(self, name)
        self._text_dropped = True

    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        if getattr(self, "_text_dropped", False):
            raise RuntimeError("this CLIP's text tower was dropped (drop_text_tower)")
        tokens = self.tokenize(texts).to(self.logit_scale.device)
        return F.normalize(self.encode_text(tokens).float(), dim=-1)

    def encode_image(self, pixels: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return super().encode_image(pixels.to(self.visual.conv1.weight.dtype), normalize=normalize)


# ------------------------------------------------------------------ configs and weights
def architecture_config(name: str) -> CLIPConfig:
    """The :class:`CLIPConfig` of an open_clip architecture (``ViT-B-32``, ``RN50`` ...) with
    its pretrained tag's preprocessing when one is given (``ViT-B-32:openai``)."""
    from open_clip import factory, pretrained

    arch, _, tag = name.partition(":")
    cfg = factory.get_model_config(arch)
    if cfg is None:
        known = ", ".join(n for n in factory.list_models() if n.startswith(("ViT-B", "ViT-L", "RN")))
        raise PixseqError(f"unknown CLIP architecture {arch!r} (open_clip knows e.g. {known})")
    pre = pretrained.get_pretrained_cfg(arch, tag) if tag else {}
    try:
        return CLIPConfig(embed_dim=cfg["embed_dim"], vision=dict(cfg["vision_cfg"]), text=dict(cfg["text_cfg"]),
                          quick_gelu=bool(cfg.get("quick_gelu") or pre.get("quick_gelu")),
                          mean=tuple(pre.get("mean", OPENAI_MEAN)), std=tuple(pre.get("std", OPENAI_STD)), name=name)
    except ValueError as exc:
        raise PixseqError(f"CLIP architecture {arch!r}: {exc}") from None


def weight_file(name: str):
    """The :class:`~pixseq.weights.WeightFile` of ``ARCH[:TAG]``: the open_clip-layout
    safetensors in the Hugging Face repository open_clip names for that tag."""
    from open_clip import pretrained

    from pixseq.weights import WeightFile

    arch, _, tag = name.partition(":")
    tag = tag or DEFAULT_TAG
    cfg = pretrained.get_pretrained_cfg(arch, tag)
    hub = (cfg or {}).get("hf_hub", "").strip("/")
    if not hub:
        tags = ", ".join(pretrained.list_pretrained_tags_by_model(arch)) or "none"
        raise PixseqError(f"no pretrained CLIP weights {arch}:{tag} are known (tags for {arch}: {tags})")
    return WeightFile(f"open_clip--{hub.replace('/', '--')}.safetensors",
                      f"https://huggingface.co/{hub}/resolve/main/open_clip_model.safetensors", "",
                      f"CLIP {arch} {tag} weights in open_clip's layout")


def clean_state(state: dict[str, Any], source: str) -> dict[str, torch.Tensor]:
    """A foreign CLIP state dict in open_clip's layout: a ``state_dict`` wrapper and a
    ``module.`` prefix (DDP checkpoints) removed, OpenAI's non-tensor extras dropped."""
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise PixseqError(f"{source} holds no CLIP state dict")
    out = {}
    for key, value in state.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if key in _OPENAI_EXTRA:
            continue
        if not isinstance(value, torch.Tensor):
            raise PixseqError(f"{source}: entry {key!r} is not a tensor; not a CLIP state dict")
        out[key] = value
    return out


def read_clip_weights(path: Path) -> dict[str, torch.Tensor]:
    """A CLIP weight file (``.safetensors`` or a plain pickled state dict) as tensors;
    TorchScript archives (OpenAI's ``.pt``) are refused with the file to use instead."""
    from pixseq.checkpoint import load_tensors

    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            if any(n.endswith("constants.pkl") for n in zf.namelist()):
                raise PixseqError(f"{path} is a TorchScript archive (OpenAI's original .pt), which pixseq does not "
                                  f"load; use the same weights as open_clip_model.safetensors (the default download)")
    return clean_state(load_tensors(path), str(path))


_ST_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
              "I64": torch.int64, "I32": torch.int32}


def load_clip_file(model: CLIP, path: Path) -> CLIP:
    """Load a CLIP weight file into ``model``, strictly. A ``.safetensors`` file is read with
    plain reads, one tensor at a time, straight into the parameters (every name and shape
    checked first): no second copy of the weights and no memory-mapped file pages in the
    process's resident memory (2 x 600 MB for ViT-B/32 otherwise). Other files go through
    :func:`read_clip_weights`."""
    if path.suffix != ".safetensors":
        return load_clip_weights(model, read_clip_weights(path), str(path))
    own = model.state_dict()
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(n))
            header.pop("__metadata__", None)
            entries = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in header.items()}
            entries = {k: v for k, v in entries.items() if k not in _OPENAI_EXTRA}
            missing, unexpected = sorted(set(own) - set(entries)), sorted(set(entries) - set(own))
            if missing or unexpected:
                raise PixseqError(f"{path} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
            for k, e in entries.items():
                if tuple(e["shape"]) != tuple(own[k].shape):
                    raise PixseqError(f"{path}: tensor {k} has shape {tuple(e['shape'])}, model expects "
                                      f"{tuple(own[k].shape)}")
            with torch.no_grad():
                for k, e in entries.items():
                    _read_into(fh, 8 + n, e, own[k], path)
    except (OSError, ValueError, KeyError) as exc:
        raise PixseqError(f"corrupt weights file {path}: {exc}") from None
    return model


def _read_into(fh, base: int, entry: dict, target: torch.Tensor, path: Path) -> None:
    """One safetensors entry read into ``target`` (converted when the dtypes differ)."""
    dtype = _ST_DTYPES.get(entry["dtype"])
    if dtype is None:
        raise PixseqError(f"{path}: unsupported tensor dtype {entry['dtype']}")
    start, end = entry["data_offsets"]
    fh.seek(base + start)
    if dtype == target.dtype and target.is_contiguous() and target.device.type == "cpu":
        buf = target.reshape(-1).view(torch.uint8)  # (nbytes,) view of the parameter itself
        if fh.readinto(memoryview(buf.numpy())) != end - start:
            raise PixseqError(f"{path} is truncated")
        return
    data = bytearray(fh.read(end - start))
    target.copy_(torch.frombuffer(data, dtype=dtype).reshape(target.shape))


def load_clip_weights(model: CLIP, state: dict[str, torch.Tensor], source: str) -> CLIP:
    """Load ``state`` strictly (every key, every shape) into ``model``."""
    from pixseq.checkpoint import load_state_strict

    own = model.state_dict()
    state = {k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}
    load_state_strict(model, state, source)
    return model


def tiny_clip_config(embed_dim: int = 32, image_size: int = 32, width: int = 64, layers: int = 2,
                     context_length: int = 16) -> CLIPConfig:
    """A tiny CLIP in open_clip's layout (a 2-layer ViT and a 2-layer text transformer with
    open_clip's full 49408-token vocabulary) for tests and quick runs: random weights."""
    return CLIPConfig(embed_dim=embed_dim,
                      vision={"image_size": image_size, "patch_size": 8, "width": width, "layers": layers,
                              "head_width": 32},
                      text={"context_length": context_length, "vocab_size": 49408, "width": width,
                            "heads": max(1, width // 32), "layers": layers},
                      name="tiny")


def random_clip(config: CLIPConfig | str, seed: int = 0) -> CLIP:
    """A CLIP with random weights (seeded) from a config or an architecture name."""
    cfg = architecture_config(config) if isinstance(config, str) else config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIP(cfg)


# ------------------------------------------------------------------ --clip NAME|DIR
def _hub_folder(path: Path) -> CLIP:
    """A downloaded open_clip hub repository: ``open_clip_config.json`` + weights."""
    doc = json.loads((path / "open_clip_config.json").read_text())
    cfg, pre = doc.get("model_cfg", {}), doc.get("preprocess_cfg", {})
    try:
        config = CLIPConfig(cfg["embed_dim"], dict(cfg["vision_cfg"]), dict(cfg["text_cfg"]),
                            bool(cfg.get("quick_gelu")), tuple(pre.get("mean", OPENAI_MEAN)),
                            tuple(pre.get("std", OPENAI_STD)), name=path.name)
    except (KeyError, TypeError, ValueError) as exc:
        raise PixseqError(f"{path / 'open_clip_config.json'} is not an open_clip model config ({exc})") from None
    for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
        if (path / name).is_file():
            return load_clip_file(CLIP(config), path / name)
    raise PixseqError(f"{path} has open_clip_config.json but no open_clip_model.safetensors")


def load_guide(spec: str | os.PathLike, weights: str | os.PathLike | None = None,
               weights_dir: str | os.PathLike | None = None, offline: bool | None = None,
               device: str | torch.device = "cpu") -> Guide:
    """The guide ``--clip`` names (see the module docstring), frozen, in eval mode, on ``device``.

    ``weights``: an explicit CLIP weight file for an architecture name (``--clip-weights``)."""
    from pixseq.checkpoint import ZOO_PREFIX, load_model
    from pixseq.weights import resolve_weights

    text = os.fspath(spec).strip()
    if not text:
        raise PixseqError("--clip is empty: give an open_clip architecture (e.g. ViT-B-32), or a model folder")
    path = Path(text)
    if path.is_dir():
        if weights is not None:
            raise PixseqError("--clip-weights goes with an architecture name, not a model folder")
        if (path / "open_clip_config.json").is_file() and not (path / "config.json").is_file():
            guide = _hub_folder(path)
        else:
            guide = load_model(path, kind=("clip", "lit"), device="cpu")
    elif text.startswith(ZOO_PREFIX):  # before the ARCH:TAG form, which "zoo:lit-fm" would also fit
        if weights is not None:
            raise PixseqError("--clip-weights goes with an architecture name, not a zoo model")
        guide = load_model(text, kind=("clip", "lit"), device="cpu")
    elif text.startswith(RANDOM_PREFIX):
        guide = random_clip(text[len(RANDOM_PREFIX):])
        notice(f"CLIP {text[len(RANDOM_PREFIX):]} with RANDOM weights: its judgements mean nothing (for timing)")
    elif path.suffix in (".safetensors", ".pt", ".pth", ".bin", ".ckpt") or os.sep in text:
        raise PixseqError(f"--clip {text}: not a model folder; for a weight file give the architecture too "
                          f"(--clip ViT-B-32 --clip-weights {text})")
    else:
        config = architecture_config(text if ":" in text else f"{text}:{DEFAULT_TAG}")
        file = resolve_weights(weight_file(text), weights, weights_dir, offline)  # before building: seconds
        model = CLIP(config)
        guide = load_clip_file(model, file)
    return guide.frozen().to(device)
