"""Image restoration networks: an encoder-decoder generator and a binary critic.

The lecture's first GAN: G maps a degraded image (noisy, with a hole, grey, blurred by
downsampling) to a restored one; D tells restored from real images. G is a plain
encoder-decoder, fully convolutional so that it restores images of any size: ``depth``
stride-2 4x4 convolutions (BatchNorm, LeakyReLU 0.2) down to 1/2^depth of the input, a 3x3
bottleneck, and as many stride-2 transposed convolutions (BatchNorm, ReLU) back up; a 3x3
convolution and tanh give the image. Its input is the degraded image plus, for inpainting,
the mask of known pixels as one more channel. The output is the input plus a learned
correction inside the known pixels of inpainting (``keep_known``): restoration never
changes what was not damaged.

The critic is a stride-2 conv stack whose map of patch logits is averaged to one logit per
image (any input size). U-Net skips and the 70x70 PatchGAN are the image-to-image family's
(pix2pix) additions, in their own module.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pixseq.errors import PixseqError
from pixseq.gans.dcgan import dcgan_init

#: Restoration tasks: the degradations :mod:`pixseq.gans.degrade` makes pairs with.
TASKS = ("denoise", "inpaint", "colorize", "superres")


@dataclass
class RestoreConfig:
    """A restoration generator: its task, channels, width and depth (the input must be a
    multiple of ``2**depth`` pixels on each side; other sizes are padded by reflection)."""

    task: str = "denoise"
    channels: int = 3
    width: int = 32
    depth: int = 2
    disc_width: int = 32
    #: the degradation's strength: noise std (denoise), hole side fraction (inpaint), factor (superres)
    strength: float = 0.0
    image_size: int = 28

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise PixseqError(f"unknown restoration task {self.task!r} (known: {', '.join(TASKS)})")
        if self.channels not in (1, 3) or self.width < 1 or not 1 <= self.depth <= 5 or self.disc_width < 1:
            raise PixseqError("bad restore config: channels must be 1 or 3, width and disc_width >= 1, depth 1..5")
        if self.task == "colorize" and self.channels != 3:
            raise PixseqError("colorize needs colour images (channels 3)")

    @property
    def in_channels(self) -> int:
        """Image channels (1 for colorize's grey input) plus the mask for inpainting."""
        image = 1 if self.task == "colorize" else self.channels
        return image + (1 if self.task == "inpaint" else 0)


class EncoderDecoder(nn.Module):
    """``G(degraded, mask) -> (B, channels, H, W)`` in [-1, 1]."""

    def __init__(self, config: RestoreConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        down: list[nn.Module] = [nn.Conv2d(c.in_channels, c.width, 3, 1, 1), nn.LeakyReLU(0.2, True)]
        ch = c.width
        for i in range(c.depth):
            out = c.width * 2 ** (i + 1)
            down += [nn.Conv2d(ch, out, 4, 2, 1, bias=False), nn.BatchNorm2d(out), nn.LeakyReLU(0.2, True)]
            ch = out
        self.encoder = nn.Sequential(*down)
        self.bottleneck = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True))
        up: list[nn.Module] = []
        for i in reversed(range(c.depth)):
            out = c.width * 2 ** i
            up += [nn.ConvTranspose2d(ch, out, 4, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(True)]
            ch = out
        up += [nn.Conv2d(ch, c.channels, 3, 1, 1), nn.Tanh()]
        self.decoder = nn.Sequential(*up)
        dcgan_init(self)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: the degraded image in [-1, 1] ``(B, in image channels, H, W)``; ``mask``: 1
        where pixels are known (inpainting only), ``(B, 1, H, W)``."""
        if self.config.task == "inpaint":
            if mask is None:
                raise PixseqError("an inpainting generator needs the mask of known pixels")
            out = self.decoder(self.bottleneck(self.encoder(torch.cat([x, mask.to(x.dtype)], 1))))
            return mask * x + (1 - mask) * out  # known pixels stay as they are
        return self.decoder(self.bottleneck(self.encoder(x)))


class Critic(nn.Module):
    """``D(x) -> (B,)``: patch logits of a stride-2 conv stack, averaged over the image."""

    def __init__(self, channels: int, width: int = 32, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = width
        for i in range(1, layers):
            out = width * 2 ** i
            mods += [nn.Conv2d(ch, out, 4, 2, 1, bias=False), nn.BatchNorm2d(out), nn.LeakyReLU(0.2, True)]
            ch = out
        mods.append(nn.Conv2d(ch, 1, 3, 1, 1))
        self.net = nn.Sequential(*mods)
        dcgan_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).mean((1, 2, 3))  # (B,)
