"""Latent GPT of Taming Transformers: conditioning, sliding-window sampling, token completion."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from pixseq.checkpoint import from_pretrained, save_pretrained
from pixseq.errors import PixseqError
from pixseq.models.taming import Taming, conditioning_image, taming_config
from pixseq.priors.gpt import GPT, GPTConfig
from pixseq.priors.sampling import sample
from pixseq.priors.sliding import sliding_sample, sliding_sample_reference, window_for
from pixseq.tokenizers.vqgan import vqgan_config


def _prior(block=16, cond_len=1, cond_vocab=3) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=16, block_size=block, n_layer=2, n_head=2, n_embd=32,
                         cond_vocab_size=cond_vocab, cond_len=cond_len)).eval()


def _tiny_taming(**kw) -> Taming:
    torch.manual_seed(0)
    tok = vqgan_config(4, codes=16, dim=8, ch=8, kmeans_init=False)
    return Taming(taming_config(tok, (16, 16), size="s", n_layer=1, n_embd=32, n_head=2, **kw)).eval()


def test_window_for_holds_each_index_nearest_the_centre():
    for n, win, stride in [(8, 4, 2), (9, 4, 2), (7, 3, 1), (4, 4, 2)]:
        starts = window_for(n, win, stride)
        assert all(0 <= i - a < win and 0 <= a <= n - win for i, a in enumerate(starts))
        # interior indices sit within stride/2 of the centre (the lattice's best)
        assert all(abs(i - a - win // 2) <= stride // 2 + 1 for i, a in enumerate(starts) if win <= i < n - win)
    with pytest.raises(PixseqError, match="smaller"):
        window_for(3, 4, 2)


def test_sliding_equals_plain_sampling_when_grid_is_the_window():
    p = _prior()
    cond = torch.tensor([0, 2])
    a = sample(p, 2, 16, cond=cond, generator=torch.Generator().manual_seed(3))
    b = sliding_sample(p, 2, (4, 4), (4, 4), cond=cond, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.view(2, 4, 4), b)


@pytest.mark.parametrize("grid", [(6, 7), (8, 8), (9, 5)])
def test_cached_sliding_matches_full_window_recompute(grid):
    # the KV-cached lattice sampler must pick exactly the tokens of the definition:
    # the prior run over each token's window prefix (greedy, so no randomness)
    p = _prior()
    cond = torch.tensor([1, 2])
    fast = sliding_sample(p, 2, grid, (4, 4), cond=cond, greedy=True)
    assert torch.equal(fast, sliding_sample_reference(p, 2, grid, (4, 4), cond=cond))


def test_keep_mask_keeps_tokens_and_conditions_on_them():
    p = _prior(cond_len=0, cond_vocab=0)
    keep = torch.randint(0, 16, (2, 4, 4), generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[:2] = True
    out = sliding_sample(p, 2, (4, 4), (4, 4), keep=keep, keep_mask=mask, greedy=True)
    assert torch.equal(out[:, :2], keep[:, :2])
    ref = sample(p, 2, 16, prefix=keep[:, :2].reshape(2, 8), greedy=True)
    assert torch.equal(out.view(2, 16), ref)


def test_class_and_image_conditioning_shapes_and_errors():
    m = _tiny_taming(num_classes=3, condition="lowres")
    # 1 class token + the 2x2 codes of the 8x8 half-size image
    assert m.prior.config.cond_len == 1 + 4 and m.prior.config.cond_vocab_size == 3 + 16
    x = torch.rand(2, 3, 16, 16)
    cond = m.make_cond(2, [0, 2], x)
    assert cond.shape == (2, 5) and int(cond[:, 1:].min()) >= 3
    with pytest.raises(PixseqError, match="class index out of range"):
        m.make_cond(2, [0, 3], x)
    with pytest.raises(PixseqError, match="lowres"):
        m.make_cond(2, [0, 1], None)
    tokens = m.encode(x)
    logits = m.prior(tokens, cond)
    assert logits.shape == (2, 16, 16)  # target positions only: the loss never covers cond tokens
    assert torch.allclose(m.prior.loss(tokens, cond), F.cross_entropy(logits.flatten(0, 1), tokens.flatten()))
    other = m.make_cond(2, [0, 2], 1 - x)
    assert not torch.allclose(m.prior(tokens, other), logits)  # the image condition is used


def test_edges_view_is_a_sobel_map():
    x = torch.zeros(1, 3, 8, 8)
    x[..., 4:] = 1.0
    e = conditioning_image(x, "edges")
    assert e.shape == x.shape and float(e[0, 0, :, 0].max()) == 0 and float(e[0, 0, 2, 3:5].min()) > 0.9


def test_generate_sizes_and_inpainting_keep_region():
    m = _tiny_taming(num_classes=2)
    g = torch.Generator().manual_seed(0)
    assert m.generate(2, labels=1, generator=g).shape == (2, 3, 16, 16)
    assert m.generate(1, labels=0, size=(32, 24), generator=g).shape == (1, 3, 32, 24)
    with pytest.raises(PixseqError, match="smaller than the model's window"):
        m.generate(1, labels=0, size=(8, 16))
    x = torch.rand(1, 3, 16, 16)
    tokens = m.encode(x).view(1, 4, 4)
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[:, :2] = True  # keep the left half's codes
    out = m.generate_tokens(3, labels=[0, 1, 1], keep=tokens.expand(3, -1, -1), keep_mask=mask, generator=g)
    assert torch.equal(out[:, :, :2], tokens.expand(3, -1, -1)[:, :, :2])
    assert m.complete(x, keep_rows=8, num=2, labels=1).shape == (2, 3, 16, 16)
    for bad in (8.5, True, 16, -1):  # 8.5 passed the range check and failed as a slice TypeError
        with pytest.raises(PixseqError, match="keep_rows must be an integer in 0..15"):
            m.complete(x, keep_rows=bad, labels=1)


def test_labels_as_class_names(tmp_path):
    """make_cond / inpaint take stored class names (a name was a raw TypeError from torch)."""
    m = _tiny_taming(num_classes=2)
    with pytest.raises(PixseqError, match="labels must be integer class ids 0..1, got 'cat'"):
        m.generate(1, labels="cat")  # built in Python: no names stored
    save_pretrained(m, tmp_path / "t", meta={"class_names": ["cat", "dog"]})
    m = from_pretrained(tmp_path / "t", "taming")
    assert torch.equal(m.make_cond(2, ["Dog", 0]), torch.tensor([[1], [0]]))
    x = torch.rand(1, 3, 16, 16)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731 - same draws for both spellings
    assert torch.equal(m.complete(x, 8, num=2, labels="dog", generator=g()),
                       m.complete(x, 8, num=2, labels=1, generator=g()))
    with pytest.raises(PixseqError, match="'cow' is not a class index 0..1 or one of: cat, dog"):
        m.make_cond(1, "cow")


def test_taming_model_dir_roundtrip(tmp_path):
    m = _tiny_taming(num_classes=2)
    save_pretrained(m, tmp_path / "t")
    m2 = from_pretrained(tmp_path / "t", "taming")
    tokens = torch.randint(0, 16, (1, 16))
    cond = torch.tensor([[1]])
    assert torch.equal(m.prior(tokens, cond), m2.prior(tokens, cond))
    assert m2.image_size == (16, 16) and m2.num_classes == 2 and m2.tokenizer.vocab_size == 16


def test_config_json_whose_parts_disagree_is_one_error(tmp_path):
    # image_size edited without the prior's block_size: Taming(...) raised a raw ValueError
    d = save_pretrained(_tiny_taming(), tmp_path / "m")
    doc = json.loads((d / "config.json").read_text())
    doc["config"]["image_size"] = [2 * s for s in doc["config"]["image_size"]]
    (d / "config.json").write_text(json.dumps(doc))
    with pytest.raises(PixseqError, match="invalid taming config.*block_size"):
        from_pretrained(d)


def test_sliding_sample_checks_its_arguments_first():
    p = _prior()
    grid = torch.zeros(2, 4, 4, dtype=torch.long)
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[0] = True
    cases = [
        (dict(cond=torch.tensor([3, 0])), "cond holds ids outside 0..2"),  # was an IndexError
        (dict(cond=torch.tensor([0, 1]), top_p=1.5), "top_p"),  # was silently ignored
        (dict(cond=torch.tensor([0, 1]), keep=grid - 1, keep_mask=mask), "keep holds ids"),
        (dict(cond=torch.tensor([0, 1]), keep=grid), "keep needs keep_mask"),  # keep was dropped silently
        (dict(cond=torch.tensor([0, 1]), keep=grid, keep_mask=mask[:2]), "keep_mask must be 4x4"),
    ]
    for kwargs, pattern in cases:
        with pytest.raises(PixseqError, match=pattern):
            sliding_sample(p, 2, (4, 4), (4, 4), **kwargs)
    with torch.no_grad():
        p.lm_head.weight.fill_(float("nan"))
    with pytest.raises(PixseqError, match="non-finite logits"):
        sliding_sample(p, 2, (6, 6), (4, 4), cond=torch.tensor([0, 1]))


def test_generate_checks_num_prefix_and_conditioning_image_size():
    """num=0 and a prefix longer than the grid were raw RuntimeErrors from torch; conditioning
    images of another size were encoded as they were (other codes, no error)."""
    m = _tiny_taming(num_classes=2)
    with pytest.raises(PixseqError, match="num must be an integer >= 1"):
        m.generate(0, labels=1)
    with pytest.raises(PixseqError, match=r"prefix must be a \(num=2, P\) tensor of codes with P <= 16"):
        m.generate(2, labels=1, prefix=torch.zeros(2, 17, dtype=torch.long))
    with pytest.raises(PixseqError, match="prefix holds ids outside 0..15"):
        m.generate(2, labels=1, prefix=torch.full((2, 3), 16))
    prefix = torch.randint(0, 16, (1, 6), generator=torch.Generator().manual_seed(0))
    keep, mask = m._prefix_keep(prefix, 2, (4, 4))  # what generate(prefix=...) samples with
    out = m.generate_tokens(2, labels=1, keep=keep, keep_mask=mask)
    assert torch.equal(out.view(2, 16)[:, :6], prefix.expand(2, -1))  # one prefix row serves every sample
    m = _tiny_taming(condition="lowres")
    with pytest.raises(PixseqError, match=r"conditioning images must be 16x16 for this model, got 18x18"):
        m.generate(1, cond_images=torch.rand(1, 3, 18, 18))
