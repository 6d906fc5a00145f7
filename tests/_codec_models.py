"""Tiny tokenizer+prior models shared by the codec tests (built in memory, seeded)."""
from __future__ import annotations

import numpy as np
import torch

from pixseq.models.igpt import IGPT, IGPTConfig
from pixseq.priors.gpt import gpt_config


def tiny_igpt(size: int = 8, palette: int = 16, num_classes: int = 0, seed: int = 0) -> IGPT:
    """A random iGPT with a random palette: 2 layers, width 32 — milliseconds per step."""
    torch.manual_seed(seed)
    model = IGPT(IGPTConfig(palette_size=palette, image_size=size, num_classes=num_classes,
                            gpt=gpt_config("s", n_layer=2, n_head=2, n_embd=32)))
    model.tokenizer.set_palette(torch.rand(palette, 3, generator=torch.Generator().manual_seed(seed)))
    return model.eval()


def sample_image(h: int = 19, w: int = 13, seed: int = 0) -> np.ndarray:
    """A smooth-ish random uint8 image of an awkward size (not a multiple of any tile)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([yy * 255 / max(h - 1, 1), xx * 255 / max(w - 1, 1), (yy + xx) * 127 / max(h + w - 2, 1)], -1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def tiny_taming(seed: int = 0, num_classes: int = 0):
    """A random VQGAN (factor 4, 32 codes) + latent GPT on 16x16 images: a 4x4 token grid per tile."""
    from dataclasses import replace

    from pixseq.models.taming import Taming, taming_config
    from pixseq.tokenizers.vqgan import vqgan_config

    torch.manual_seed(seed)
    tok = replace(vqgan_config(factor=4, codes=32, dim=8, ch=16), norm_groups=8)
    cfg = taming_config(tok, (16, 16), num_classes=num_classes, n_layer=1, n_head=2, n_embd=32)
    return Taming(cfg).eval()
