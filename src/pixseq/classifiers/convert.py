"""timm and Hugging Face ViT checkpoints -> pixseq :class:`~pixseq.classifiers.vit.ViT`.

Explicit key maps, strict shapes: every key of the foreign state dict is either mapped to
exactly one pixseq key or the conversion fails naming it (a LayerScale, register tokens, a
query/key norm ... are features this ViT does not have, and dropping them silently would
give another network). The architecture is read from the tensors' shapes (width, depth,
patch, positions, MLP ratio, classes); the number of heads is not in the weights, so it
comes from the checkpoint's config (Hugging Face), the timm model name, an explicit
``heads``, or the ViT rule ``dim / 64`` (ViT-Ti/S/B/L all use 64-wide heads).

Layouts (``{i}``: block index):

* timm ``VisionTransformer``: ``cls_token``, ``pos_embed``, ``patch_embed.proj``,
  ``blocks.{i}.norm1 / attn.qkv / attn.proj / norm2 / mlp.fc1 / mlp.fc2``, ``norm`` (class
  token pooling) or ``fc_norm`` (average pooling), ``head``;
* Hugging Face ``ViTForImageClassification`` as stored on the hub: ``vit.embeddings.cls_token /
  position_embeddings / patch_embeddings.projection``, ``vit.encoder.layer.{i}.
  layernorm_before / attention.attention.query|key|value / attention.output.dense /
  layernorm_after / intermediate.dense / output.dense``, ``vit.layernorm``, ``classifier``
  (also the in-memory names of transformers >= 5: ``vit.layers.{i}.attention.q_proj|k_proj|
  v_proj|o_proj``, ``mlp.fc1|fc2``); separate q, k, v are concatenated into the fused
  ``c_attn`` (same row order as timm's ``qkv``).

Names (:func:`resolve_init`): a timm model name with a pretrained tag (``vit_tiny_patch16_224.
augreg_in21k_ft_in1k``) or ``hf:<repo>`` resolve their files through :mod:`pixseq.weights`
(explicit path > weights dir > cache > download > a clear error naming the file).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from pixseq.classifiers.vit import ViT, ViTConfig
from pixseq.errors import PixseqError

_TIMM_BLOCK = {"norm1": "ln_1", "attn.qkv": "attn.c_attn", "attn.proj": "attn.c_proj", "norm2": "ln_2",
               "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
_TIMM_TOP = {"cls_token": "cls_token", "pos_embed": "pos_embed", "patch_embed.proj.weight": "patch_embed.proj.weight",
             "patch_embed.proj.bias": "patch_embed.proj.bias", "head.weight": "head.weight", "head.bias": "head.bias"}
#: Hugging Face block keys (hub layout, then transformers >= 5 in memory) -> timm block keys
_HF_BLOCK = {"layernorm_before": "norm1", "attention.output.dense": "attn.proj", "layernorm_after": "norm2",
             "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
             "attention.o_proj": "attn.proj", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
_HF_QKV = (("attention.attention.query", "attention.attention.key", "attention.attention.value"),
           ("attention.q_proj", "attention.k_proj", "attention.v_proj"))
_HF_TOP = {"vit.embeddings.cls_token": "cls_token", "vit.embeddings.position_embeddings": "pos_embed",
           "vit.embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
           "vit.embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
           "vit.layernorm.weight": "norm.weight", "vit.layernorm.bias": "norm.bias",
           "classifier.weight": "head.weight", "classifier.bias": "head.bias"}


@dataclass
class Converted:
    """A foreign checkpoint as pixseq weights: the config read from it, the state dict (without
    ``head.*`` when the checkpoint has no classification head) and where it came from."""

    config: ViTConfig
    state: dict[str, torch.Tensor]
    source: str
    has_head: bool = True

    def model(self) -> ViT:
        """The converted :class:`ViT`, its weights loaded strictly (the checkpoint needs a head)."""
        from pixseq.checkpoint import load_state_strict

        if not self.has_head:
            raise PixseqError(f"{self.source} has no classification head: fine-tune it with `pixseq train vit "
                              f"--init` (a new head for your classes) instead of converting it")
        model = ViT(self.config)
        load_state_strict(model, self.state, source=self.source)
        return model.eval()


# ---------------------------------------------------------------------------- timm
def _block_count(state: dict[str, torch.Tensor], prefix: str) -> int:
    ids = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    if ids != set(range(len(ids))):
        raise PixseqError(f"blocks {sorted(ids)} are not numbered 0..{len(ids) - 1}")
    return len(ids)


def _heads(dim: int, heads: int | None, source: str) -> int:
    if heads is None:
        if dim % 64:
            raise PixseqError(f"{source}: the number of attention heads is not in the weights and width {dim} is not "
                              f"a multiple of 64 (the ViT rule): give it (--heads)")
        heads = dim // 64
    if heads < 1 or dim % heads:
        raise PixseqError(f"{source}: {heads} heads do not divide the width {dim}")
    return heads


def timm_vit_state(state: dict[str, torch.Tensor], source: str = "checkpoint", heads: int | None = None,
                   **config: Any) -> Converted:
    """A timm ``VisionTransformer`` state dict -> :class:`Converted` (config from the shapes;
    ``config``: other :class:`ViTConfig` fields, e.g. ``mean``, ``std``, ``class_names``)."""
    state = {k: v for k, v in state.items()}
    if "patch_embed.proj.weight" not in state or "pos_embed" not in state:
        raise PixseqError(f"{source} is not a timm VisionTransformer state dict (no patch_embed.proj.weight / "
                          f"pos_embed)")
    depth = _block_count(state, "blocks.")
    out, used = {}, set()
    for src, dst in _TIMM_TOP.items():
        if src in state:
            out[dst], _ = state[src], used.add(src)
    for i in range(depth):
        for a, b in _TIMM_BLOCK.items():
            for kind in ("weight", "bias"):
                key = f"blocks.{i}.{a}.{kind}"
                if key not in state:
                    raise PixseqError(f"{source}: missing {key}")
                out[f"blocks.{i}.{b}.{kind}"], _ = state[key], used.add(key)
    norms = [n for n in ("norm", "fc_norm") if f"{n}.weight" in state]
    if len(norms) != 1:
        raise PixseqError(f"{source}: expected one final norm ('norm' for class-token pooling or 'fc_norm' for "
                          f"average pooling), found {norms or 'none'}")
    for kind in ("weight", "bias"):
        out[f"ln_f.{kind}"], _ = state[f"{norms[0]}.{kind}"], used.add(f"{norms[0]}.{kind}")
    left = sorted(set(state) - used)
    if left:
        raise PixseqError(f"{source} holds parts this ViT does not have (e.g. LayerScale, register tokens, q/k "
                          f"norms): {', '.join(left[:6])}{' ...' if len(left) > 6 else ''}")
    pool = "cls" if "cls_token" in state else "mean"
    if (pool == "cls") != (norms[0] == "norm"):
        raise PixseqError(f"{source}: {'a class token with average pooling' if pool == 'cls' else 'no class token'}"
                          f" and '{norms[0]}' is a pooling this ViT does not have")
    return Converted(_shape_config(out, depth, pool, heads, source, config), out, source, "head.weight" in out)


def _shape_config(state: dict[str, torch.Tensor], depth: int, pool: str, heads: int | None, source: str,
                  extra: dict[str, Any]) -> ViTConfig:
    """The :class:`ViTConfig` the tensors of a pixseq-keyed ``state`` imply."""
    w = state["patch_embed.proj.weight"]  # (dim, 3, p, p)
    if w.dim() != 4 or w.shape[1] != 3 or w.shape[2] != w.shape[3]:
        raise PixseqError(f"{source}: the patch embedding has shape {tuple(w.shape)}; this ViT takes RGB images in "
                          f"square patches")
    dim, patch = int(w.shape[0]), int(w.shape[2])
    positions = state["pos_embed"].shape[1] - (pool == "cls")
    grid = math.isqrt(positions)
    if grid * grid != positions:
        raise PixseqError(f"{source}: {positions} position embeddings are not a square grid")
    hidden = state["blocks.0.mlp.c_fc.weight"].shape[0] if depth else 4 * dim
    if hidden % dim:
        raise PixseqError(f"{source}: MLP width {hidden} is not a whole multiple of the width {dim}")
    fields = dict(image_size=grid * patch, patch_size=patch, dim=dim, depth=depth, heads=_heads(dim, heads, source),
                  mlp_ratio=hidden // dim, pool=pool, num_classes=int(state["head.weight"].shape[0])
                  if "head.weight" in state else 1, norm_eps=1e-6, interpolation="bicubic")
    fields.update(extra)
    try:
        return ViTConfig(**fields)
    except (TypeError, ValueError) as exc:
        raise PixseqError(f"{source}: {exc}") from None


# ---------------------------------------------------------------------------- Hugging Face
def hf_vit_state(state: dict[str, torch.Tensor], hf_config: dict[str, Any], source: str = "checkpoint",
                 **config: Any) -> Converted:
    """A Hugging Face ``ViTForImageClassification`` (or ``ViTModel``) state dict and its
    ``config.json`` as a dict -> :class:`Converted`."""
    _check_hf_config(hf_config, source)
    state = {("vit." + k if k.startswith(("embeddings.", "encoder.", "layernorm.", "layers.")) else k): v
             for k, v in state.items() if not k.startswith(("vit.pooler.", "pooler."))}  # ViTModel's pooler is unused
    timm, used = {}, set()
    for src, dst in _HF_TOP.items():
        if src in state:
            timm[dst], _ = state[src], used.add(src)
    prefix = "vit.encoder.layer." if any(k.startswith("vit.encoder.layer.") for k in state) else "vit.layers."
    depth = _block_count(state, prefix)
    for i in range(depth):
        p = f"{prefix}{i}."
        names = next((q for q in _HF_QKV if f"{p}{q[0]}.weight" in state), None)
        if names is None:
            raise PixseqError(f"{source}: block {i} has no query/key/value projections")
        for kind in ("weight", "bias"):
            parts = [f"{p}{n}.{kind}" for n in names]
            missing = [k for k in parts if k not in state]
            if missing:
                raise PixseqError(f"{source}: missing {missing[0]} (a ViT without qkv biases is not supported)")
            timm[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat([state[k] for k in parts])  # (3C, ...) q | k | v
            used.update(parts)
            for a, b in _HF_BLOCK.items():
                if f"{p}{a}.{kind}" in state:
                    timm[f"blocks.{i}.{b}.{kind}"], _ = state[f"{p}{a}.{kind}"], used.add(f"{p}{a}.{kind}")
    left = sorted(set(state) - used)
    if left:
        raise PixseqError(f"{source} holds parts this ViT does not have: {', '.join(left[:6])}"
                          f"{' ...' if len(left) > 6 else ''}")
    names = _hf_class_names(hf_config, timm)
    extra = {"norm_eps": float(hf_config.get("layer_norm_eps", 1e-12)), "interpolation": "bilinear",
             **({"class_names": names} if names else {}), **config}
    return timm_vit_state(timm, source, heads=int(hf_config["num_attention_heads"]), **extra)


def _check_hf_config(cfg: dict[str, Any], source: str) -> None:
    if cfg.get("model_type", "vit") != "vit":
        raise PixseqError(f"{source} is a Hugging Face {cfg.get('model_type')!r} model, not a ViT ('vit')")
    if cfg.get("hidden_act", "gelu") != "gelu":
        raise PixseqError(f"{source}: activation {cfg.get('hidden_act')!r} (this ViT uses exact GELU)")
    if int(cfg.get("num_channels", 3)) != 3 or not cfg.get("qkv_bias", True):
        raise PixseqError(f"{source}: only 3-channel ViTs with qkv biases are supported")
    if "num_attention_heads" not in cfg:
        raise PixseqError(f"{source}: config.json has no num_attention_heads")


def _hf_class_names(cfg: dict[str, Any], state: dict[str, torch.Tensor]) -> tuple[str, ...]:
    """``id2label`` in head order, when it names every class (transformers' default ``LABEL_i``
    names are no names)."""
    labels = cfg.get("id2label") or {}
    k = int(state["head.weight"].shape[0]) if "head.weight" in state else 0
    names = tuple(str(labels.get(str(i), labels.get(i, ""))) for i in range(k))
    if not k or not all(names) or all(n == f"LABEL_{i}" for i, n in enumerate(names)):
        return ()
    return names


def imagenet_class_names(num_classes: int) -> tuple[str, ...]:
    """ImageNet-1k class names (torchvision's list, no download) for a 1000-class head, else ()."""
    if num_classes != 1000:
        return ()
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


# ---------------------------------------------------------------------------- files and names
def load_timm_file(path: str | Path, heads: int | None = None, **config: Any) -> Converted:
    """A timm checkpoint file (``.safetensors``, or a ``.pth``/``.bin`` read with ``weights_only=True``)."""
    from pixseq.checkpoint import load_tensors

    state = load_tensors(path)
    state = state.get("state_dict", state.get("model", state)) if isinstance(state, dict) else state
    converted = timm_vit_state(state, str(path), heads, **config)
    if not converted.config.class_names:
        converted.config = replace(converted.config, class_names=imagenet_class_names(converted.config.num_classes))
    return converted


def load_hf_folder(folder: str | Path, **config: Any) -> Converted:
    """A Hugging Face ViT folder: ``config.json`` + ``model.safetensors`` (or ``pytorch_model.bin``),
    with ``preprocessor_config.json``'s mean / std when present."""
    from pixseq.checkpoint import load_tensors

    folder = Path(folder)
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        raise PixseqError(f"{folder} is not a Hugging Face model folder (no config.json)")
    weights = next((folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()), None)
    if weights is None:
        raise PixseqError(f"{folder} has no model.safetensors or pytorch_model.bin")
    try:
        hf_config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise PixseqError(f"corrupt {cfg_file}: {exc}") from None
    pre = folder / "preprocessor_config.json"
    if pre.is_file() and "mean" not in config:
        pp = json.loads(pre.read_text(encoding="utf-8"))
        config = {"mean": tuple(pp.get("image_mean", (0.5,) * 3)), "std": tuple(pp.get("image_std", (0.5,) * 3)),
                  **config}
    return hf_vit_state(load_tensors(weights), hf_config, str(folder), **config)


def load_timm_name(name: str, weights_dir=None, offline: bool | None = None, heads: int | None = None) -> Converted:
    """A timm pretrained model by name (``arch.tag``): its weights through :mod:`pixseq.weights`,
    heads and preprocessing from timm's own config for it."""
    import timm
    from timm.models import get_pretrained_cfg, is_model

    from pixseq.weights import WeightFile, resolve_weights, timm_weight_file

    arch = name.split(".")[0]
    cfg = get_pretrained_cfg(name) if is_model(arch) else None
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise PixseqError(f"unknown weights {name!r}: give a file, a Hugging Face folder, hf:<repo>, a pixseq ViT "
                          f"model directory or a timm ViT name with pretrained weights (e.g. "
                          f"vit_tiny_patch16_224.augreg_in21k_ft_in1k)")
    with torch.device("meta"):  # the architecture's settings without allocating its weights
        net = timm.create_model(name, pretrained=False)
    if not hasattr(net, "blocks") or not hasattr(net.blocks[0], "attn"):
        raise PixseqError(f"{name} is not a ViT (timm {type(net).__name__})")
    spec = timm_weight_file(cfg.hf_hub_id) if cfg.hf_hub_id else WeightFile(cfg.url.rsplit("/", 1)[-1], cfg.url)
    path = resolve_weights(spec, weights_dir=weights_dir, offline=offline)
    return load_timm_file(path, heads or net.blocks[0].attn.num_heads, mean=tuple(cfg.mean), std=tuple(cfg.std),
                          interpolation="bicubic" if cfg.interpolation == "bicubic" else "bilinear")


def load_hf_name(repo: str, weights_dir=None, offline: bool | None = None) -> Converted:
    """``hf:<repo>``: ``config.json``, ``preprocessor_config.json`` and ``model.safetensors``
    through :mod:`pixseq.weights`, then :func:`load_hf_folder`."""
    from pixseq.weights import hf_weight_file, resolve_weights

    files = [resolve_weights(hf_weight_file(repo, f), weights_dir=weights_dir, offline=offline)
             for f in ("config.json", "preprocessor_config.json", "model.safetensors")]
    return load_hf_folder(files[0].parent)


def resolve_init(spec: str, weights_dir=None, offline: bool | None = None, heads: int | None = None) -> Converted:
    """What ``--init`` names: a pixseq ViT model directory, a Hugging Face folder, a timm
    checkpoint file, ``hf:<repo>``, or a timm model name (resolved by :mod:`pixseq.weights`)."""
    from pixseq.checkpoint import load_model

    path = Path(spec).expanduser()
    if path.is_dir():
        if _is_pixseq_model(path):
            model = load_model(path, "vit")
            return Converted(model.config, model.state_dict(), str(path))
        return load_hf_folder(path)
    if path.is_file():
        return load_timm_file(path, heads)
    if spec.startswith("hf:"):
        return load_hf_name(spec[3:], weights_dir, offline)
    if "/" in spec or path.suffix in (".safetensors", ".pth", ".pt", ".bin"):
        raise PixseqError(f"--init {spec}: no such file or folder")
    return load_timm_name(spec, weights_dir, offline, heads)


def _is_pixseq_model(folder: Path) -> bool:
    """Whether ``folder`` holds a pixseq model (its config.json names a kind), not a Hugging Face one."""
    try:
        doc = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(doc, dict) and "kind" in doc and "config" in doc
