"""Hugging Face ImageGPT -> pixseq: a tiny random HF model must give the same logits and samples."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pixseq.checkpoint import from_pretrained, save_pretrained
from pixseq.convert.hf_imagegpt import convert_hf_imagegpt
from pixseq.errors import PixseqError
from pixseq.priors.sampling import sample

transformers = pytest.importorskip("transformers", reason="transformers is the reference implementation")

K, SIDE = 16, 4  # palette size, image side (16 positions)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.ImageGPTConfig(vocab_size=K + 1, n_positions=SIDE * SIDE, n_embd=32, n_layer=2, n_head=4,
                                      attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0)
    model = transformers.ImageGPTForCausalImageModeling(cfg).eval()
    with torch.no_grad():  # HF inits norms to 1 and biases to 0; randomise all so every tensor matters
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("hf")
    model.save_pretrained(path)
    clusters = np.random.default_rng(0).uniform(-1, 1, (K, 3))
    (path / "preprocessor_config.json").write_text(json.dumps({"clusters": clusters.tolist()}))
    return path, model, clusters


def test_logits_match(hf_dir):
    path, hf, clusters = hf_dir
    model = convert_hf_imagegpt(path)
    assert model.image_size == (SIDE, SIDE) and model.prior.config.vocab_size == K
    tokens = torch.randint(0, K, (3, SIDE * SIDE))
    sos = torch.full((3, 1), K)  # HF's start-of-sequence id = vocab_size - 1
    with torch.no_grad():
        want = hf(torch.cat([sos, tokens[:, :-1]], 1)).logits
        got = model.prior(tokens)
    # same float32 math in a different order (fused SDPA vs explicit softmax): ~1e-7 error
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.tokenizer.palette, torch.from_numpy((clusters + 1) / 2).float())


def test_greedy_samples_match(hf_dir):
    path, hf, _ = hf_dir
    model = convert_hf_imagegpt(path)
    with torch.no_grad():
        prefix = torch.tensor([[1, 5, 9], [12, 0, 3], [7, 7, 7]])  # different rows -> different completions
        ids = torch.cat([torch.full((3, 1), K), prefix], 1)
        # an explicit mask: otherwise generate() may take the SOS id for padding and mask it
        want = hf.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_length=SIDE * SIDE + 1,
                           do_sample=False)[:, 1:]
    got = sample(model.prior, 3, SIDE * SIDE, prefix=prefix, greedy=True)
    assert len({tuple(r) for r in got.tolist()}) == 3
    assert torch.equal(got, want)


def test_in_memory_model_and_round_trip(hf_dir, tmp_path):
    path, hf, clusters = hf_dir
    model = convert_hf_imagegpt(hf, clusters=clusters)
    save_pretrained(model, tmp_path / "m")
    loaded = from_pretrained(tmp_path / "m", expected_kind="igpt")
    tokens = torch.randint(0, K, (1, 16))
    assert torch.equal(loaded.prior(tokens), model.prior(tokens))
    smaller = convert_hf_imagegpt(path, image_size=3)  # first 9 positions of the same model
    torch.testing.assert_close(smaller.prior(tokens[:, :9]), model.prior(tokens)[:, :9])


def test_bad_checkpoints(hf_dir, tmp_path):
    path, hf, clusters = hf_dir
    with pytest.raises(PixseqError, match="palette"):
        convert_hf_imagegpt(hf)  # no clusters anywhere
    with pytest.raises(PixseqError, match="no config.json"):
        convert_hf_imagegpt(tmp_path)
    state = {k: v for k, v in hf.state_dict().items() if k != "transformer.h.1.mlp.c_fc.bias"}
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((path / "config.json").read_text())
    (broken / "preprocessor_config.json").write_text((path / "preprocessor_config.json").read_text())
    torch.save(state, broken / "pytorch_model.bin")
    with pytest.raises(PixseqError, match="h.1.mlp.c_fc.bias"):
        convert_hf_imagegpt(broken)
    state["transformer.h.1.mlp.c_fc.bias"] = torch.zeros(3)
    torch.save(state, broken / "pytorch_model.bin")
    with pytest.raises(PixseqError, match="shape"):
        convert_hf_imagegpt(broken)
