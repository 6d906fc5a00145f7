"""Adversarial losses and regularisers, all in one place, on raw discriminator outputs (logits).

``d_loss(kind, real, fake)`` is what the discriminator minimises, ``g_loss(kind, fake, real)``
what the generator minimises; ``real`` / ``fake`` are ``D``'s outputs of any shape (one per
image, or a map of patch scores), averaged over everything.

* ``"ns"``: non-saturating GAN (Goodfellow et al. 2014, "Generative Adversarial Nets", the
  variant of their section 3): D ``-log D(x) - log(1 - D(G(z)))``, G ``-log D(G(z))``,
  with ``D = sigmoid(logit)`` written through softplus for stability;
* ``"minimax"``: the saturating original, G minimises ``log(1 - D(G(z)))``: its gradient
  vanishes when D wins (kept to show that failure);
* ``"lsgan"``: least squares (Mao et al. 2017), targets 1 for real and 0 for fake, halved;
* ``"hinge"``: hinge loss (Lim & Ye 2017; Miyato et al. 2018): D ``relu(1 - r) + relu(1 + f)``, G ``-f``;
* ``"wgan-gp"``: Wasserstein critic (Arjovsky et al. 2017) ``f - r``, G ``-f``, with
  :func:`gradient_penalty` (Gulrajani et al. 2017, lambda 10) added by the task;
* ``"ragan"``: relativistic average GAN (Jolicoeur-Martineau 2018), as ESRGAN uses it
  (Wang et al. 2018): ``D_Ra(a, b) = sigmoid(C(a) - mean C(b))``; D minimises
  ``-log D_Ra(x, G(z)) - log(1 - D_Ra(G(z), x))`` and G the same with the roles swapped,
  so G's loss needs the real logits too.

Regularisers: :func:`gradient_penalty` (WGAN-GP), :func:`r1_penalty` (Mescheder et al.
2018, "Which training methods for GANs do actually converge?"), :func:`add_spectral_norm`
(Miyato et al. 2018).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pixseq.errors import PixseqError

#: Every adversarial loss by name (``--loss``).
LOSSES = ("ns", "minimax", "lsgan", "hinge", "wgan-gp", "ragan")
#: Losses whose discriminator output reads as a probability through a sigmoid (D(x), D(G(z))).
SIGMOID_LOSSES = ("ns", "minimax", "ragan")
#: Losses whose discriminator loss is bounded below by 0 ("D's loss near 0": D wins).
BOUNDED_LOSSES = ("ns", "minimax", "lsgan", "hinge", "ragan")


def check_loss(kind: str) -> str:
    """``kind`` if it names a loss, else a one-line PixseqError listing them."""
    if kind not in LOSSES:
        raise PixseqError(f"unknown GAN loss {kind!r} (known: {', '.join(LOSSES)})")
    return kind


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss on its logits of real and generated images."""
    real, fake = real.float(), fake.float()
    if kind in ("ns", "minimax"):
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "lsgan":
        return 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean())
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "wgan-gp":
        return fake.mean() - real.mean()
    if kind == "ragan":
        return F.softplus(-(real - fake.mean())).mean() + F.softplus(fake - real.mean()).mean()
    raise PixseqError(f"unknown GAN loss {kind!r} (known: {', '.join(LOSSES)})")


def g_loss(kind: str, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
    """The generator's adversarial loss on D's logits of its images (``real``: D's logits of
    real images, needed by ``"ragan"`` only; their graph is not used)."""
    fake = fake.float()
    if kind == "ns":
        return F.softplus(-fake).mean()
    if kind == "minimax":
        return -F.softplus(fake).mean()  # log(1 - sigmoid(f)) = -softplus(f)
    if kind == "lsgan":
        return 0.5 * (fake - 1).pow(2).mean()
    if kind in ("hinge", "wgan-gp"):
        return -fake.mean()
    if kind == "ragan":
        if real is None:
            raise PixseqError("the relativistic average loss needs D's logits of real images for G's loss too")
        real = real.detach().float()
        return F.softplus(real - fake.mean()).mean() + F.softplus(-(fake - real.mean())).mean()
    raise PixseqError(f"unknown GAN loss {kind!r} (known: {', '.join(LOSSES)})")


def gradient_penalty(disc: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     weight: float = 10.0) -> torch.Tensor:
    """WGAN-GP: ``weight * E[(||grad_x D(x_hat)||_2 - 1)^2]`` at random points ``x_hat`` on the
    lines between real and generated images (one uniform mixing weight per image)."""
    eps = torch.rand(real.size(0), *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    out = disc(x_hat)
    (grad,) = torch.autograd.grad(out.float().sum(), x_hat, create_graph=True)
    return weight * (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor, gamma: float = 10.0) -> torch.Tensor:
    """R1: ``gamma / 2 * E[||grad_x D(x)||^2]`` on real images; ``real`` must require grad and
    ``real_logits`` come from it."""
    (grad,) = torch.autograd.grad(real_logits.float().sum(), real, create_graph=True)
    return 0.5 * gamma * grad.flatten(1).pow(2).sum(1).mean()


def add_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (one power iteration per forward) on every conv and linear
    weight of ``module``, in place; returns it."""
    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(m)
    return module


def d_outputs(kind: str, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the discriminator says, for the logs and the health monitor: mean raw outputs
    ``d_real`` / ``d_fake`` and, for sigmoid losses, pytorch/examples' ``D(x)`` / ``D(G(z))``
    as ``p_real`` / ``p_fake`` (tensors: read back once per step)."""
    out = {"d_real": real.detach().float().mean(), "d_fake": fake.detach().float().mean()}
    if kind in SIGMOID_LOSSES:
        out.update(p_real=torch.sigmoid(real.detach().float()).mean(), p_fake=torch.sigmoid(fake.detach().float()).mean())
    return out
