"""Tiny generators for the inversion tests: built in memory, seeded, outputs that depend on z."""
from __future__ import annotations

import torch
from torch import nn

from pixseq.gans.train import build_gan


def lively_gan(latent_dim: int = 8, num_classes: int = 0, arch: str = "vanilla", seed: int = 0, width: int = 8):
    """A random 28 px GAN whose weights are scaled up from DCGAN's N(0, 0.02) initialisation,
    so its images vary with z (an untrained DCGAN's are nearly constant grey)."""
    gan, _ = build_gan(28, 1, arch, latent_dim=latent_dim, num_classes=num_classes, width=width, seed=seed)
    g = torch.Generator().manual_seed(seed)
    for m in gan.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            m.weight.data = torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5
        if isinstance(m, nn.Embedding):
            m.weight.data = torch.randn(m.weight.shape, generator=g)
    return gan.eval()


def target_of(gan, seed: int = 1, label: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A latent from the prior and its image ``(1, 3, 28, 28)``."""
    z = gan.sample_latent(1, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return z, gan(z, None if label is None else torch.tensor([label]))
