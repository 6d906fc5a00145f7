"""Discriminators of the super-resolution GANs, in BasicSR's parameter layout.

* :class:`VGGStyleDiscriminator` — ESRGAN's (Wang et al. 2018, after SRGAN, Ledig et al.
  2017): pairs of a 3x3 conv and a stride-2 4x4 conv (BatchNorm, LeakyReLU 0.2) from
  ``num_feat`` to ``8 num_feat`` channels until the patch is 4x4, then two linear layers to
  one logit per image. BasicSR builds it for 128 or 256 pixel inputs (5 or 6 stages); here
  ``input_size`` may be any power of two from 32 (``log2(input_size) - 2`` stages), with
  the same names (``conv{i}_0``, ``bn{i}_0``, ``conv{i}_1``, ``bn{i}_1``, ``linear1/2``).
* :class:`UNetDiscriminatorSN` — Real-ESRGAN's (Wang et al. 2021): a U-Net with spectral
  normalisation (``torch.nn.utils.spectral_norm``, so the keys are BasicSR's
  ``weight_orig`` / ``weight_u`` / ``weight_v`` and its ``*_netD.pth`` files load) that
  gives a logit per pixel; any input whose sides are multiples of 8.

Both take images in [0, 1], as BasicSR's do.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from pixseq.errors import PixseqError

SR_DISCRIMINATORS = ("vgg", "unet")


@dataclass
class SRDiscConfig:
    """Which discriminator and its size."""

    arch: str = "vgg"
    num_in_ch: int = 3
    num_feat: int = 64
    input_size: int = 128  # vgg only: the patch side it scores

    def __post_init__(self) -> None:
        if self.arch not in SR_DISCRIMINATORS:
            raise PixseqError(f"unknown super-resolution discriminator {self.arch!r} (known: vgg, unet)")
        if self.num_feat < 1 or self.num_in_ch < 1:
            raise PixseqError("discriminator channels must be >= 1")
        if self.arch == "vgg" and (self.input_size < 32 or self.input_size & (self.input_size - 1)):
            raise PixseqError(f"the VGG-style discriminator scores square patches of a power of two >= 32 "
                              f"pixels; got {self.input_size} (use --disc unet for other sizes)")


class VGGStyleDiscriminator(nn.Module):
    """``D(x) -> (B,)`` logits for ``(B, C, input_size, input_size)`` images."""

    def __init__(self, config: SRDiscConfig) -> None:
        super().__init__()
        self.config = c = config
        self.stages = int(math.log2(c.input_size)) - 2
        ch_in = c.num_in_ch
        for i in range(self.stages):
            ch = c.num_feat * min(2 ** i, 8)
            self.add_module(f"conv{i}_0", nn.Conv2d(ch_in, ch, 3, 1, 1, bias=i == 0))
            if i > 0:
                self.add_module(f"bn{i}_0", nn.BatchNorm2d(ch, affine=True))
            self.add_module(f"conv{i}_1", nn.Conv2d(ch, ch, 4, 2, 1, bias=False))
            self.add_module(f"bn{i}_1", nn.BatchNorm2d(ch, affine=True))
            ch_in = ch
        self.linear1 = nn.Linear(ch_in * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.config.input_size
        if x.shape[-2:] != (size, size):
            raise PixseqError(f"the VGG-style discriminator scores {size}x{size} patches, got "
                              f"{x.shape[-1]}x{x.shape[-2]}")
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        for i in range(self.stages):
            x = getattr(self, f"conv{i}_0")(x)
            x = act(getattr(self, f"bn{i}_0")(x) if i > 0 else x)
            x = act(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(x)))
        x = act(self.linear1(x.flatten(1)))  # (B, 8 nf * 16)
        return self.linear2(x).squeeze(1)


class UNetDiscriminatorSN(nn.Module):
    """``D(x) -> (B, 1, H, W)`` logits per pixel; spectral norm on the inner convs."""

    def __init__(self, config: SRDiscConfig, skip_connection: bool = True) -> None:
        super().__init__()
        self.config, self.skip = config, skip_connection
        nf = config.num_feat
        sn = spectral_norm
        self.conv0 = nn.Conv2d(config.num_in_ch, nf, 3, 1, 1)
        self.conv1 = sn(nn.Conv2d(nf, nf * 2, 4, 2, 1, bias=False))
        self.conv2 = sn(nn.Conv2d(nf * 2, nf * 4, 4, 2, 1, bias=False))
        self.conv3 = sn(nn.Conv2d(nf * 4, nf * 8, 4, 2, 1, bias=False))
        self.conv4 = sn(nn.Conv2d(nf * 8, nf * 4, 3, 1, 1, bias=False))
        self.conv5 = sn(nn.Conv2d(nf * 4, nf * 2, 3, 1, 1, bias=False))
        self.conv6 = sn(nn.Conv2d(nf * 2, nf, 3, 1, 1, bias=False))
        self.conv7 = sn(nn.Conv2d(nf, nf, 3, 1, 1, bias=False))
        self.conv8 = sn(nn.Conv2d(nf, nf, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(nf, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise PixseqError(f"the U-Net discriminator needs sides that are multiples of 8, got "
                              f"{x.shape[-1]}x{x.shape[-2]}")
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        up = lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)  # noqa: E731
        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        x4 = act(self.conv4(up(x3)))
        x4 = x4 + x2 if self.skip else x4
        x5 = act(self.conv5(up(x4)))
        x5 = x5 + x1 if self.skip else x5
        x6 = act(self.conv6(up(x5)))
        x6 = x6 + x0 if self.skip else x6
        return self.conv9(act(self.conv8(act(self.conv7(x6)))))


def build_sr_discriminator(config: SRDiscConfig) -> nn.Module:
    """The discriminator ``config.arch`` names."""
    return VGGStyleDiscriminator(config) if config.arch == "vgg" else UNetDiscriminatorSN(config)
