"""Hugging Face ``ImageGPT`` checkpoints (``openai/imagegpt-small|medium|large``) -> :class:`IGPT`.

Facts about the format (from ``transformers``' ``modeling_imagegpt.py`` / the iGPT release):

* ``config.json``: ``vocab_size`` = palette size + 1 (the last id is the start-of-sequence
  token), ``n_positions`` = pixels (1024 for 32x32), ``n_embd``, ``n_layer``, ``n_head``,
  ``n_inner`` (None: 4 * n_embd), ``activation_function`` (``quick_gelu``),
  ``layer_norm_epsilon``.
* Weights (``model.safetensors`` or the pickle ``pytorch_model.bin``, or shards of either
  listed by ``<file>.index.json``'s ``weight_map``, as ``save_pretrained`` writes big models), keys under
  ``transformer.``: ``wte`` (vocab+1, C), ``wpe`` (n_positions, C), per block ``ln_1/ln_2``
  (weight only: the norm divides by the root-mean-square without centring — pixseq's
  ``rmsnorm``), ``attn.c_attn``, ``attn.c_proj``, ``mlp.c_fc``, ``mlp.c_proj`` stored as
  ``Conv1D`` i.e. ``(in, out)`` — the transpose of ``nn.Linear`` — plus ``ln_f`` and an
  untied ``lm_head`` (vocab, C) without bias.
* The sequence starts with the SOS token at position 0, then pixel ``i`` at position
  ``i + 1``: exactly pixseq's layout with ``sos = wte[SOS]`` and no conditioning.
* ``preprocessor_config.json``: ``clusters`` (palette, K x 3) in [-1, 1]; a pixel decodes
  to ``rint(127.5 * (c + 1))``, so pixseq's [0, 1] palette is ``(c + 1) / 2``.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixseq.checkpoint import load_state_strict, load_tensors
from pixseq.errors import PixseqError
from pixseq.models.igpt import IGPT, IGPTConfig
from pixseq.priors.gpt import GPTConfig

_ACTIVATIONS = {"quick_gelu": "quick_gelu", "gelu": "gelu", "gelu_new": "gelu_tanh",
                "gelu_pytorch_tanh": "gelu_tanh"}

#: HF key (after stripping ``transformer.``) -> (pixseq GPT key, transpose Conv1D?)
_BLOCK_MAP = {
    "ln_1.weight": ("ln_1.weight", False),
    "attn.c_attn.weight": ("attn.c_attn.weight", True),
    "attn.c_attn.bias": ("attn.c_attn.bias", False),
    "attn.c_proj.weight": ("attn.c_proj.weight", True),
    "attn.c_proj.bias": ("attn.c_proj.bias", False),
    "ln_2.weight": ("ln_2.weight", False),
    "mlp.c_fc.weight": ("mlp.c_fc.weight", True),
    "mlp.c_fc.bias": ("mlp.c_fc.bias", False),
    "mlp.c_proj.weight": ("mlp.c_proj.weight", True),
    "mlp.c_proj.bias": ("mlp.c_proj.bias", False),
}
_TOP_MAP = {"wpe.weight": "wpe.weight", "ln_f.weight": "ln_f.weight", "lm_head.weight": "lm_head.weight"}
#: Buffers older checkpoints carry (causal masks); they hold no learned values.
_IGNORED = re.compile(r"^h\.\d+\.attn\.(bias|masked_bias)$")


def gpt_config_from_hf(hf: dict[str, Any], image_size: int | None = None) -> tuple[GPTConfig, int]:
    """The :class:`GPTConfig` (and square image side) equivalent to an HF ImageGPT config dict."""
    for key, want in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                      ("add_cross_attention", False)):
        if hf.get(key, want) != want:
            raise PixseqError(f"unsupported ImageGPT config: {key}={hf[key]!r} (pixseq needs {want})")
    act = hf.get("activation_function", "quick_gelu")
    if not isinstance(act, str) or act not in _ACTIVATIONS:
        raise PixseqError(f"unsupported ImageGPT activation {act!r} (known: {', '.join(_ACTIVATIONS)})")
    try:
        C, n_pos = int(hf["n_embd"]), int(hf["n_positions"])
        n_layer, n_head, vocab = int(hf["n_layer"]), int(hf["n_head"]), int(hf["vocab_size"]) - 1
        inner = int(hf.get("n_inner") or 4 * C)
        eps = float(hf.get("layer_norm_epsilon", 1e-5))
    except (KeyError, TypeError, ValueError) as exc:
        raise PixseqError(f"ImageGPT config.json lacks or mistypes {exc}") from None
    if inner % C:
        raise PixseqError(f"ImageGPT n_inner={inner} is not a multiple of n_embd={C}")
    side = image_side(n_pos, image_size)
    try:
        cfg = GPTConfig(vocab_size=vocab, block_size=side * side, n_layer=n_layer, n_head=n_head, n_embd=C,
                        dropout=0.0, bias=True, norm="rmsnorm", activation=_ACTIVATIONS[act],
                        mlp_ratio=inner // C, norm_eps=eps,
                        tie_weights=False)
    except ValueError as exc:  # e.g. n_embd not divisible by n_head: a checkpoint pixseq cannot rebuild
        raise PixseqError(f"unsupported ImageGPT config: {exc}") from None
    return cfg, side


def image_side(n_positions: int, image_size: int | None = None) -> int:
    """The square image side of a checkpoint with ``n_positions`` positions.

    iGPT images are square rasters of exactly ``n_positions`` pixels: position ``i + 1``
    holds pixel ``i`` of a row ``side`` pixels wide. A smaller side would reuse the first
    ``side * side`` position embeddings with another row width (pixel (1, 0) would get the
    embedding trained for pixel (0, side)), so ``image_size`` must be that side exactly.
    """
    side = math.isqrt(max(n_positions, 0))
    if image_size is not None:
        if isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral) or image_size < 1:
            raise PixseqError(f"image size must be a positive integer, got {image_size!r}")
        if image_size * image_size != n_positions:
            hint = f"use {side} or leave it out" if side * side == n_positions else "it has no square image size"
            raise PixseqError(f"image size {image_size} ({image_size}x{image_size} = {image_size * image_size} "
                              f"pixels) does not match the checkpoint's {n_positions} positions: iGPT images are "
                              f"square rasters of exactly n_positions pixels ({hint})")
        return int(image_size)
    if side * side != n_positions:
        raise PixseqError(f"the checkpoint has {n_positions} positions, not a square number: iGPT images are "
                          f"square rasters of exactly n_positions pixels, so it has no image size pixseq can use")
    return side


def load_hf_imagegpt_state(hf_state: dict[str, torch.Tensor], cfg: GPTConfig) -> dict[str, torch.Tensor]:
    """Map an HF ImageGPT state dict to pixseq :class:`~pixseq.priors.gpt.GPT` keys.

    Every HF tensor must be used (except causal-mask buffers) and land with the shape the
    GPT expects; anything else is a :class:`PixseqError` naming the key.
    """
    src = {k.removeprefix("transformer."): v for k, v in hf_state.items()}
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in src:
            raise PixseqError(f"ImageGPT checkpoint lacks tensor {key!r}")
        used.add(key)
        return src[key].float()

    wte = take("wte.weight")  # (vocab + 1, C): the last row is the SOS token
    out["wte.weight"], out["sos"] = wte[:-1], wte[-1]
    for hf_key, key in _TOP_MAP.items():
        out[key] = take(hf_key)
    for i in range(cfg.n_layer):
        for hf_key, (key, transpose) in _BLOCK_MAP.items():
            t = take(f"h.{i}.{hf_key}")
            out[f"h.{i}.{key}"] = t.T.contiguous() if transpose else t  # Conv1D (in, out) -> Linear (out, in)
    extra = sorted(k for k in set(src) - used if not _IGNORED.match(k))
    if extra:
        raise PixseqError(f"ImageGPT checkpoint has tensors pixseq does not map: {extra[:5]}")
    return out


def _read_config(src: Path) -> dict[str, Any]:
    """The config dict of an HF model directory (read before the weights: it is checked first)."""
    if not (src / "config.json").is_file():
        raise PixseqError(f"not a Hugging Face model directory (no config.json): {src}")
    try:
        hf = json.loads((src / "config.json").read_text(encoding="utf-8"))
    except ValueError as exc:
        raise PixseqError(f"corrupt {src / 'config.json'}: {exc}") from None
    if not isinstance(hf, dict):  # e.g. a list: hf.get below was an AttributeError
        raise PixseqError(f"corrupt {src / 'config.json'}: not a JSON object")
    if hf.get("model_type", "imagegpt") != "imagegpt":
        raise PixseqError(f"{src} holds a model of type {hf.get('model_type')!r}, not ImageGPT")
    return hf


#: HF's single-file weight names, in the order transformers prefers them; a checkpoint saved
#: in shards has ``<name>.index.json`` instead, whose ``weight_map`` names each key's shard.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _weight_files(src: Path) -> list[Path]:
    """The file(s) holding ``src``'s weights: the single file, or every shard of its index."""
    for name in WEIGHT_FILES:
        if (src / name).is_file():
            return [src / name]
        index = src / f"{name}.index.json"
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise PixseqError(f"{index} is not a weight index (no readable weight_map: {exc})") from None
            if not shards or any(not isinstance(f, str) or Path(f).name != f for f in shards):
                raise PixseqError(f"{index}: its weight_map must name shard files inside {src}")
            missing = [f for f in shards if not (src / f).is_file()]
            if missing:
                raise PixseqError(f"{index} names {len(missing)} missing shard(s), e.g. {missing[0]}")
            return [src / f for f in shards]
    raise PixseqError(f"{src} has no weights: neither {' nor '.join(WEIGHT_FILES)}, nor a sharded "
                      f"{WEIGHT_FILES[0]}.index.json / {WEIGHT_FILES[1]}.index.json")


