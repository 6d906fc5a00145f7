"""Official taming-transformers VQGAN checkpoints (``.ckpt``) -> pixseq :class:`VQGAN`.

Facts about the format (CompVis/taming-transformers: ``taming/models/vqgan.py``,
``taming/modules/diffusionmodules/model.py``, ``taming/modules/vqvae/quantize.py``,
``configs/*_vqgan.yaml``):

* A PyTorch-Lightning checkpoint: ``{"state_dict": {...}, ...}``; the weights of
  ``VQModel`` sit under ``encoder.``, ``decoder.``, ``quantize.embedding.weight`` (n_embed x
  embed_dim), ``quant_conv.`` and ``post_quant_conv.`` (1x1 convs between z_channels and
  embed_dim). ``loss.`` holds the LPIPS net and the discriminator (training only: dropped).
* Encoder: ``conv_in``; ``down.{i}.block.{j}`` ResnetBlocks (``norm1, conv1, norm2, conv2``
  and ``nin_shortcut`` when channels change), ``down.{i}.attn.{j}`` AttnBlocks (``norm, q, k,
  v, proj_out``) at the levels whose resolution is in ``attn_resolutions``,
  ``down.{i}.downsample.conv`` (stride 2, pad right/bottom); ``mid.block_1, mid.attn_1,
  mid.block_2``; ``norm_out``, ``conv_out``. Decoder: ``conv_in``, the same ``mid``,
  ``up.{i}.block.{j}`` (num_res_blocks + 1 per level), ``up.{i}.attn.{j}``,
  ``up.{i}.upsample.conv``, with ``up`` indexed by level (0 = full resolution).
* GroupNorm(32, eps=1e-6), swish, images in [-1, 1]; e.g. the ImageNet f16 models:
  ch=128, ch_mult=(1,1,2,2,4), num_res_blocks=2, attn at 16x16, z_channels=embed_dim=256,
  n_embed 1024 or 16384.

The architecture is read from the tensor shapes; every key goes through the explicit map
below and shapes are checked against the built model (``strict=True``).
"""
from __future__ import annotations

import os
import re
from typing import Any

import torch

from pixseq.checkpoint import load_legacy_state, load_state_strict
from pixseq.errors import PixseqError
from pixseq.tokenizers.quantize import QuantizerConfig
from pixseq.tokenizers.vqgan import VQGAN, VQGANConfig

_BLOCK = r"(norm1|conv1|norm2|conv2)"
_ATTN = {"norm": "norm", "q": "q", "k": "k", "v": "v", "proj_out": "proj"}
#: (official key regex, pixseq key template); the first match wins.
KEY_MAP: list[tuple[str, str]] = [
    (r"^(encoder|decoder)\.(conv_in|norm_out|conv_out)\.(weight|bias)$", r"\1.\2.\3"),
    (r"^(encoder|decoder)\.mid\.block_([12])\." + _BLOCK + r"\.(weight|bias)$", r"\1.mid.block\2.\3.\4"),
    (r"^(encoder|decoder)\.mid\.block_([12])\.nin_shortcut\.(weight|bias)$", r"\1.mid.block\2.shortcut.\3"),
    (r"^(encoder|decoder)\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)$", "MID_ATTN"),
    (r"^encoder\.down\.(\d+)\.block\.(\d+)\." + _BLOCK + r"\.(weight|bias)$", r"encoder.levels.\1.blocks.\2.\3.\4"),
    (r"^decoder\.up\.(\d+)\.block\.(\d+)\." + _BLOCK + r"\.(weight|bias)$", r"decoder.levels.\1.blocks.\2.\3.\4"),
    (r"^encoder\.down\.(\d+)\.block\.(\d+)\.nin_shortcut\.(weight|bias)$", r"encoder.levels.\1.blocks.\2.shortcut.\3"),
    (r"^decoder\.up\.(\d+)\.block\.(\d+)\.nin_shortcut\.(weight|bias)$", r"decoder.levels.\1.blocks.\2.shortcut.\3"),
    (r"^(encoder)\.down\.(\d+)\.attn\.(\d+)\.(norm|q|k|v|proj_out)\.(weight|bias)$", "LEVEL_ATTN"),
    (r"^(decoder)\.up\.(\d+)\.attn\.(\d+)\.(norm|q|k|v|proj_out)\.(weight|bias)$", "LEVEL_ATTN"),
    (r"^encoder\.down\.(\d+)\.downsample\.conv\.(weight|bias)$", r"encoder.levels.\1.resample.conv.\2"),
    (r"^decoder\.up\.(\d+)\.upsample\.conv\.(weight|bias)$", r"decoder.levels.\1.resample.conv.\2"),
    (r"^(quant_conv|post_quant_conv)\.(weight|bias)$", r"\1.\2"),
    (r"^quantize\.embedding\.weight$", "quantizer.embedding.weight"),
]
_IGNORED = re.compile(r"^loss\.")  # LPIPS + discriminator: training-only


