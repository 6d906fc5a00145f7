"""Taming Transformers: a VQGAN tokenizer + a GPT prior over its code indices.

Esser, Rombach & Ommer, "Taming Transformers for High-Resolution Image Synthesis" (2021).
Images become ``h x w`` grids of codebook indices (:mod:`pixseq.tokenizers.vqgan`); a GPT
(:mod:`pixseq.priors.gpt`) models the row-major index sequence. Conditioning tokens are
prepended and the loss covers only the target tokens:

* class-conditional: one class token;
* image-conditional: the codes of a conditioning image — a half-resolution copy
  (``"lowres"``) or a Sobel edge map (``"edges"``) of the target — from a second tokenizer
  (by default the model's own VQGAN), offset by ``num_classes`` in the conditioning vocabulary.

Grids larger than the training grid are sampled with the sliding window
(:mod:`pixseq.priors.sliding`); completion/inpainting keeps a region's codes and samples
the rest. The model directory is self-contained: tokenizer and prior weights live in one
``model.safetensors``; ``meta["tokenizer_id"]`` names the tokenizer it was trained with.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pixseq.errors import PixseqError
from pixseq.io import to_tensor
from pixseq.models.base import check_keep_rows, check_token_ids, class_labels, completion_labels
from pixseq.priors.gpt import GPT, GPTConfig, gpt_config
from pixseq.priors.sampling import check_num
from pixseq.priors.sliding import sliding_sample
from pixseq.registry import register
from pixseq.tokenizers.vqgan import VQGAN, VQGANConfig

CONDITIONS = ("", "lowres", "edges")


@dataclass
class TamingConfig:
    """A tokenizer, a prior over its codes, and what the prior is conditioned on."""

    tokenizer: VQGANConfig = field(default_factory=VQGANConfig)
    prior: GPTConfig = field(default_factory=GPTConfig)
    image_size: tuple[int, int] = (28, 28)
    num_classes: int = 0
    condition: str = ""  # "", "lowres" or "edges"
    cond_tokenizer: VQGANConfig | None = None  # None: the main tokenizer encodes the condition

    def __post_init__(self) -> None:
        if self.condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {CONDITIONS}, got {self.condition!r}")
        self.image_size = tuple(self.image_size)


def conditioning_image(images: torch.Tensor, kind: str) -> torch.Tensor:
    """The conditioning view of ``(B, 3, H, W)`` images in [0, 1]: half-size copy or edge map."""
    if kind == "lowres":
        return F.avg_pool2d(images, 2, ceil_mode=True)  # (B, 3, H/2, W/2)
    if kind == "edges":
        grey = images.mean(1, keepdim=True)  # (B, 1, H, W)
        kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=images.device) / 4
        gx = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kx.view(1, 1, 3, 3))
        gy = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kx.t().reshape(1, 1, 3, 3))
        return (gx.pow(2) + gy.pow(2)).sqrt().clamp(0, 1).expand(-1, 3, -1, -1)
    raise PixseqError(f"unknown condition {kind!r} (use lowres or edges)")


def _cond_grid(tok: VQGANConfig, image_size: tuple[int, int], condition: str) -> tuple[int, int]:
    f = tok.factor
    H, W = image_size
    if condition == "lowres":
        H, W = -(-H // 2), -(-W // 2)
    return -(-H // f), -(-W // f)


def taming_config(tokenizer: VQGANConfig, image_size: tuple[int, int], num_classes: int = 0,
                  condition: str = "", size: str = "s", cond_tokenizer: VQGANConfig | None = None,
                  **gpt_overrides) -> TamingConfig:
    """A consistent :class:`TamingConfig`: the prior's vocabulary, length and conditioning
    follow from the tokenizer, the image size, the classes and the condition."""
    f = tokenizer.factor
    h, w = -(-image_size[0] // f), -(-image_size[1] // f)
    cond_len, cond_vocab = (1, num_classes) if num_classes else (0, 0)
    if condition:
        ch, cw = _cond_grid(cond_tokenizer or tokenizer, image_size, condition)
        cond_len += ch * cw
        cond_vocab += (cond_tokenizer or tokenizer).quantizer.num_codes
    gpt = gpt_config(size, vocab_size=tokenizer.quantizer.num_codes, block_size=h * w,
                     cond_len=cond_len, cond_vocab_size=cond_vocab, **gpt_overrides)
    return TamingConfig(tokenizer, gpt, tuple(image_size), num_classes, condition, cond_tokenizer)


@register("taming", TamingConfig, "VQGAN tokenizer + GPT prior over its codes (Taming Transformers)")
class Taming(nn.Module):
    """VQGAN + latent GPT: sampling (any size), class/image conditioning, token-space completion."""

    def __init__(self, config: TamingConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = VQGAN(config.tokenizer)
        self.prior = GPT(config.prior)
        self.cond_tokenizer = VQGAN(config.cond_tokenizer) if config.cond_tokenizer is not None else None
        self.image_size = tuple(config.image_size)
        self.num_classes = config.num_classes
        self.grid = self.tokenizer.grid_size(*self.image_size)
        if self.grid[0] * self.grid[1] != config.prior.block_size:
            raise ValueError(f"prior block_size {config.prior.block_size} != token grid {self.grid}")

    @property
    def device(self) -> torch.device:
        return self.prior.lm_head.weight.device

    # ------------------------------------------------------------ encoding
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] at the model's size -> ``(B, h*w)`` code indices."""
        if tuple(images.shape[-2:]) != self.image_size:
            raise PixseqError(f"images must be {self.image_size[1]}x{self.image_size[0]} for this model, "
                              f"got {images.shape[-1]}x{images.shape[-2]}")
        return self.tokenizer.encode(images.to(self.device)).flatten(1)

    def condition_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Codes of the conditioning view of ``images``, offset past the class tokens: ``(B, Tc')``."""
        if tuple(images.shape[-2:]) != self.image_size:  # another size gives other codes (or a wrong count)
            raise PixseqError(f"conditioning images must be {self.image_size[1]}x{self.image_size[0]} for this "
                              f"model, got {images.shape[-1]}x{images.shape[-2]}")
        tok = self.cond_tokenizer or self.tokenizer
        view = conditioning_image(images.to(self.device), self.config.condition)
        return tok.encode(view).flatten(1) + self.num_classes

    def make_cond(self, num: int, labels=None, cond_images: torch.Tensor | None = None) -> torch.Tensor | None:
        """The prior's conditioning tokens ``(num, Tc)`` from class labels and/or conditioning images."""
        parts = []
        if self.num_classes:
            if labels is None:
                raise PixseqError(f"this model is class-conditional: give a class in 0..{self.num_classes - 1}")
            labels = class_labels(self, labels).to(self.device)  # ids, or names when the model stores them
            labels = labels.expand(num) if labels.numel() == 1 else labels
            if labels.numel() != num or int(labels.min()) < 0 or int(labels.max()) >= self.num_classes:
                raise PixseqError(f"class index out of range: this model has classes 0..{self.num_classes - 1}")
            parts.append(labels[:, None])
        elif labels is not None:
            raise PixseqError("this model is not class-conditional; it takes no class")
        if self.config.condition:
            if cond_images is None:
                raise PixseqError(f"this model is conditioned on {self.config.condition!r} images: give one per sample")
            codes = self.condition_tokens(cond_images)
            parts.append(codes.expand(num, -1) if codes.size(0) == 1 else codes)
        return torch.cat(parts, dim=1) if parts else None

    # ------------------------------------------------------------ generation
    def _token_grid(self, size: tuple[int, int] | None) -> tuple[int, int]:
        if size is None:
            return self.grid
        g = self.tokenizer.grid_size(*size)
        if g[0] < self.grid[0] or g[1] < self.grid[1]:
            raise PixseqError(f"--size {size[1]}x{size[0]} is smaller than the model's window "
                              f"{self.image_size[1]}x{self.image_size[0]}")
        return g

    @torch.no_grad()
    def generate_tokens(self, num: int, labels=None, size: tuple[int, int] | None = None,
                        cond_images: torch.Tensor | None = None, keep: torch.Tensor | None = None,
                        keep_mask: torch.Tensor | None = None, **sampling) -> torch.Tensor:
        """Sample ``(num, h, w)`` code grids (sliding window when ``size`` exceeds the training size)."""
        check_num(num)  # before the labels and conditioning images are matched to it
        grid = self._token_grid(size)
        if grid != self.grid and self.config.condition:
            raise PixseqError("larger-than-trained sampling supports unconditional and class-conditional models only")
        cond = self.make_cond(num, labels, cond_images)
        return sliding_sample(self.prior, num, grid, self.grid, cond=cond, keep=keep, keep_mask=keep_mask,
                              **sampling)

    @torch.no_grad()
    def generate(self, num: int, labels=None, prefix: torch.Tensor | None = None, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, generator: torch.Generator | None = None,
                 size: tuple[int, int] | None = None, cond_images: torch.Tensor | None = None) -> torch.Tensor:
        """Sample ``num`` images ``(num, 3, H, W)`` in [0, 1].

        ``prefix`` ``(num, P)``: row-major codes kept at the start; ``size``: output size in
        pixels (larger than the training size -> sliding window; cropped to ``size``).
        """
        check_num(num)
        grid = self._token_grid(size)
        keep, mask = self._prefix_keep(prefix, num, grid) if prefix is not None else (None, None)
        tokens = self.generate_tokens(num, labels, size, cond_images, keep, mask, temperature=temperature,
                                      top_k=top_k, top_p=top_p, generator=generator)
        images = self.tokenizer.decode(tokens)
        H, W = size or self.image_size
        return images[..., :H, :W]

    def _prefix_keep(self, prefix: torch.Tensor, num: int, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``prefix`` ``(num or 1, P)`` row-major codes -> keep tokens ``(num, h, w)`` and mask ``(h, w)``."""
        n = grid[0] * grid[1]
        if not isinstance(prefix, torch.Tensor) or prefix.dim() != 2 or prefix.size(0) not in (1, num) \
                or prefix.size(1) > n:
            shape = tuple(prefix.shape) if isinstance(prefix, torch.Tensor) else type(prefix).__name__
            raise PixseqError(f"prefix must be a (num={num}, P) tensor of codes with P <= {n} "
                              f"(the {grid[1]}x{grid[0]} grid), got {shape}")
        check_token_ids(prefix, self.tokenizer.vocab_size, "prefix")
        mask = torch.zeros(n, dtype=torch.bool)
        mask[: prefix.size(1)] = True
        keep = torch.zeros(num, n, dtype=torch.long, device=self.device)
        keep[:, : prefix.size(1)] = prefix.to(self.device)
        return keep.view(num, *grid), mask.view(grid)

    @torch.no_grad()
    def inpaint(self, images: torch.Tensor, keep_mask: torch.Tensor, num: int = 1, labels=None,
                **sampling) -> torch.Tensor:
        """Keep the codes whose pixels lie wholly inside ``keep_mask`` ``(H, W)`` bool and sample
        the rest, ``num`` times per image: ``(B * num, 3, H, W)`` (image 0's results first)."""
        B = images.size(0)
        tokens = self.encode(images).view(B, *self.grid).repeat_interleave(num, dim=0)
        f = self.tokenizer.factor
        m = self.tokenizer.pad(keep_mask.float()[None, None]).to(self.device)
        token_mask = F.avg_pool2d(m, f)[0, 0] > 0.999  # (h, w): every pixel of the code is kept
        labels = completion_labels(self, labels, B, num)
        cond_images = images.repeat_interleave(num, dim=0) if self.config.condition else None
        out = self.generate_tokens(B * num, labels, None, cond_images, tokens, token_mask, **sampling)
        return self.tokenizer.decode(out)[..., : self.image_size[0], : self.image_size[1]]

    @torch.no_grad()
    def complete(self, images: torch.Tensor, keep_rows: int, num: int = 1, labels=None, **sampling) -> torch.Tensor:
        """Keep the top ``keep_rows`` pixel rows (whole code rows inside them) and sample the rest."""
        H, W = self.image_size
        check_keep_rows(keep_rows, H)
        mask = torch.zeros(H, W, dtype=torch.bool)
        mask[:keep_rows] = True
        return self.inpaint(images, mask, num, labels, **sampling)


class TamingTokenDataset(torch.utils.data.Dataset):
    """Pre-encoded training items ``{"tokens": (T,), "cond": (Tc,), "label": ()}`` for the prior."""

    def __init__(self, model: Taming, images: Sequence[np.ndarray], labels=None, batch: int = 256) -> None:
        from pixseq.data import resize_square

        H, W = model.image_size
        if H != W:
            raise PixseqError("prior training data: only square image sizes are supported")
        arr = resize_square(list(images), H)
        from pixseq.runtime import progress

        toks, conds = [], []
        model.eval()
        # encoding a large set up front takes minutes on a CPU: say so (rank 0, terminals only)
        steps = progress(range(0, len(arr), batch), desc="encode", unit="batch")
        with torch.no_grad():
            for i in steps:
                x = to_tensor(arr[i:i + batch]).to(model.device)
                toks.append(model.encode(x).cpu())
                conds.append(model.condition_tokens(x).cpu() if model.config.condition else
                             torch.zeros(len(x), 0, dtype=torch.long))
        self.tokens, self.cond = torch.cat(toks), torch.cat(conds)
        n = len(self.tokens)
        self.labels = (torch.full((n,), -1, dtype=torch.long) if labels is None
                       else torch.as_tensor(np.asarray(labels), dtype=torch.long).reshape(-1)[:n])
        if model.num_classes and (labels is None or int(self.labels.min()) < 0
                                  or int(self.labels.max()) >= model.num_classes):
            raise PixseqError(f"--classes needs data with labels in 0..{model.num_classes - 1}")

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"tokens": self.tokens[i], "cond": self.cond[i], "label": self.labels[i]}


def batch_cond(model: Taming, batch: dict) -> torch.Tensor | None:
    """Conditioning tokens of a :class:`TamingTokenDataset` batch."""
    parts = []
    if model.num_classes:
        parts.append(batch["label"].long()[:, None])
    if model.config.condition:
        parts.append(batch["cond"].long())
    return torch.cat(parts, dim=1) if parts else None
