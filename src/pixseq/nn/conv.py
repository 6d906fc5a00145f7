"""Convolutional building blocks shared by the CNN models (VQGAN encoder/decoder, discriminators).

:class:`PatchDiscriminator` is the PatchGAN of Isola et al. (2017, "Image-to-Image Translation
with Conditional Adversarial Networks"): with 3 layers each output scores a 70x70 patch. The
VQGAN, pix2pix and CycleGAN all use it (batch norm for the first two, instance norm for CycleGAN).

The residual / attention / resampling blocks follow the layout popularised by DDPM
(Ho et al., 2020) and reused by VQGAN (Esser et al., "Taming Transformers for
High-Resolution Image Synthesis", 2021): pre-activation GroupNorm + swish, a 1x1 shortcut
when the channel count changes, single-head spatial self-attention, nearest-neighbour
upsampling followed by a 3x3 conv, and a stride-2 3x3 conv with asymmetric (right/bottom)
padding for downsampling (the asymmetry matters when loading official weights).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def group_norm(channels: int, groups: int = 32, eps: float = 1e-6) -> nn.GroupNorm:
    """GroupNorm with ``groups`` groups, reduced to a divisor of ``channels`` for tiny models."""
    g = math.gcd(channels, groups)
    return nn.GroupNorm(num_groups=g, num_channels=channels, eps=eps, affine=True)


class ResBlock(nn.Module):
    """``x + conv(swish(norm(conv(swish(norm(x))))))`` with a 1x1 shortcut when channels change."""

    def __init__(self, in_ch: int, out_ch: int | None = None, dropout: float = 0.0, groups: int = 32) -> None:
        super().__init__()
        out_ch = out_ch or in_ch
        self.norm1 = group_norm(in_ch, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = group_norm(out_ch, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all spatial positions, with a residual connection.

    Queries/keys/values/output are 1x1 convolutions (so official weights map one to one).
    """

    def __init__(self, channels: int, groups: int = 32) -> None:
        super().__init__()
        self.norm = group_norm(channels, groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        h = self.norm(x)
        # (B, C, H, W) -> (B, 1, HW, C): one head attending over every position. Contiguous:
        # torch's CPU flash kernel takes only those; strided inputs fell back to the math path,
        # which materialises the (HW, HW) matrix (4.6x the memory at 128x128 positions)
        q, k, v = (m(h).flatten(2).transpose(1, 2).unsqueeze(1).contiguous() for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)  # (B, 1, HW, C)
        out = out.squeeze(1).transpose(1, 2).reshape(B, C, H, W)
        return x + self.proj(out)


class Downsample(nn.Module):
    """Halve the resolution with a stride-2 3x3 conv; pads right/bottom only (as in VQGAN)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour interpolation, then a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


#: Normalisation layers of :class:`PatchDiscriminator`.
PATCH_NORMS = ("batch", "instance", "none")


class PatchDiscriminator(nn.Module):
    """PatchGAN: a conv net whose output map scores overlapping patches as real/fake.

    ``Conv(4, s2) -> LeakyReLU(0.2)``, then ``layers`` convs of 4x4 (stride 2, the last stride 1)
    with ``channels * min(2^i, 8)`` filters, each followed by ``norm`` and LeakyReLU, then a
    4x4 conv to one channel. The convs before a batch norm have no bias (it would cancel);
    with instance norm or none they do (as in pytorch-CycleGAN-and-pix2pix's
    ``NLayerDiscriminator``, whose layer indices this one keeps). Instance norm is affine-free."""

    def __init__(self, in_ch: int = 3, channels: int = 64, layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        if norm not in PATCH_NORMS:
            raise ValueError(f"norm must be one of {PATCH_NORMS}, got {norm!r}")
        mods: list[nn.Module] = [nn.Conv2d(in_ch, channels, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = channels
        for i in range(1, layers + 1):
            out = channels * min(2 ** i, 8)
            stride = 2 if i < layers else 1
            mods.append(nn.Conv2d(ch, out, 4, stride, 1, bias=norm != "batch"))
            if norm == "batch":
                mods.append(nn.BatchNorm2d(out))
            elif norm == "instance":
                mods.append(nn.InstanceNorm2d(out))
            mods.append(nn.LeakyReLU(0.2, True))
            ch = out
        mods.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)
        for m in self.modules():  # DCGAN initialisation (Radford et al. 2016)
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
