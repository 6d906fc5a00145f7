"""What GAN inversion inverts: a differentiable map from a continuous latent to images.

:func:`as_generator` wraps a loaded model as a :class:`LatentGenerator`:

* a ``gan`` model (:class:`pixseq.gans.model.GAN`): ``z`` of ``latent_dim`` coordinates,
  unconditional or class-conditional, images of the generator's one size; starting points
  are drawn from its prior (``sample_latent``); a ``uniform`` prior's latents stay in [-1, 1];
* a ``vqgan`` tokenizer or the tokenizer of a ``taming`` model: its decoder over the
  *continuous* (pre-quantisation) latent ``(d, h, w)``, ``h, w = ceil(H / f), ceil(W / f)``,
  for images of any size; the first starting point is the encoder's latent of the image
  (inversion then refines what the encoder gives), the others add noise of the codebook's
  spread to it.

Anything else (an iGPT, a ViT, a restoration GAN) is a one-line error: it has no latent a
decoder maps to an image.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixseq.errors import PixseqError

#: Model kinds ``--method invert`` takes.
GENERATOR_KINDS = ("gan", "vqgan", "taming")


class LatentGenerator:
    """A generator from a continuous latent: ``generate(z, labels)`` -> images in [0, 1].

    ``model`` is the module whose fingerprint names the generator in a file."""

    kind = ""
    num_classes = 0

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """The image size the generator makes for an input of ``height x width``."""
        raise NotImplementedError

    def latent_shape(self, height: int, width: int) -> tuple[int, ...]:
        """The latent's shape (no batch) for an image of the working size."""
        raise NotImplementedError

    def starts(self, images: torch.Tensor, num: int, generator: torch.Generator) -> torch.Tensor:
        """``num`` starting latents per image: ``(B * num, *latent_shape)``, image-major."""
        raise NotImplementedError

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``(N, 3, H, W)`` in [0, 1], differentiable in ``z``."""
        raise NotImplementedError

    def project(self, z: torch.Tensor) -> None:
        """Keep ``z`` (in place) where the prior has mass (no-op unless the prior is bounded)."""

    def class_names(self) -> list[str]:
        return []


class GANGenerator(LatentGenerator):
    """A ``gan`` model: ``G(z, labels)`` with ``z`` of its prior."""

    kind = "gan"

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.num_classes = int(model.num_classes)
        self.side = int(model.config.image_size)
        self.prior = model.config.prior

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        return self.side, self.side

    def latent_shape(self, height: int, width: int) -> tuple[int, ...]:
        return (int(self.model.config.latent_dim),)

    def starts(self, images: torch.Tensor, num: int, generator: torch.Generator) -> torch.Tensor:
        from pixseq.gans.dcgan import sample_latent

        return sample_latent(self.model.config, images.size(0) * num, "cpu", generator).to(self.device)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(z, labels)

    def project(self, z: torch.Tensor) -> None:
        if self.prior == "uniform":
            z.clamp_(-1.0, 1.0)

    def class_names(self) -> list[str]:
        from pixseq.models.base import class_names

        return list(class_names(self.model))


class VQGANDecoder(LatentGenerator):
    """A VQGAN's decoder over its continuous latent (no codebook lookup)."""

    kind = "vqgan"

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        return height, width

    def latent_shape(self, height: int, width: int) -> tuple[int, ...]:
        h, w = self.model.grid_size(height, width)
        return int(self.model.config.quantizer.dim), int(h), int(w)

    def starts(self, images: torch.Tensor, num: int, generator: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            z0 = self.model.encode_latent(images.to(self.device).float())  # (B, d, h, w)
            spread = float(self.model.quantizer.embedding.weight.std())  # the codebook's spread
        noise = torch.randn((z0.size(0), num, *z0.shape[1:]), generator=generator).to(self.device)
        noise[:, 0] = 0  # the first start is the encoder's own latent
        return (z0[:, None] + spread * noise).flatten(0, 1)  # (B * num, d, h, w)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is not None:
            raise PixseqError("a VQGAN decoder is unconditional; it takes no class")
        return self.model.decode_latent(z).add(1).div(2).clamp(0, 1)


def as_generator(model: nn.Module) -> LatentGenerator:
    """The :class:`LatentGenerator` of a loaded model, or a one-line error saying why it is not one."""
    kind = getattr(model, "kind", type(model).__name__)
    if kind == "gan":
        return GANGenerator(model)
    if kind == "vqgan":
        return VQGANDecoder(model)
    if kind == "taming":
        return VQGANDecoder(model.tokenizer)
    if kind == "igpt":
        raise PixseqError("an iGPT is not a generator from a latent (it predicts palette tokens one by one): "
                          "--method invert needs a GAN or a VQGAN; code this model's tokens with --method tokens")
    raise PixseqError(f"a model of kind {kind!r} is not a generator from a latent: --method invert needs one of "
                      f"{', '.join(GENERATOR_KINDS)}")


def fit_to(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``images`` resized (bicubic, antialiased, no crop) to ``size``: what the generator is asked to match."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