def map_key(key: str) -> str | None:
    """The pixseq key for an official key; ``None`` for ignored keys; error for unknown ones."""
    if _IGNORED.match(key):
        return None
    for pattern, template in KEY_MAP:
        m = re.match(pattern, key)
        if not m:
            continue
        if template == "MID_ATTN":
            return f"{m.group(1)}.mid.attn.{_ATTN[m.group(2)]}.{m.group(3)}"
        if template == "LEVEL_ATTN":
            return f"{m.group(1)}.levels.{m.group(2)}.attns.{m.group(3)}.{_ATTN[m.group(4)]}.{m.group(5)}"
        return m.expand(template)
    raise PixseqError(f"unexpected key {key!r} in the VQGAN checkpoint (not a taming-transformers VQModel?)")


def _levels(sd: dict[str, torch.Tensor], prefix: str) -> list[int]:
    return sorted({int(m.group(1)) for k in sd for m in [re.match(prefix + r"\.(\d+)\.", k)] if m})


def config_from_state(sd: dict[str, torch.Tensor]) -> VQGANConfig:
    """Infer the :class:`VQGANConfig` of an official state dict from its tensor shapes."""
    need = ("encoder.conv_in.weight", "encoder.conv_out.weight", "quant_conv.weight", "quantize.embedding.weight")
    missing = [k for k in need if k not in sd]
    if missing:
        raise PixseqError(f"not a taming-transformers VQGAN checkpoint: missing {missing[0]}")
    if any(".conv_shortcut." in k for k in sd):
        raise PixseqError("checkpoint uses 3x3 conv shortcuts (conv_shortcut), which pixseq's VQGAN does not support")
    if any(k.startswith("quantize.") and k != "quantize.embedding.weight" for k in sd):
        raise PixseqError("only the plain VectorQuantizer is supported (Gumbel/EMA quantizer checkpoints are not)")
    ch, in_ch = sd["encoder.conv_in.weight"].shape[:2]
    levels = _levels(sd, r"encoder\.down")
    firsts = [f"encoder.down.{i}.block.0.conv1.weight" for i in levels]  # each level's width comes from these
    if not levels or any(k not in sd for k in firsts):
        raise PixseqError(f"not a complete taming-transformers VQGAN checkpoint: missing "
                          f"{next((k for k in firsts if k not in sd), 'encoder.down.0.block.0.conv1.weight')}")
    mult = tuple(int(sd[f"encoder.down.{i}.block.0.conv1.weight"].shape[0]) // ch for i in levels)
    n_blocks = len(_levels(sd, r"encoder\.down\.0\.block"))
    attn = tuple(i for i in levels if f"encoder.down.{i}.attn.0.q.weight" in sd)
    dec_attn = tuple(i for i in levels if f"decoder.up.{i}.attn.0.q.weight" in sd)
    if attn != dec_attn:
        raise PixseqError(f"encoder attention levels {attn} differ from the decoder's {dec_attn}")
    z = int(sd["quant_conv.weight"].shape[1])
    if int(sd["encoder.conv_out.weight"].shape[0]) != z:
        raise PixseqError("checkpoint has double_z=True (a KL autoencoder?), not a VQGAN")
    n_embed, embed_dim = sd["quantize.embedding.weight"].shape
    q = QuantizerConfig(num_codes=int(n_embed), dim=int(embed_dim), beta=0.25, kmeans_init=False,
                        dead_restart=False)
    return VQGANConfig(in_channels=int(in_ch), ch=int(ch), ch_mult=mult, num_res_blocks=n_blocks,
                       attn_levels=attn, z_channels=z, norm_groups=32, quantizer=q)


def state_dict_of(ckpt: Any) -> dict[str, torch.Tensor]:
    """The weights of a loaded checkpoint (Lightning ``{"state_dict": ...}`` or a bare dict)."""
    sd = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise PixseqError("checkpoint holds no tensor state_dict")
    return sd


def convert_state(sd: dict[str, torch.Tensor]) -> VQGAN:
    """Build a :class:`VQGAN` from an official state dict (explicit key map, shape-checked)."""
    model = VQGAN(config_from_state(sd))
    mapped = {}
    for key, value in sd.items():
        new = map_key(key)
        if new is not None:
            mapped[new] = value.float()
    load_state_strict(model, mapped, source="taming-transformers checkpoint")
    return model.eval()


#: Modules whose objects Lightning checkpoints carry as training metadata (callback states
#: keyed by class, hyper-parameters as OmegaConf containers): never needed for the weights.
_METADATA_MODULES = ("pytorch_lightning.", "lightning.", "lightning_fabric.", "omegaconf.")


class _Inert:
    """Stand-in for a metadata class during a ``weights_only`` load: stores state, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


def load_checkpoint(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)`` of a Lightning ``.ckpt``; its Lightning/OmegaConf
    metadata objects are read as inert stand-ins (no code from the file is ever run)."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - missing/corrupt files get their error from load_legacy_state
        names = []
    stubs = [(_Inert, n) for n in names if n.startswith(_METADATA_MODULES)]
    with torch.serialization.safe_globals(stubs):
        return load_legacy_state(path)


def convert_taming(path: str | os.PathLike) -> VQGAN:
    """Load an official ``.ckpt`` safely (``torch.load(weights_only=True)``) and convert it."""
    return convert_state(state_dict_of(load_checkpoint(path)))
