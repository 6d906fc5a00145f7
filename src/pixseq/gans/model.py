"""The GAN model kinds of a model directory: ``"gan"`` (a generator from a latent, with or
without classes) and ``"restore"`` (an image restoration generator).

Both follow pixseq's image convention: float ``(B, 3, H, W)`` in [0, 1] in and out (a
generator of grey images repeats its one channel). The discriminators are training
machinery: they live in the training checkpoint, not in the model directory.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixseq.errors import PixseqError
from pixseq.gans.dcgan import GANConfig, Generator, sample_latent
from pixseq.gans.degrade import degrade, strength_of, upsample
from pixseq.gans.restoration import EncoderDecoder, RestoreConfig
from pixseq.registry import register


def to_rgb(x: torch.Tensor) -> torch.Tensor:
    """``(B, 1|3, H, W)`` in [-1, 1] -> ``(B, 3, H, W)`` in [0, 1]."""
    x = ((x.float() + 1) / 2).clamp(0, 1)
    return x.expand(-1, 3, -1, -1) if x.size(1) == 1 else x


def from_rgb(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Images in [0, 1] ``(B, 3, H, W)`` -> the network's ``channels`` in [-1, 1] (grey: the mean)."""
    x = images.mean(1, keepdim=True) if channels == 1 and images.size(1) == 3 else images
    return x * 2 - 1


