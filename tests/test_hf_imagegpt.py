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
    assert convert_hf_imagegpt(path, image_size=SIDE).image_size == (SIDE, SIDE)  # the one side that fits


@pytest.mark.parametrize("size, words", [
    # a smaller side took the first side*side position embeddings with another row width (a
    # broken raster); 0 meant "the default"; negatives were a ValueError traceback
    (3, ["image size 3", "9 pixels", f"{SIDE * SIDE} positions", f"use {SIDE}"]),
    (5, ["image size 5", "25 pixels", f"{SIDE * SIDE} positions"]),
    (0, ["positive integer"]),
    (-3, ["positive integer"]),
])
def test_image_size_must_cover_exactly_the_positions(hf_dir, size, words):
    path, _, _ = hf_dir
    with pytest.raises(PixseqError) as info:
        convert_hf_imagegpt(path, image_size=size)
    for w in words:
        assert w in str(info.value)


def _hf_dir_with(tmp_path, path, **changes):
    """A copy of the test checkpoint's folder whose config.json has ``changes`` (weights unread)."""
    bad = tmp_path / "bad"
    bad.mkdir(parents=True)
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(changes)
    (bad / "config.json").write_text(json.dumps(cfg))
    return bad


def test_configs_pixseq_cannot_build_are_one_error(hf_dir, tmp_path):
    path, _, _ = hf_dir
    # no weights file in these folders: the config is refused before any weights are read
    with pytest.raises(PixseqError, match="50 positions, not a square number") as info:
        convert_hf_imagegpt(_hf_dir_with(tmp_path / "a", path, n_positions=50))
    assert "7x7" not in str(info.value)  # named a size the user never gave
    with pytest.raises(PixseqError, match="does not match the checkpoint's 50 positions"):
        convert_hf_imagegpt(_hf_dir_with(tmp_path / "b", path, n_positions=50), image_size=7)
    # IGPTConfig's ValueErrors (one colour; a side over 256), GPTConfig's (heads): one PixseqError
    with pytest.raises(PixseqError, match="palette_size must be >= 2"):
        convert_hf_imagegpt(_hf_dir_with(tmp_path / "c", path, vocab_size=2))
    with pytest.raises(PixseqError, match="image_size 1..256"):
        convert_hf_imagegpt(_hf_dir_with(tmp_path / "d", path, n_positions=257 * 257))
    with pytest.raises(PixseqError, match="divisible by n_head"):
        convert_hf_imagegpt(_hf_dir_with(tmp_path / "e", path, n_head=5))


@pytest.mark.parametrize("safe", [True, False])
def test_sharded_checkpoints(hf_dir, tmp_path, safe):
    """transformers saves big models in shards + an index (model.safetensors.index.json or
    pytorch_model.bin.index.json); the conversion merges them into the same model."""
    path, hf, _ = hf_dir
    sh = tmp_path / "sh"
    if safe:
        hf.save_pretrained(sh, max_shard_size="20KB")
        index = sh / "model.safetensors.index.json"
    else:  # transformers 5 writes only safetensors; older ones wrote this layout
        sh.mkdir()
        (sh / "config.json").write_text((path / "config.json").read_text())
        state = hf.state_dict()
        names = [f"pytorch_model-{i:05d}-of-00003.bin" for i in (1, 2, 3)]
        weight_map = {k: names[i % 3] for i, k in enumerate(state)}
        for name in names:
            torch.save({k: v for k, v in state.items() if weight_map[k] == name}, sh / name)
        index = sh / "pytorch_model.bin.index.json"
        index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (sh / "preprocessor_config.json").write_text((path / "preprocessor_config.json").read_text())
    shards = set(json.loads(index.read_text())["weight_map"].values())
    assert len(shards) > 1
    got, want = convert_hf_imagegpt(sh).state_dict(), convert_hf_imagegpt(path).state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    (sh / sorted(shards)[-1]).unlink()
    with pytest.raises(PixseqError, match="missing shard"):
        convert_hf_imagegpt(sh)
    index.write_text(json.dumps({"weight_map": {"x": "../elsewhere.safetensors"}}))
    with pytest.raises(PixseqError, match="inside"):
        convert_hf_imagegpt(sh)


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


@pytest.mark.parametrize("file, text, words", [
    # each was a traceback (JSONDecodeError, numpy's ValueError, AttributeError on a list, ...)
    ("preprocessor_config.json", "{bad", ["corrupt", "preprocessor_config.json"]),
    ("preprocessor_config.json", '{"clusters": "abc"}', ["'clusters' is not a K x 3 table"]),
    ("preprocessor_config.json", '{"clusters": [[1, 2], [3]]}', ["'clusters' is not a K x 3 table"]),
    ("config.json", "[1]", ["corrupt", "not a JSON object"]),
    ("config.json", {"n_inner": "abc"}, ["mistypes"]),
    ("config.json", {"layer_norm_epsilon": "x"}, ["mistypes"]),
    ("config.json", {"activation_function": ["x"]}, ["unsupported ImageGPT activation"]),
])
def test_malformed_json_files_are_one_error(hf_dir, tmp_path, file, text, words):
    path, _, _ = hf_dir
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("config.json", "preprocessor_config.json", "model.safetensors"):
        (bad / name).write_bytes((path / name).read_bytes())
    if isinstance(text, dict):  # changes to the good config
        text = json.dumps({**json.loads((path / file).read_text()), **text})
    (bad / file).write_text(text)
    with pytest.raises(PixseqError) as info:
        convert_hf_imagegpt(bad)
    assert all(w in str(info.value) for w in words), info.value


def test_non_finite_palette_is_refused(hf_dir):
    """A NaN colour made every nearest-colour search wrong without a word."""
    _, hf, clusters = hf_dir
    bad = clusters.copy()
    bad[3, 1] = np.nan
    with pytest.raises(PixseqError, match="non-finite"):
        convert_hf_imagegpt(hf, clusters=bad)
