"""iGPT: a k-means colour palette tokenizer + a GPT prior over the pixels in raster order.

Chen et al. 2020, "Generative Pretraining from Pixels": images are downsampled (here:
``image_size`` x ``image_size``), each pixel becomes one of ``palette_size`` colour tokens,
and a GPT-2 style decoder models the flattened sequence autoregressively. Class labels,
when used, are one conditioning token prepended to the sequence.

This module holds the model (registered as ``"igpt"``), a dataset of pre-tokenised
images and the task object the :mod:`pixseq.train` Trainer drives.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from pixseq.errors import PixseqError
from pixseq.io import to_tensor
from pixseq.models.base import check_keep_rows, class_labels, completion_labels
from pixseq.priors.gpt import GPT, GPTConfig, flops_per_batch
from pixseq.priors.sampling import sample
from pixseq.registry import register
from pixseq.tokenizers.palette import PaletteTokenizer, fit_palette


@dataclass
class IGPTConfig:
    """An iGPT model: palette size, square image side, the GPT, and classes (0: unconditional).

    ``gpt.vocab_size``, ``gpt.block_size`` and the conditioning fields are derived from the
    other fields when the model is built (and stored that way), so only the GPT's size needs
    choosing, e.g. ``IGPTConfig(gpt=gpt_config("s"))``.
    """

    palette_size: int = 512
    image_size: int = 32
    gpt: GPTConfig = field(default_factory=GPTConfig)
    num_classes: int = 0

    def __post_init__(self) -> None:
        if self.palette_size < 2 or not 1 <= self.image_size <= 256 or self.num_classes < 0:
            # (256: a 65 536-pixel sequence; iGPT itself stops at 64. Larger would only
            # allocate positions for gigabytes before anything failed.)
            raise ValueError("palette_size must be >= 2, image_size 1..256, num_classes >= 0")

    def resolved(self) -> "IGPTConfig":
        """This config with the GPT's vocabulary, length and conditioning filled in."""
        gpt = dataclasses.replace(
            self.gpt, vocab_size=self.palette_size, block_size=self.image_size ** 2,
            cond_vocab_size=self.num_classes, cond_len=1 if self.num_classes else 0,
        )
        return dataclasses.replace(self, gpt=gpt)


