"""Vision Transformer classifier, built from the same blocks as the GPT priors (:mod:`pixseq.nn`).

Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words": the image is cut into ``S``
patches of ``p x p`` pixels (a strided convolution), each patch becomes a token by a
learned linear map, a learned 1-D position embedding is added, a class token is
prepended, ``L`` pre-norm encoder blocks (LayerNorm, multi-head self-attention without a
causal mask, GELU MLP, residual connections) run over the sequence, and the class token's
output, normed, goes through a linear head. ``pool="mean"`` averages the patch tokens
instead (no class token; as timm's ``global_pool="avg"``: the average is normed).

Options that make ViTs work on small data (Lee et al. 2021, "Vision Transformer for
Small-Size Datasets"):

* ``spt``: shifted patch tokenisation. The image and four copies shifted by half a patch
  diagonally (left-up, right-up, left-down, right-down; zero fill) are stacked along the
  channels before patching, so each token also sees its neighbours' borders; the flattened
  patches are LayerNormed, then linearly embedded.
* ``lsa``: locality self-attention (learned softmax temperature, no self-attention of a
  token to itself; :class:`pixseq.nn.transformer.SelfAttention`).

Stochastic depth (``drop_path``, Huang et al. 2016) rises linearly from 0 in the first block
to ``drop_path`` in the last, as in DeiT (Touvron et al. 2021). Label smoothing,
RandAugment and mixup / CutMix are training options (:mod:`pixseq.classifiers.augment`).

The model takes images as everywhere in pixseq, ``(B, 3, H, W)`` floats in [0, 1], and
normalises them itself with its own ``mean`` / ``std`` (a converted ImageNet model keeps the
statistics its weights were trained with). Images of another size than ``image_size`` are
accepted when both sides are multiples of the patch: the position embeddings are then
interpolated (bicubic, as timm does); :meth:`ViT.prepare` resizes other sizes instead.

Size presets (the ViT / DeiT names; ``micro`` is a CPU-sized model for 28x28 data)::

    preset  dim depth heads mlp  params (224 px, patch 16, 1000 classes)
    micro    64    6     2    2    0.2 M (at 28 px, patch 4, 10 classes)
    tiny    192   12     3    4    5.7 M
    small   384   12     6    4   22.1 M
    base    768   12    12    4   86.6 M
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pixseq.errors import PixseqError
from pixseq.nn.transformer import Block, init_gpt2_
from pixseq.registry import register

VIT_PRESETS: dict[str, dict[str, int]] = {
    "micro": dict(dim=64, depth=6, heads=2, mlp_ratio=2),
    "tiny": dict(dim=192, depth=12, heads=3, mlp_ratio=4),
    "small": dict(dim=384, depth=12, heads=6, mlp_ratio=4),
    "base": dict(dim=768, depth=12, heads=12, mlp_ratio=4),
}
POOLS = ("cls", "mean")
INTERPOLATIONS = ("bilinear", "bicubic")


@dataclass
class ViTConfig:
    """Hyper-parameters of :class:`ViT`.

    Attributes:
        image_size: square side the model is trained at (a multiple of ``patch_size``).
        patch_size: side of a patch in pixels.
        num_classes: classes of the head.
        dim, depth, heads, mlp_ratio: width, blocks, attention heads, MLP width / dim.
        pool: ``"cls"`` (class token, the ViT paper) or ``"mean"`` (average of the patch tokens).
        spt, lsa: shifted patch tokenisation / locality self-attention (Lee et al. 2021).
        dropout: dropout on embeddings, attention and residual branches (training only).
        drop_path: stochastic-depth rate of the last block (0 in the first, linear between).
        norm_eps: LayerNorm epsilon (1e-6 as timm; Hugging Face ViTs use 1e-12).
        class_names: names of the classes, in head order (``()``: unnamed).
        mean, std: per-channel normalisation of [0, 1] inputs.
        interpolation: how :meth:`ViT.prepare` resizes images of another size.
    """

    image_size: int = 28
    patch_size: int = 4
    num_classes: int = 10
    dim: int = 64
    depth: int = 6
    heads: int = 2
    mlp_ratio: int = 2
    pool: str = "cls"
    spt: bool = False
    lsa: bool = False
    dropout: float = 0.0
    drop_path: float = 0.0
    norm_eps: float = 1e-6
    class_names: tuple[str, ...] = ()
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if min(self.image_size, self.patch_size, self.num_classes, self.dim, self.depth, self.heads,
               self.mlp_ratio) < 1:
            raise ValueError("image_size, patch_size, num_classes, dim, depth, heads and mlp_ratio must be >= 1")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        if self.pool not in POOLS or self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"pool must be one of {POOLS}, interpolation one of {INTERPOLATIONS}")
        if not (0.0 <= self.dropout < 1.0 and 0.0 <= self.drop_path < 1.0):
            raise ValueError(f"dropout and drop_path must be in [0, 1), got {self.dropout} and {self.drop_path}")
        if not 0.0 < self.norm_eps < 1.0:
            raise ValueError(f"norm_eps must be in (0, 1), got {self.norm_eps}")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("mean and std must be three numbers each, std > 0")
        self.class_names, self.mean, self.std = tuple(self.class_names), tuple(self.mean), tuple(self.std)

    @property
    def grid(self) -> int:
        """Patches per side at ``image_size``."""
        return self.image_size // self.patch_size


def vit_config(preset: str, **overrides) -> ViTConfig:
    """A :class:`ViTConfig` from a size preset (``micro``, ``tiny``, ``small``, ``base``) plus overrides."""
    if preset not in VIT_PRESETS:
        raise PixseqError(f"unknown ViT preset {preset!r} (known: {', '.join(VIT_PRESETS)})")
    return ViTConfig(**{**VIT_PRESETS[preset], **overrides})


def shifted_images(x: torch.Tensor, shift: int) -> torch.Tensor:
    """``x`` ``(B, C, H, W)`` and its four diagonal shifts by ``shift`` pixels (left-up,
    right-up, left-down, right-down; zero fill), stacked along the channels: ``(B, 5C, H, W)``."""
    H, W = x.shape[-2:]
    padded = F.pad(x, (shift, shift, shift, shift))  # (B, C, H + 2s, W + 2s)
    s2 = 2 * shift
    # a crop at offset (dy, dx) of the padded image is the image moved by (shift - dy, shift - dx)
    crops = [padded[..., dy:dy + H, dx:dx + W] for dy, dx in ((s2, s2), (s2, 0), (0, s2), (0, 0))]
    return torch.cat([x, *crops], dim=1)


class PatchEmbed(nn.Module):
    """Patches -> tokens ``(B, S, dim)``: a ``p x p`` stride-``p`` convolution (the ViT paper),
    or with ``spt`` the shifted patch tokenisation (patches of the image and its four shifts,
    flattened, LayerNormed, linearly embedded)."""

    def __init__(self, patch_size: int, dim: int, spt: bool = False, eps: float = 1e-6) -> None:
        super().__init__()
        self.patch_size, self.spt = patch_size, spt
        if spt:
            patch_dim = 5 * 3 * patch_size * patch_size
            self.norm = nn.LayerNorm(patch_dim, eps=eps)
            self.proj = nn.Linear(patch_dim, dim)
        else:
            self.proj = nn.Conv2d(3, dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.spt:
            return self.proj(x).flatten(2).transpose(1, 2)  # (B, dim, h, w) -> (B, h*w, dim)
        p = self.patch_size
        x = shifted_images(x, max(1, p // 2))  # (B, 15, H, W)
        B, C, H, W = x.shape
        # (B, C, h, p, w, p) -> (B, h, w, C, p, p) -> (B, h*w, C*p*p): the conv weight's order
        x = x.view(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5).reshape(B, (H // p) * (W // p), C * p * p)
        return self.proj(self.norm(x))


def resample_positions(pos: torch.Tensor, old: tuple[int, int], new: tuple[int, int]) -> torch.Tensor:
    """Grid position embeddings ``(1, old_h*old_w, C)`` resampled to ``new`` (bicubic,
    antialiased when shrinking, as timm's ``resample_abs_pos_embed``): ``(1, new_h*new_w, C)``."""
    if tuple(old) == tuple(new):
        return pos
    C = pos.size(-1)
    grid = pos.reshape(1, old[0], old[1], C).permute(0, 3, 1, 2).float()  # (1, C, h, w)
    grid = F.interpolate(grid, size=new, mode="bicubic", antialias=True, align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(1, new[0] * new[1], C).to(pos.dtype)


@register("vit", ViTConfig)
class ViT(nn.Module):
    """Vision Transformer image classifier (see the module docstring)."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = cfg = config
        C = cfg.dim
        self.patch_embed = PatchEmbed(cfg.patch_size, C, cfg.spt, cfg.norm_eps)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, C)) if cfg.pool == "cls" else None
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid ** 2 + (cfg.pool == "cls"), C))
        self.drop = nn.Dropout(cfg.dropout)
        rates = [cfg.drop_path * i / max(1, cfg.depth - 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(
            Block(C, cfg.heads, cfg.dropout, True, "layernorm", "gelu", cfg.mlp_ratio, cfg.norm_eps,
                  causal=False, drop_path=rate, locality=cfg.lsa)
            for rate in rates
        )
        self.ln_f = nn.LayerNorm(C, eps=cfg.norm_eps)
        self.head = nn.Linear(C, cfg.num_classes)
        init_gpt2_(self, cfg.depth)  # N(0, 0.02) weights, zero biases, scaled residual projections
        self.register_buffer("mean", torch.tensor(cfg.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std).view(1, 3, 1, 1), persistent=False)

    # ------------------------------------------------------------------ conveniences
    @property
    def device(self) -> torch.device:
        return self.pos_embed.device

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.config.image_size, self.config.image_size)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The class names in head order (``"0"``, ``"1"`` ... when the model has none)."""
        return self.config.class_names or tuple(str(i) for i in range(self.num_classes))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def check_images(self, images: torch.Tensor) -> None:
        """PixseqError unless ``images`` are float ``(B, 3, H, W)`` whose sides are multiples of the patch."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.size(1) != 3:
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise PixseqError(f"images must be a (B, 3, H, W) tensor in [0, 1], got {got}")
        if not images.dtype.is_floating_point:
            raise PixseqError(f"images must be float in [0, 1], got dtype {images.dtype} (uint8? divide by 255)")
        H, W = images.shape[-2:]
        p = self.config.patch_size
        if H % p or W % p:
            raise PixseqError(f"images of {W}x{H} are not whole {p}x{p} patches: resize them to the model's "
                              f"{self.config.image_size}x{self.config.image_size} first (ViT.prepare, or "
                              f"`pixseq classify`, which does it)")

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` images in [0, 1] resized (no crop; antialiased) to the model's size."""
        size = self.image_size
        if tuple(images.shape[-2:]) == size:
            return images
        x = F.interpolate(images.float(), size=size, mode=self.config.interpolation, antialias=True,
                          align_corners=False)
        return x.clamp(0, 1)

    # ------------------------------------------------------------------ passes
    def positions(self, h: int, w: int) -> torch.Tensor:
        """Position embeddings for an ``h x w`` patch grid (interpolated from the trained grid)."""
        g = self.config.grid
        if self.cls_token is None:
            return resample_positions(self.pos_embed, (g, g), (h, w))
        cls_pos, grid_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        return torch.cat([cls_pos, resample_positions(grid_pos, (g, g), (h, w))], dim=1)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Tokens entering the first block: ``(B, [1 +] h*w, dim)``."""
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        p = self.config.patch_size
        h, w = images.size(-2) // p, images.size(-1) // p
        x = self.patch_embed(x)  # (B, h*w, C)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], dim=1)  # (B, 1+h*w, C)
        return self.drop(x + self.positions(h, w))

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """The sequence ``(B, T, C)`` -> one vector per image ``(B, C)``: the class token, or
        the mean of the patch tokens."""
        return x[:, 0] if self.cls_token is not None else x.mean(1)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled, normed features ``(B, dim)`` (the head's input; "pre-logits")."""
        self.check_images(images)
        x = self.embed(images)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(self.pool(x))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] -> logits ``(B, num_classes)``."""
        return self.head(self.forward_features(images))

    @torch.no_grad()
    def layer_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Pooled features per layer for linear probes: ``depth + 1`` tensors ``(B, dim)``, the
        pooled output of each block (class token or patch mean), then the normed one."""
        self.check_images(images)
        x = self.embed(images)
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(self.pool(x))
        outs.append(self.ln_f(outs[-1]))
        return outs

    @torch.no_grad()
    def attention_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Every block's attention weights ``(B, heads, T, T)`` for ``images`` (eval-mode math)."""
        self.check_images(images)
        x = self.embed(images)
        maps = []
        for block in self.blocks:
            maps.append(block.attn.attention_probs(block.ln_1(x)))
            x = block(x)
        return maps

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Class probabilities ``(B, num_classes)`` of images in [0, 1] of any size (resized to
        the model's size when different; see :meth:`prepare`), in batches, in eval mode."""
        was = self.training
        self.eval()
        try:
            out = [self(self.prepare(images[i:i + batch_size].to(self.device)).to(self.pos_embed.dtype))
                   .float().softmax(-1) for i in range(0, len(images), batch_size)]
        finally:
            self.train(was)
        return torch.cat(out) if out else torch.zeros(0, self.num_classes)

    def flops_per_image(self, training: bool = True) -> float:
        """Matmul FLOPs of one image at ``image_size`` (x3 for a training step: forward +
        backward), ``2 N T`` for the weights plus ``4 T^2 C`` per block for attention."""
        cfg = self.config
        T = cfg.grid ** 2 + (cfg.pool == "cls")
        n = sum(p.numel() for name, p in self.blocks.named_parameters() if p.dim() == 2)
        fwd = 2.0 * n * T + 4.0 * cfg.depth * T * T * cfg.dim + 2.0 * self.head.weight.numel()
        fwd += 2.0 * sum(p.numel() for p in self.patch_embed.parameters() if p.dim() >= 2) * cfg.grid ** 2
        return fwd * (3 if training else 1)


def class_index(model: ViT, label: str | int) -> int:
    """A class id of ``model`` from a name (case-insensitive) or an index; PixseqError otherwise."""
    names = [n.lower() for n in model.config.class_names]
    if isinstance(label, str) and label.lower() in names:
        return names.index(label.lower())
    try:
        index = int(label)
    except (TypeError, ValueError):
        known = ", ".join(model.config.class_names) or f"indices 0..{model.num_classes - 1}"
        raise PixseqError(f"label {label!r} is not one of this model's classes ({known})") from None
    if not 0 <= index < model.num_classes:
        raise PixseqError(f"label {index} is out of range: this model has classes 0..{model.num_classes - 1}")
    return index


def describe(model: ViT) -> str:
    """One line: size, patches, options, parameters."""
    cfg = model.config
    opts = [name for name, on in (("SPT", cfg.spt), ("LSA", cfg.lsa)) if on]
    return (f"ViT {cfg.image_size}x{cfg.image_size}, patch {cfg.patch_size} ({cfg.grid ** 2} tokens), dim {cfg.dim}, "
            f"depth {cfg.depth}, {cfg.heads} heads, {cfg.pool} pooling{', ' + '+'.join(opts) if opts else ''}, "
            f"{cfg.num_classes} classes, {model.num_params() / 1e6:.2f} M params")


__all__ = ["ViT", "ViTConfig", "VIT_PRESETS", "vit_config", "PatchEmbed", "shifted_images", "resample_positions",
           "class_index", "describe"]
