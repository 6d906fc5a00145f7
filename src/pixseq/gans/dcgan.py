"""Generators from a latent z and their discriminators: the lecture's vanilla GAN and DCGAN,
unconditional and class-conditional, for 28, 32 and 64 pixel images.

* ``"vanilla"`` (the lecture): ``G = Linear(nz -> width*s0*s0) -> ReLU -> Unflatten(width, s0, s0)``
  then (nearest upsampling x2 -> 3x3 conv -> ReLU) per doubling and a 3x3 conv to the image
  channels with tanh; ``s0 = 8`` for 32 px (the lecture's ``64*8*8``), 7 for 28 px.
* ``"dcgan"`` (Radford et al. 2016, "Unsupervised representation learning with deep
  convolutional GANs"): the projection is followed by BatchNorm + ReLU, every doubling is a
  4x4 stride-2 transposed convolution with BatchNorm + ReLU, the last one gives the image
  channels with tanh; D mirrors it with 4x4 stride-2 convolutions, LeakyReLU(0.2) and
  BatchNorm (none on its first layer), weights initialised from N(0, 0.02).

Conditioning (the lecture's recipe): a label ``y`` goes into both networks through an
embedding of size ``H0*W0``, reshaped to ``1 x H0 x W0`` and concatenated as one extra
channel: in G to the first ``s0 x s0`` feature map, in D to the input image.

Every network is fully differentiable in z (GAN inversion optimises it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from pixseq.errors import PixseqError

#: Image sides the nets are built for.
SIZES = (28, 32, 64)
ARCHS = ("dcgan", "vanilla")
PRIORS = ("normal", "uniform")


@dataclass
class GANConfig:
    """A generator from a latent: its architecture, image size and channels, the latent's
    dimension and prior (``"normal"``: N(0, I); ``"uniform"``: U[-1, 1]^nz, the lecture's),
    classes (0: unconditional), widths and the discriminator's options."""

    arch: str = "dcgan"
    image_size: int = 28
    channels: int = 1
    latent_dim: int = 100
    prior: str = "normal"
    num_classes: int = 0
    width: int = 64
    disc_width: int = 64
    spectral_norm: bool = False

    def __post_init__(self) -> None:
        checks = [(self.arch in ARCHS, f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}"),
                  (self.image_size in SIZES, f"image_size must be one of {SIZES}, got {self.image_size}"),
                  (self.channels in (1, 3), f"channels must be 1 or 3, got {self.channels}"),
                  (self.latent_dim >= 1, f"latent_dim must be >= 1, got {self.latent_dim}"),
                  (self.prior in PRIORS, f"prior must be one of {', '.join(PRIORS)}, got {self.prior!r}"),
                  (self.num_classes >= 0, f"num_classes must be >= 0, got {self.num_classes}"),
                  (self.width >= 1 and self.disc_width >= 1, "width and disc_width must be >= 1")]
        for ok, message in checks:
            if not ok:
                raise PixseqError(f"bad GAN config: {message}")

    @property
    def base(self) -> int:
        """Side of the first feature map: 7 (28 px), 8 (32 and 64 px)."""
        return 7 if self.image_size == 28 else 8

    @property
    def doublings(self) -> int:
        return int(math.log2(self.image_size // self.base))


def dcgan_init(module: nn.Module) -> None:
    """Radford et al.'s initialisation: conv weights N(0, 0.02), BatchNorm N(1, 0.02) and 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class LabelChannel(nn.Module):
    """The lecture's conditioning: ``Embedding(K, H*W)`` -> ``(B, 1, H, W)``, one extra channel."""

    def __init__(self, num_classes: int, side: int) -> None:
        super().__init__()
        self.side = side
        self.embed = nn.Embedding(num_classes, side * side)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        y = self.embed(labels).view(-1, 1, self.side, self.side).to(x.dtype)  # (B, 1, H0, W0)
        return torch.cat([x, y], 1)


class Generator(nn.Module):
    """``G(z, labels) -> (B, channels, S, S)`` in [-1, 1] (tanh)."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        c, s0 = config, config.base
        n = c.doublings
        chans = [c.width * 2 ** (n - 1 - i) if c.arch == "dcgan" else c.width for i in range(n)]  # widest first
        self.config, self.c0 = c, chans[0]
        project: list[nn.Module] = [nn.Linear(c.latent_dim, chans[0] * s0 * s0, bias=c.arch == "vanilla")]
        if c.arch == "dcgan":
            project += [nn.Unflatten(1, (chans[0], s0, s0)), nn.BatchNorm2d(chans[0]), nn.ReLU(True)]
        else:
            project += [nn.ReLU(True), nn.Unflatten(1, (chans[0], s0, s0))]
        self.project = nn.Sequential(*project)
        self.label = LabelChannel(c.num_classes, s0) if c.num_classes else None
        extra = 1 if c.num_classes else 0
        layers: list[nn.Module] = []
        for i in range(n):
            cin = chans[i] + (extra if i == 0 else 0)
            last = i == n - 1
            cout = c.channels if (last and c.arch == "dcgan") else (chans[i + 1] if not last else chans[i])
            if c.arch == "dcgan":
                layers.append(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=last))
                layers += [nn.Tanh()] if last else [nn.BatchNorm2d(cout), nn.ReLU(True)]
            else:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1), nn.ReLU(True)]
        if c.arch == "vanilla":
            layers += [nn.Conv2d(chans[-1], c.channels, 3, 1, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.project(z)  # (B, C0, s0, s0)
        if self.label is not None:
            if labels is None:
                raise PixseqError("this generator is class-conditional: give labels")
            h = self.label(h, labels)
        return self.body(h)


class Discriminator(nn.Module):
    """``D(x, labels) -> (B,)`` logits for images in [-1, 1] of the generator's size."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        c = config
        n = c.doublings
        self.label = LabelChannel(c.num_classes, c.image_size) if c.num_classes else None
        cin = c.channels + (1 if c.num_classes else 0)
        layers: list[nn.Module] = []
        for i in range(n):
            cout = c.disc_width * 2 ** i
            layers.append(nn.Conv2d(cin, cout, 4, 2, 1, bias=i == 0))
            if i > 0 and not c.spectral_norm:  # spectral norm replaces batch norm (Miyato et al.)
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2, True))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin * c.base * c.base, 1)
        dcgan_init(self)
        if c.spectral_norm:
            from pixseq.gans.losses import add_spectral_norm

            add_spectral_norm(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label is not None:
            if labels is None:
                raise PixseqError("this discriminator is class-conditional: give labels")
            x = self.label(x, labels)
        return self.head(self.features(x).flatten(1)).squeeze(1)  # (B,)


def sample_latent(config: GANConfig, num: int, device: torch.device | str = "cpu",
                  generator: torch.Generator | None = None, scale: float = 1.0) -> torch.Tensor:
    """``num`` latents from the config's prior, ``(num, latent_dim)``; ``scale`` < 1 draws
    from a narrower prior (fidelity for diversity, like the truncation trick)."""
    shape = (num, config.latent_dim)
    if config.prior == "uniform":
        z = torch.rand(shape, device=device, generator=generator) * 2 - 1
    else:
        z = torch.randn(shape, device=device, generator=generator)
    return z * scale if scale != 1.0 else z
