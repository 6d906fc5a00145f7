"""Palette tokenizer: nearest-colour encoding and seeded k-means palettes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pixseq.errors import PixseqError
from pixseq.models.base import Tokenizer
from pixseq.tokenizers.palette import PaletteTokenizer, fit_palette


def test_encode_is_nearest_colour_float64_bruteforce():
    tok = PaletteTokenizer(40)
    tok.set_palette(torch.rand(40, 3, generator=torch.Generator().manual_seed(0)))
    images = torch.rand(3, 3, 9, 7)
    got = tok.encode(images, chunk=50)  # several chunks
    pix = images.permute(0, 2, 3, 1).double()[..., None, :]  # (B, H, W, 1, 3)
    want = ((pix - tok.palette.double()) ** 2).sum(-1).argmin(-1)
    # ties have probability ~0 for random floats; the expanded |p|^2-2pc+|c|^2 form in
    # float32 could only flip a near-tie (< 1e-6 apart), which random data does not produce
    assert torch.equal(got, want)
    assert got.shape == (3, 9, 7) and got.dtype == torch.long
    assert isinstance(tok, Tokenizer) and tok.grid_size(9, 7) == (9, 7) and tok.vocab_size == 40


def test_decode_inverts_encode_on_palette_colours():
    tok = PaletteTokenizer(16)
    tok.set_palette(torch.rand(16, 3, generator=torch.Generator().manual_seed(1)))
    tokens = torch.randint(0, 16, (2, 5, 4))
    images = tok.decode(tokens)
    assert images.shape == (2, 3, 5, 4)
    assert torch.equal(tok.encode(images), tokens)
    with pytest.raises(ValueError):
        tok.set_palette(torch.rand(15, 3))


def test_fit_palette_recovers_clusters_and_is_seeded():
    rng = np.random.default_rng(0)
    centres = np.array([[20, 20, 20], [230, 30, 40], [30, 200, 60], [240, 240, 240]], dtype=np.float64)
    pixels = np.clip(centres[rng.integers(0, 4, 20000)] + rng.normal(0, 4, (20000, 3)), 0, 255).astype(np.uint8)
    pal = fit_palette(pixels, k=4, seed=3)
    assert pal.shape == (4, 3) and pal.dtype == torch.float32
    # each true centre has a palette entry within 3/255 (noise std 4 averaged over ~5000 px)
    dist = np.abs(pal.numpy()[:, None] * 255 - centres[None]).max(-1).min(0)
    assert dist.max() < 3.0
    assert torch.equal(pal, fit_palette(pixels, k=4, seed=3))
    big = 2**63 - 1  # the largest --seed: scikit-learn's random_state refused it (a traceback)
    assert torch.equal(fit_palette(pixels, k=4, seed=big), fit_palette(pixels, k=4, seed=big))
    luma = pal @ torch.tensor([0.299, 0.587, 0.114])
    assert torch.all(luma[1:] >= luma[:-1])  # sorted dark to bright


def test_fit_palette_with_few_colours_is_exact():
    pixels = np.array([[0, 0, 0], [255, 255, 255], [10, 20, 30]] * 50, dtype=np.uint8)
    pal = fit_palette(pixels, k=8)
    assert {tuple(np.round(c * 255).astype(int)) for c in pal.numpy()} == {(0, 0, 0), (255, 255, 255), (10, 20, 30)}
    tok = PaletteTokenizer(8)
    tok.set_palette(pal)
    img = torch.from_numpy(pixels[:3].reshape(1, 1, 3, 3)).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(tok.decode(tok.encode(img)), img, atol=1e-6, rtol=0)


def test_fit_palette_bad_input():
    with pytest.raises(PixseqError):
        fit_palette(np.zeros((10, 4), dtype=np.uint8))
    with pytest.raises(PixseqError):
        fit_palette(np.zeros((0, 3), dtype=np.uint8))


@pytest.mark.parametrize("images, pattern", [
    (torch.randint(0, 256, (1, 3, 4, 4), dtype=torch.uint8), "float"),
    (torch.rand(1, 3, 4, 4) * 255, r"in \[0, 1\]"),  # used to map every pixel to the brightest colour
    (torch.rand(1, 3, 4, 4) * 2 - 1, r"in \[0, 1\]"),
    (torch.full((1, 3, 2, 2), float("nan")), r"in \[0, 1\]"),  # used to give token 0
    (torch.rand(1, 4, 4, 3), r"\(B, 3, H, W\)"),
])
def test_encode_rejects_images_outside_the_convention(images, pattern):
    with pytest.raises(PixseqError, match=pattern):
        PaletteTokenizer(8).encode(images)


@pytest.mark.parametrize("tokens, pattern", [
    (torch.tensor([[[-1]]]), r"0..7"),  # used to index from the end: a silent wrong colour
    (torch.tensor([[[8]]]), r"0..7"),  # was a raw IndexError
    (torch.tensor([[[1.0]]]), "integer"),
    (torch.tensor([[1, 2]]), r"\(B, h, w\)"),
])
def test_decode_rejects_bad_token_grids(tokens, pattern):
    with pytest.raises(PixseqError, match=pattern):
        PaletteTokenizer(8).decode(tokens)