def _read_clusters(src: Path) -> np.ndarray | None:
    """The palette (``clusters``) of an HF model directory's image-processor config, or None."""
    for name in ("preprocessor_config.json", "image_processor_config.json"):
        path = src / name
        if path.is_file():
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise PixseqError(f"corrupt {path}: {exc}") from None
            if not isinstance(doc, dict) or "clusters" not in doc:
                return None
            try:
                return np.asarray(doc["clusters"], dtype=np.float64)
            except (TypeError, ValueError):  # strings, ragged rows: numpy's own error was a traceback
                raise PixseqError(f"{path}: 'clusters' is not a K x 3 table of numbers") from None
    return None


def _read_weights(src: Path) -> tuple[dict[str, torch.Tensor], np.ndarray | None]:
    """State dict (merged over shards) and clusters (or None) from an HF model directory."""
    clusters = _read_clusters(src)  # first: a broken palette file is refused before GBs of weights load
    state: dict[str, torch.Tensor] = {}
    for path in _weight_files(src):
        state.update(load_tensors(path))
    return state, clusters


def convert_hf_imagegpt(src: str | os.PathLike | torch.nn.Module, image_size: int | None = None,
                        clusters: np.ndarray | None = None) -> IGPT:
    """Build an :class:`IGPT` from an HF ImageGPT directory (or an in-memory HF model).

    ``clusters`` (K x 3 in [-1, 1]) overrides / supplies the palette; a directory's
    ``preprocessor_config.json`` provides it otherwise. ``image_size`` is
    ``sqrt(n_positions)``; when given, it must be exactly that (see :func:`image_side`).
    """
    in_memory = isinstance(src, torch.nn.Module)
    hf = src.config.to_dict() if in_memory else _read_config(Path(src))
    # Everything the config alone decides is checked before the weights load (GBs for
    # imagegpt-large): the image side, and whether pixseq can build such an iGPT at all.
    cfg, side = gpt_config_from_hf(hf, image_size)
    try:
        igpt_config = IGPTConfig(palette_size=cfg.vocab_size, image_size=side, gpt=cfg)
    except ValueError as exc:  # e.g. a 1-colour palette or an image side over 256: one line, no traceback
        raise PixseqError(f"cannot build an iGPT from this ImageGPT checkpoint: {exc}") from None
    state, found = (src.state_dict(), None) if in_memory else _read_weights(Path(src))
    clusters = found if clusters is None else np.asarray(clusters, dtype=np.float64)
    if clusters is None:
        raise PixseqError("no colour palette: the ImageGPT directory has no preprocessor_config.json "
                          "with 'clusters' (download it with the model)")
    if clusters.shape != (cfg.vocab_size, 3):
        raise PixseqError(f"palette has shape {clusters.shape}, the model needs ({cfg.vocab_size}, 3)")
    if not np.isfinite(clusters).all():  # a NaN colour makes every nearest-colour search come out wrong
        raise PixseqError("the palette (clusters) holds non-finite values")
    model = IGPT(igpt_config)
    load_state_strict(model.prior, load_hf_imagegpt_state(state, model.prior.config), source="ImageGPT checkpoint")
    model.tokenizer.set_palette(torch.from_numpy((clusters + 1.0) / 2.0).float())
    return model.eval()
