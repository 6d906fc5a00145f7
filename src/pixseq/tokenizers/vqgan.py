"""VQGAN tokenizer: a CNN encoder, a learned codebook, and a CNN decoder.

Esser, Rombach & Ommer, "Taming Transformers for High-Resolution Image Synthesis"
(CVPR 2021). The encoder is ``len(ch_mult)`` levels of residual blocks; every level but
the last halves the resolution, so the downsampling factor is ``f = 2**(len(ch_mult)-1)``
(f = 4, 8, 16 for 3, 4, 5 levels). Self-attention runs in the middle block (lowest
resolution) and after each residual block of the levels listed in ``attn_levels``. The
decoder mirrors the encoder with ``num_res_blocks + 1`` blocks per level.

Images enter and leave as ``(B, 3, H, W)`` floats in ``[0, 1]``; internally the network
works in ``[-1, 1]`` like the official models, so converted checkpoints behave identically.
Inputs whose sides are not multiples of ``f`` are padded (reflect) to the next multiple;
:meth:`VQGAN.reconstruct` crops the result back.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from pixseq.errors import PixseqError
from pixseq.models.base import check_images, check_token_grid
from pixseq.nn.conv import AttnBlock, Downsample, ResBlock, Upsample, group_norm
from pixseq.registry import register
from pixseq.tokenizers.quantize import QuantizerConfig, VectorQuantizer

#: channel multipliers per downsampling factor (the factor is 2**(levels-1))
CH_MULT = {4: (1, 2, 2), 8: (1, 1, 2, 2), 16: (1, 1, 2, 2, 4)}


@dataclass
class VQGANConfig:
    """Architecture of the encoder/decoder and the quantizer."""

    in_channels: int = 3
    ch: int = 64
    ch_mult: tuple[int, ...] = (1, 1, 2, 2)
    num_res_blocks: int = 1
    attn_levels: tuple[int, ...] = (3,)  # levels (0 = full resolution) with attention after each block
    z_channels: int = 64
    norm_groups: int = 32
    dropout: float = 0.0
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)

    def __post_init__(self) -> None:
        if not self.ch_mult:
            raise ValueError("ch_mult must have at least one level")
        # zero or negative sizes either fail deep inside torch's layer constructors or, worse,
        # build a model with empty convolutions that "works" and outputs constants
        sizes = (self.in_channels, self.ch, self.num_res_blocks, self.z_channels, self.norm_groups, *self.ch_mult)
        if min(sizes) < 1:
            raise ValueError("in_channels, ch, ch_mult, num_res_blocks, z_channels and norm_groups must be >= 1")
        if not 0.0 <= self.dropout < 1.0:  # also NaN
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        bad = [lvl for lvl in self.attn_levels if not 0 <= lvl < len(self.ch_mult)]
        if bad:
            raise ValueError(f"attn_levels {bad} outside 0..{len(self.ch_mult) - 1}")

    @property
    def factor(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)


def vqgan_config(factor: int = 8, codes: int = 1024, dim: int = 64, ch: int = 64, **quantizer) -> VQGANConfig:
    """A VQGAN config for downsampling ``factor`` in {4, 8, 16}, ``codes`` codes of dimension ``dim``."""
    if factor not in CH_MULT:
        raise PixseqError(f"--factor must be one of {sorted(CH_MULT)}, got {factor}")
    mult = CH_MULT[factor]
    qcfg = QuantizerConfig(num_codes=codes, dim=dim, **quantizer)
    return VQGANConfig(ch=ch, ch_mult=mult, attn_levels=(len(mult) - 1,), z_channels=dim, quantizer=qcfg)


class _Level(nn.Module):
    """Residual blocks (optionally each followed by attention) and an optional resampler."""

    def __init__(self, in_ch: int, out_ch: int, n_blocks: int, attn: bool, resample: nn.Module | None,
                 cfg: VQGANConfig) -> None:
        super().__init__()
        chans = [in_ch] + [out_ch] * n_blocks
        self.blocks = nn.ModuleList(ResBlock(a, b, cfg.dropout, cfg.norm_groups) for a, b in zip(chans, chans[1:]))
        self.attns = nn.ModuleList(AttnBlock(out_ch, cfg.norm_groups) for _ in range(n_blocks if attn else 0))
        self.resample = resample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x)
            if len(self.attns):
                x = self.attns[i](x)
        return self.resample(x) if self.resample is not None else x


class _Middle(nn.Module):
    """ResBlock -> attention -> ResBlock at the lowest resolution."""

    def __init__(self, ch: int, cfg: VQGANConfig) -> None:
        super().__init__()
        self.block1 = ResBlock(ch, ch, cfg.dropout, cfg.norm_groups)
        self.attn = AttnBlock(ch, cfg.norm_groups)
        self.block2 = ResBlock(ch, ch, cfg.dropout, cfg.norm_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block2(self.attn(self.block1(x)))


class Encoder(nn.Module):
    """``(B, C, H, W)`` in [-1, 1] -> ``(B, z_channels, H/f, W/f)``."""

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        n = len(cfg.ch_mult)
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, padding=1)
        chans = [cfg.ch] + [cfg.ch * m for m in cfg.ch_mult]
        self.levels = nn.ModuleList(
            _Level(chans[i], chans[i + 1], cfg.num_res_blocks, i in cfg.attn_levels,
                   Downsample(chans[i + 1]) if i < n - 1 else None, cfg)
            for i in range(n)
        )
        self.mid = _Middle(chans[-1], cfg)
        self.norm_out = group_norm(chans[-1], cfg.norm_groups)
        self.conv_out = nn.Conv2d(chans[-1], cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.levels:
            h = level(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """``(B, z_channels, h, w)`` -> ``(B, C, h*f, w*f)`` in (about) [-1, 1].

    ``levels[i]`` works at resolution level ``i`` (0 = full resolution); they run from the
    lowest resolution up, and every level but level 0 ends with an upsampler.
    """

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        n = len(cfg.ch_mult)
        top = cfg.ch * cfg.ch_mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, top, 3, padding=1)
        self.mid = _Middle(top, cfg)
        in_ch = [top] + [cfg.ch * m for m in cfg.ch_mult[::-1]]  # input channels, lowest level first
        levels = []
        for k, i in enumerate(reversed(range(n))):
            out = cfg.ch * cfg.ch_mult[i]
            levels.append(_Level(in_ch[k], out, cfg.num_res_blocks + 1, i in cfg.attn_levels,
                                 Upsample(out) if i > 0 else None, cfg))
        self.levels = nn.ModuleList(levels[::-1])
        self.norm_out = group_norm(cfg.ch * cfg.ch_mult[0], cfg.norm_groups)
        self.conv_out = nn.Conv2d(cfg.ch * cfg.ch_mult[0], cfg.in_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.levels):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))


@register("vqgan", VQGANConfig, "VQGAN tokenizer: CNN encoder/decoder with a learned codebook")
class VQGAN(nn.Module):
    """Images <-> code grids (the :class:`~pixseq.models.base.Tokenizer` contract)."""

    def __init__(self, config: VQGANConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.quant_conv = nn.Conv2d(config.z_channels, config.quantizer.dim, 1)
        self.quantizer = VectorQuantizer(config.quantizer)
        self.post_quant_conv = nn.Conv2d(config.quantizer.dim, config.z_channels, 1)
        self.decoder = Decoder(config)

    # -- tokenizer contract -------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.config.quantizer.num_codes

    @property
    def factor(self) -> int:
        return self.config.factor

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Token grid for an image of ``height x width`` (sides padded up to multiples of f)."""
        f = self.factor
        return -(-height // f), -(-width // f)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] -> ``(B, h, w)`` code indices."""
        check_images(images, self.config.in_channels)
        images = images.to(self.quant_conv.weight.dtype)  # float64 input, say: conv weights are float32
        _, _, info = self.quantizer(self.encode_latent(images))
        return info["indices"]

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, h, w)`` code indices -> ``(B, 3, h*f, w*f)`` in [0, 1]."""
        check_token_grid(tokens, self.vocab_size)
        if tokens.size(1) * tokens.size(2) < 2:  # GroupNorm would see one value per group (as in encode_latent)
            raise PixseqError(f"a {tokens.size(2)}x{tokens.size(1)} code grid is too small to decode: "
                              f"it needs more than one code")
        return self.decode_latent(self.quantizer.lookup(tokens.long())).add(1).div(2).clamp(0, 1)

    # -- pieces used for training and conversion ----------------------------------------
    def pad(self, images: torch.Tensor) -> torch.Tensor:
        """Reflect-pad right/bottom so both sides are multiples of the factor."""
        H, W = images.shape[-2:]
        h, w = self.grid_size(H, W)
        ph, pw = h * self.factor - H, w * self.factor - W
        if ph or pw:
            mode = "reflect" if ph < H and pw < W else "replicate"
            images = F.pad(images, (0, pw, 0, ph), mode=mode)
        return images

    def encode_latent(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] -> pre-quantization latents ``(B, d, h, w)``."""
        H, W = images.shape[-2:]
        f = self.factor
        if -(-H // f) * -(-W // f) < 2:  # one latent position: GroupNorm has one value per group
            raise PixseqError(f"images of {W}x{H} are too small for this tokenizer: it needs more than one "
                              f"{f}x{f} block (e.g. at least {f + 1}x{f})")
        return self.quant_conv(self.encoder(self.pad(images) * 2 - 1))

    def decode_latent(self, z_q: torch.Tensor) -> torch.Tensor:
        """Quantized latents ``(B, d, h, w)`` -> images in (about) [-1, 1], unclamped."""
        return self.decoder(self.post_quant_conv(z_q))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Reconstruct ``images`` (in [0, 1]) for training.

        Returns ``(x_hat, vq_loss, info)``; ``x_hat`` is in [-1, 1] space, unclamped, cropped
        to the input size.
        """
        H, W = images.shape[-2:]
        z_q, vq_loss, info = self.quantizer(self.encode_latent(images))
        return self.decode_latent(z_q)[..., :H, :W], vq_loss, info

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """Encode and decode, cropped back to the input size; ``(B, 3, H, W)`` in [0, 1]."""
        H, W = images.shape[-2:]
        return self.decode(self.encode(images))[..., :H, :W]

    def last_layer(self) -> torch.Tensor:
        """The decoder's last weight: where the adaptive GAN weight is measured."""
        return self.decoder.conv_out.weight


@dataclass
class Reconstruction:
    """What :func:`reconstruct_file` wrote and measured."""

    height: int
    width: int
    grid: tuple[int, int]
    vocab_size: int
    bits_per_pixel: float  # of the raw codes: log2(vocab) bits each, no entropy coding
    psnr_db: float  # of the file as written and read back


def reconstruct_file(tokenizer: VQGAN, image, out) -> Reconstruction:
    """``pixseq reconstruct`` as one call: encode the uint8 ``(H, W, 3)`` ``image`` to codes,
    decode them, write the result to ``out`` and measure it. Sides not divisible by the
    factor are padded and cropped back."""
    import math

    from pixseq.io import load_image, save_image, to_tensor, to_uint8
    from pixseq.metrics.pixel import psnr

    x = to_tensor(image)[None].to(next(tokenizer.parameters()).device)  # (1, 3, H, W)
    H, W = image.shape[:2]
    with torch.no_grad():
        codes = tokenizer.encode(x)  # sides not divisible by f are padded ...
        rec = tokenizer.decode(codes)[..., :H, :W]  # ... and cropped back
    save_image(to_uint8(rec[0]), out)
    bpp = codes.numel() * math.log2(tokenizer.vocab_size) / (H * W)
    # PSNR of the file as written and read back: a lossy out (.jpg, .webp) changes the pixels again
    quality = float(psnr(to_tensor(load_image(out))[None], x.cpu()))
    return Reconstruction(H, W, (codes.shape[1], codes.shape[2]), tokenizer.vocab_size, bpp, quality)