@register("igpt", IGPTConfig)
class IGPT(nn.Module):
    """Image GPT: pixel palette tokenizer + GPT prior (image completion, sampling, linear probes)."""

    def __init__(self, config: IGPTConfig) -> None:
        super().__init__()
        self.config = config.resolved()
        self.tokenizer = PaletteTokenizer(self.config.palette_size)
        self.prior = GPT(self.config.gpt)
        self.image_size = (self.config.image_size, self.config.image_size)
        self.num_classes = self.config.num_classes

    @classmethod
    def from_data(cls, images: np.ndarray, config: IGPTConfig, seed: int = 0,
                  palette: torch.Tensor | None = None) -> "IGPT":
        """A fresh model whose palette is k-means fitted on uint8 ``(N, H, W, 3)`` images, or
        is ``palette`` when given (a resumed run's: a refit matches it only on the same
        machine and library versions)."""
        if palette is None:
            images = np.asarray(images)
            if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
                raise PixseqError(f"palette fitting needs uint8 (N, H, W, 3) images, got {images.dtype} {images.shape}")
        with torch.random.fork_rng(devices=[]):  # initial weights follow `seed`; global RNG untouched
            torch.manual_seed(seed)
            model = cls(config)
        model.tokenizer.set_palette(fit_palette(images.reshape(-1, 3), config.palette_size, seed=seed)
                                    if palette is None else palette)
        return model

    # ------------------------------------------------------------ conveniences
    @property
    def device(self) -> torch.device:
        return self.tokenizer.palette.device

    def encode_uint8(self, images: np.ndarray) -> torch.Tensor:
        """uint8 ``(N, H, W, 3)`` images of the model's size -> ``(N, H*W)`` long tokens."""
        images = np.asarray(images)
        if images.ndim != 4 or tuple(images.shape[1:3]) != self.image_size:
            raise PixseqError(f"images must be {self.image_size[1]}x{self.image_size[0]} for this model, "
                              f"got shape {images.shape} (N, H, W, 3)")
        x = to_tensor(images)  # (N, 3, H, W)
        return self.tokenizer.encode(x.to(self.device)).flatten(1)  # (N, H, W) -> (N, H*W)

    def _cond(self, labels: torch.Tensor | Sequence[int | str] | int | str | None, num: int) -> torch.Tensor | None:
        if not self.num_classes:
            if labels is not None:
                raise PixseqError("this model is unconditional; it takes no class")
            return None
        if labels is None:
            raise PixseqError(f"this model is class-conditional: give a class in 0..{self.num_classes - 1}")
        labels = class_labels(self, labels).to(self.device)  # ids, or names when the model stores them
        if labels.numel() == 1:
            labels = labels.expand(num)
        if labels.numel() != num:  # told apart from a bad id: "class must be in 0..K-1" misled here
            raise PixseqError(f"give one class for all {num} images or one per image, got {labels.numel()} classes")
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise PixseqError(f"class must be in 0..{self.num_classes - 1}")
        return labels[:, None]  # (num, 1)

    @torch.no_grad()
    def generate(self, num: int, labels=None, prefix: torch.Tensor | None = None, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample ``num`` images ``(num, 3, H, W)`` in [0, 1]; ``prefix`` ``(num, P)`` tokens are kept.

        ``labels`` (class-conditional models): one class for all, or one per image, as ids
        ``0..num_classes-1`` or, for a model loaded from a directory that stores class names,
        as names (``"Sneaker"``, case-insensitive).
        """
        H, W = self.image_size
        tokens = sample(self.prior, num, H * W, cond=self._cond(labels, num), prefix=prefix,
                        temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
        return self.tokenizer.decode(tokens.view(num, H, W))

    @torch.no_grad()
    def complete(self, images: torch.Tensor, keep_rows: int, num: int = 1, labels=None, **sampling) -> torch.Tensor:
        """Keep the top ``keep_rows`` rows of ``(B, 3, H, W)`` images and sample the rest,
        ``num`` times each: returns ``(B * num, 3, H, W)`` (completions of image 0 first).

        ``labels`` (class-conditional models): one class for all, one per image (used for
        each of its completions) or one per completion, as :meth:`generate` takes them."""
        H, W = self.image_size
        if images.shape[1:] != (3, H, W):
            raise PixseqError(f"images must be (B, 3, {H}, {W}) for this model, got {tuple(images.shape)}")
        check_keep_rows(keep_rows, H)
        tokens = self.tokenizer.encode(images.to(self.device)).flatten(1)  # (B, H*W)
        prefix = tokens[:, : keep_rows * W].repeat_interleave(num, dim=0)  # (B*num, P)
        labels = completion_labels(self, labels, images.size(0), num)
        return self.generate(prefix.size(0), labels, prefix=prefix, **sampling)

    @torch.no_grad()
    def pooled_features(self, tokens: torch.Tensor, labels=None) -> list[torch.Tensor]:
        """Average-pooled features per layer (iGPT linear probe): ``n_layer + 1`` tensors ``(B, C)``."""
        cond = self._cond(labels, tokens.size(0))  # labels for an unconditional model are refused, as in generate
        return [f.mean(1) for f in self.prior.features(tokens.to(self.device), cond)]


class IGPTTokenDataset(Dataset):
    """Pre-tokenised images for training: items ``{"tokens": (H*W,) long, "label": () long}``.

    Images (uint8 ``(N, H, W, 3)``) are resized to the model's size when needed and encoded
    once, so an epoch costs no k-means lookups. Missing labels are -1.
    """

    def __init__(self, model: IGPT, images: np.ndarray | Sequence[np.ndarray], labels=None,
                 batch: int = 1024) -> None:
        from pixseq.data import resize_square

        images = resize_square(list(images), model.config.image_size)
        with torch.no_grad():
            chunks = [model.encode_uint8(images[i:i + batch]).cpu() for i in range(0, len(images), batch)]
        self.tokens = torch.cat(chunks) if chunks else torch.zeros(0, model.prior.config.block_size, dtype=torch.long)
        if labels is None:
            self.labels = torch.full((len(self.tokens),), -1, dtype=torch.long)
        else:
            self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long).reshape(-1)
            if len(self.labels) != len(self.tokens):
                raise PixseqError(f"{len(self.tokens)} images but {len(self.labels)} labels")
        if model.num_classes and len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= model.num_classes):
            raise PixseqError(f"a class-conditional model needs labels in 0..{model.num_classes - 1}")

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"tokens": self.tokens[i], "label": self.labels[i]}


class IGPTTask:
    """The Trainer's view of an iGPT: one optimizer ("model") over the prior's weights.

    The loss is the mean negative log-likelihood per pixel in nats; ``bits_per_pixel`` is
    the same in bits (iGPT reports bits per dimension = this / 3 for RGB).
    """

    def __init__(self, model: IGPT) -> None:
        self.model = model

    def parts(self) -> list[str]:
        return ["model"]

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def parameters(self, part: str) -> Iterable[nn.Parameter]:
        return self.model.prior.parameters()  # the palette is a fixed buffer, not trained

    def _cond(self, batch: dict) -> torch.Tensor | None:
        return batch["label"].long()[:, None] if self.model.num_classes else None

    def compile_targets(self) -> list[nn.Module]:
        return [self.model.prior]  # training_step calls the prior, not the IGPT wrapper

    def training_step(self, batch: dict, step: int, part: str) -> tuple[torch.Tensor, dict[str, float]]:
        loss = self.model.prior.loss(batch["tokens"], self._cond(batch))
        nats = loss.detach()  # logged as tensors: the Trainer reads them back once per step
        return loss, {"loss": nats, "bits_per_pixel": nats / float(np.log(2.0))}

    def eval_step(self, batch: dict) -> dict[str, float]:
        """Held-out loss: nats and bits per pixel (the iGPT paper's bits/dim is per *colour
        channel* of raw pixels; this is per palette token, one per pixel)."""
        loss = float(self.model.prior.loss(batch["tokens"], self._cond(batch)))
        return {"loss": loss, "bits_per_pixel": loss / float(np.log(2.0))}

    def count_tokens(self, batch: dict) -> int:
        return batch["tokens"].numel()

    def count_flops(self, batch: dict) -> float:
        """6N + 6LTC per position the blocks run on, conditioning included
        (:meth:`~pixseq.priors.gpt.GPT.flops_per_token`)."""
        return flops_per_batch(self.model.prior, batch["tokens"])

    @torch.no_grad()
    def sample_images(self, batch: dict, num: int = 4) -> torch.Tensor:
        """A few samples (class labels taken from the batch) for TensorBoard image grids."""
        was_training = self.model.training
        self.model.eval()
        labels = batch["label"][:num] if self.model.num_classes else None
        n = len(labels) if labels is not None else num
        images = self.model.generate(n, labels, generator=torch.Generator(self.model.device).manual_seed(0))
        self.model.train(was_training)
        return images