@register("gan", GANConfig, "GAN generator from a latent z (vanilla / DCGAN, optionally class-conditional)")
class GAN(nn.Module):
    """A generator ``G(z, labels)``; ``generate(num, labels)`` samples images in [0, 1].

    ``forward(z, labels)`` is differentiable in ``z`` (for inversion); the latent's size and
    prior are ``config.latent_dim`` and ``config.prior``."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.config = config
        self.generator = Generator(config)
        self.image_size = (config.image_size, config.image_size)
        self.num_classes = config.num_classes

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def sample_latent(self, num: int, generator: torch.Generator | None = None, scale: float = 1.0) -> torch.Tensor:
        """``(num, latent_dim)`` latents from the prior on the model's device."""
        return sample_latent(self.config, num, self.device, generator, scale)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``(B, 3, S, S)`` in [0, 1] for latents ``z`` ``(B, latent_dim)``."""
        if z.dim() != 2 or z.size(1) != self.config.latent_dim:
            raise PixseqError(f"z must be (B, {self.config.latent_dim}), got {tuple(z.shape)}")
        return to_rgb(self.generator(z, self._labels(labels, z.size(0))))

    def _labels(self, labels, num: int) -> torch.Tensor | None:
        from pixseq.models.base import class_labels

        if not self.num_classes:
            if labels is not None:
                raise PixseqError("this GAN is unconditional; it takes no class")
            return None
        if labels is None:
            raise PixseqError(f"this GAN is class-conditional: give labels (0..{self.num_classes - 1} or names)")
        ids = class_labels(self, labels)
        if ids.numel() == 1 and num > 1:
            ids = ids.expand(num)
        if ids.numel() != num or int(ids.min()) < 0 or int(ids.max()) >= self.num_classes:
            raise PixseqError(f"labels must be {num} class ids in 0..{self.num_classes - 1}")
        return ids.to(self.device)

    @torch.no_grad()
    def generate(self, num: int, labels=None, generator: torch.Generator | None = None, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        """``num`` samples ``(num, 3, S, S)`` in [0, 1]. ``temperature`` scales the latent
        (below 1: typical images, less variety); a GAN has no tokens, so ``top_k`` / ``top_p``
        are refused."""
        if top_k is not None or top_p is not None:
            raise PixseqError("a GAN draws no tokens: --top-k / --top-p do not apply (use --temperature "
                              "to narrow the latent)")
        if not 0 < temperature < float("inf"):
            raise PixseqError(f"temperature must be a finite number > 0, got {temperature}")
        if z is None:
            z = self.sample_latent(num, generator, temperature)
        return self(z.to(self.device), labels)


@register("restore", RestoreConfig, "image restoration generator (denoise / inpaint / colorize / superres)")
class Restorer(nn.Module):
    """An encoder-decoder G that restores degraded images of any size."""

    def __init__(self, config: RestoreConfig) -> None:
        super().__init__()
        self.config = config
        self.net = EncoderDecoder(config)
        self.image_size = (config.image_size, config.image_size)
        self.num_classes = 0

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def factor(self) -> int:
        """The super-resolution scale (1 for the other tasks)."""
        return int(strength_of("superres", self.config.strength)) if self.task == "superres" else 1

    def degrade(self, images: torch.Tensor, generator: torch.Generator | None = None):
        """The training degradation of clean ``images`` (see :mod:`pixseq.gans.degrade`)."""
        return degrade(self.task, images, self.config.strength, generator)

    def forward(self, degraded: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Same-size degraded images in [0, 1] (luma for colorize) -> restored ``(B, 3, H, W)``
        in [0, 1]; sides that are not multiples of ``2**depth`` are reflect-padded, then cropped."""
        H, W = degraded.shape[-2:]
        m = 2 ** self.config.depth
        ph, pw = (-H) % m, (-W) % m
        x = from_rgb(degraded, self.config.channels) if self.task != "colorize" else degraded * 2 - 1
        if ph or pw:
            mode = "reflect" if min(H, W) > max(ph, pw) else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
            mask = F.pad(mask, (0, pw, 0, ph), mode="replicate") if mask is not None else None
        return to_rgb(self.net(x, mask))[..., :H, :W]

    @torch.no_grad()
    def restore(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Restore user images ``(B, 3, H, W)`` in [0, 1]: grey input for colorize, low-res input
        for superres (upsampled by the model's factor first; the output is that much larger),
        ``mask`` (1 = known) for inpaint."""
        x = images.to(self.device)
        if self.task == "inpaint" and mask is None:
            raise PixseqError("an inpainting model needs a mask of the missing pixels (--mask)")
        if self.task == "colorize":
            from pixseq.gans.degrade import luma

            x = luma(x)
        if self.task == "superres":
            x = upsample(x, (x.size(-2) * self.factor, x.size(-1) * self.factor))
        return self(x, None if mask is None else mask.to(self.device))


def restore_images(model: Restorer, images, mask=None, degrade_first: bool = False, seed: int = 0):
    """``pixseq restore`` as one call: for each uint8 ``(H, W, 3)`` image, the restored uint8
    image and (``degrade_first``: the image is clean, the model's own degradation is applied
    first, seeded, to show what it undoes) the degraded input, else None. ``mask``: uint8
    ``(H, W)`` or ``(H, W, 3)``, white (>= 128) where pixels are missing (inpainting)."""
    from pixseq.io import to_tensor, to_uint8

    out = []
    g = torch.Generator(model.device).manual_seed(seed)
    for i, image in enumerate(images):
        x = to_tensor(image)[None].to(model.device)  # (1, 3, H, W)
        known, shown = None, None
        if degrade_first:
            x_d, known = model.degrade(x, generator=g)
            shown = to_uint8(x_d.expand(-1, 3, -1, -1)[0].cpu())
            restored = model(x_d, known)
        else:
            if model.task == "inpaint":
                known = _known_pixels(mask, image.shape[:2], i).to(model.device)
            restored = model.restore(x, known)
        out.append((to_uint8(restored[0].cpu()), shown))
    return out


def _known_pixels(mask, shape: tuple[int, int], index: int) -> torch.Tensor:
    """``(1, 1, H, W)`` float: 1 where the mask is dark (known), 0 where it is white (missing)."""
    import numpy as np

    if mask is None:
        raise PixseqError("an inpainting model needs --mask (white where pixels are missing)")
    m = np.asarray(mask)
    m = m.mean(-1) if m.ndim == 3 else m
    if m.shape != tuple(shape):
        raise PixseqError(f"--mask is {m.shape[1]}x{m.shape[0]} but image {index + 1} is {shape[1]}x{shape[0]}")
    return torch.from_numpy((m < 128).astype("float32"))[None, None]
