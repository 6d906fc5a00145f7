"""The model zoo's machinery on a zoo made here: names wherever a model directory is accepted,
checksums verified at load, models built on first use, the `pixseq models` verb."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import pixseq
from pixseq import zoo
from pixseq.checkpoint import save_pretrained
from pixseq.cli import main
from pixseq.errors import PixseqError
from pixseq.zoo import build


@pytest.fixture
def fake_zoo(tmp_path, monkeypatch):
    root = tmp_path / "zoo"
    root.mkdir()
    for mod in (zoo, build):
        monkeypatch.setattr(mod, "ZOO_ROOT", root)
        monkeypatch.setattr(mod, "INDEX_PATH", root / "index.json")
    monkeypatch.setenv("PIXSEQ_ZOO_CACHE", str(tmp_path / "cache"))
    zoo._VERIFIED.clear()
    return root


def _igpt(tmp_path):
    from pixseq.models.igpt import IGPT, IGPTConfig
    from pixseq.priors.gpt import gpt_config

    torch.manual_seed(0)
    images = np.random.default_rng(0).integers(0, 255, (8, 8, 8, 3), dtype=np.uint8)
    model = IGPT.from_data(images, IGPTConfig(palette_size=4, image_size=8, num_classes=2,
                                              gpt=gpt_config("s", n_layer=1, n_embd=16, n_head=2)), seed=0)
    save_pretrained(model, tmp_path / "src", meta={"class_names": ["a", "b"]})
    return tmp_path / "src"


def test_a_zoo_model_loads_by_name_with_its_card(fake_zoo, tmp_path, capsys):
    build.add_model(_igpt(tmp_path), "tiny", "a tiny iGPT", "pixseq train igpt ...", "random", {"bits/pixel": 1.9})
    for name in ("zoo:tiny", "tiny"):
        model = pixseq.load_model(name)
        assert model.kind == "igpt" and model.pretrained_meta["class_names"] == ["a", "b"]
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "zoo:tiny" in out and "igpt" in out and "a tiny iGPT" in out
    assert main(["models", "tiny"]) == 0
    assert "bits/pixel: 1.9" in capsys.readouterr().out


def test_fp16_weights_load_into_the_float32_model(fake_zoo, tmp_path):
    src = _igpt(tmp_path)
    build.add_model(src, "half", "fp16", "", "", {}, fp16=True)
    full, half = pixseq.load_model(src), pixseq.load_model("zoo:half")
    assert (fake_zoo / "half" / "model.safetensors").stat().st_size < (src / "model.safetensors").stat().st_size * 0.6
    for (k, a), b in zip(full.state_dict().items(), half.state_dict().values()):
        assert b.dtype == a.dtype, k  # float16 on disk, float32 in the model
        # float16 keeps 11 significant bits: relative error <= 2^-11 of each weight
        assert torch.allclose(a.float(), b.float(), rtol=2 ** -11, atol=1e-7), k


def test_a_damaged_copy_is_refused(fake_zoo, tmp_path):
    build.add_model(_igpt(tmp_path), "tiny", "t", "", "", {})
    weights = fake_zoo / "tiny" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(PixseqError, match="does not match its checksum"):
        pixseq.load_model("zoo:tiny")
    with pytest.raises(PixseqError, match="no model 'nope' in the pixseq zoo"):
        pixseq.load_model("zoo:nope")
    with pytest.raises(PixseqError, match="model directory not found"):  # a bare unknown name is a path
        pixseq.load_model("nope")


def test_a_provided_model_is_built_once_on_first_use(fake_zoo, tmp_path, monkeypatch):
    import sys
    import types

    src = _igpt(tmp_path)
    calls = []
    provider = types.ModuleType("fake_provider")

    def build_zoo_model(name, dest):
        calls.append(name)
        save_pretrained(pixseq.load_model(src), dest)

    provider.build_zoo_model = build_zoo_model
    monkeypatch.setitem(sys.modules, "fake_provider", provider)
    save_pretrained(pixseq.load_model(src), tmp_path / "expected")
    files = {f: zoo.sha256_file(tmp_path / "expected" / f) for f in zoo.HASHED}
    build.add_provided("made", "igpt", "made on first use", "fake_provider", files)
    assert pixseq.load_model("zoo:made").kind == "igpt"
    assert pixseq.load_model("zoo:made").kind == "igpt"
    assert calls == ["made"]


def test_compress_records_a_zoo_model_by_name(fake_zoo, tmp_path, capsys):
    from pixseq.io import save_image

    build.add_model(_igpt(tmp_path), "tiny", "t", "", "", {})
    save_image(np.full((8, 8, 3), 128, np.uint8), tmp_path / "a.png")
    assert main(["compress", str(tmp_path / "a.png"), "--model", "zoo:tiny", "--out", str(tmp_path / "a.pxs"),
                 "--label", "0"]) == 0
    from pixseq.codec import read_header

    assert read_header((tmp_path / "a.pxs").read_bytes()).model_path == "zoo:tiny"
    capsys.readouterr()
    assert main(["decompress", str(tmp_path / "a.pxs"), "--out", str(tmp_path / "b.png")]) == 0
    assert "zoo:tiny" in capsys.readouterr().err


def test_the_index_refuses_oversized_models(fake_zoo, tmp_path, monkeypatch):
    monkeypatch.setattr(build, "MAX_MODEL_BYTES", 1000)
    with pytest.raises(PixseqError, match="over the zoo's"):
        build.add_model(_igpt(tmp_path), "big", "b", "", "", {})
    assert not (fake_zoo / "index.json").exists() and sorted(p.name for p in fake_zoo.iterdir()) == []
