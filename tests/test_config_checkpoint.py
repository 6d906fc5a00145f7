"""pixseq.config (strict dataclass configs), pixseq.registry and pixseq.checkpoint (model dirs)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest
import torch
from torch import nn

from pixseq import checkpoint, registry
from pixseq.config import from_dict, load_config_file, to_dict
from pixseq.errors import PixseqError


@dataclass
class _Inner:
    width: int = 4
    scale: float = 1.0


@dataclass
class _TinyConfig:
    inner: _Inner = field(default_factory=_Inner)
    name: str = "tiny"
    sizes: tuple[int, ...] = (2, 3)
    bias: Optional[bool] = None
    grid: tuple[int, float] = (2, 0.5)


@registry.register("test-tiny", _TinyConfig)
class _Tiny(nn.Module):
    """A tiny linear model for checkpoint tests (tied weight + buffer)."""

    def __init__(self, config: _TinyConfig) -> None:
        super().__init__()
        self.config = config
        self.a = nn.Linear(config.inner.width, config.inner.width)
        self.b = nn.Linear(config.inner.width, config.inner.width, bias=False)
        self.b.weight = self.a.weight  # tied: safetensors needs de-duplication
        self.register_buffer("palette", torch.arange(6.0).reshape(2, 3))


def test_config_roundtrip_and_coercion():
    cfg = from_dict(_TinyConfig, {"inner": {"width": 8, "scale": 2}, "sizes": [1, 2, 3]})
    assert cfg.inner.width == 8 and isinstance(cfg.inner.scale, float) and cfg.sizes == (1, 2, 3)
    assert from_dict(_TinyConfig, {"grid": [3, 1]}).grid == (3, 1.0)  # a type per place, coerced
    assert from_dict(_TinyConfig, to_dict(cfg)) == cfg


@pytest.mark.parametrize("bad, pattern", [
    ({"nmae": "x"}, "unknown config key.*nmae"),
    ({"inner": {"widht": 3}}, "unknown config key.*inner.widht"),
    ({"inner": {"width": "8"}}, "inner.width' must be int"),
    ({"inner": {"width": True}}, "must be int"),
    ({"inner": {"width": 2.5}}, "must be int"),
    ({"sizes": 3}, "must be a list"),
    ({"sizes": [1, "a"]}, r"sizes\[1\]"),
    ({"bias": "yes"}, "bias"),
    ({"inner": 5}, "must be a mapping"),
    ({"grid": [1, 2, 3]}, "grid' must be a list of 2 items"),  # fixed-length tuples were any length
    ({"grid": [1]}, "grid' must be a list of 2 items"),
    ({"grid": [1.5, 2]}, r"grid\[0\]' must be int"),
])
def test_config_strict(bad, pattern):
    with pytest.raises(PixseqError, match=pattern):
        from_dict(_TinyConfig, bad)


def test_config_file(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"name": "x"}))
    assert load_config_file(tmp_path / "c.json") == {"name": "x"}
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PixseqError, match="cannot parse"):
        load_config_file(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(PixseqError, match="mapping"):
        load_config_file(tmp_path / "list.json")
    with pytest.raises(PixseqError, match="not found"):
        load_config_file(tmp_path / "none.json")


def test_registry_unknown_kind():
    with pytest.raises(PixseqError, match="unknown model kind 'nope'"):
        registry.get("nope")
    assert registry.get("test-tiny").cls is _Tiny
    model = registry.build("test-tiny", {"inner": {"width": 3}})
    assert model.a.in_features == 3


def test_save_from_pretrained_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = _Tiny(_TinyConfig(inner=_Inner(width=5), name="m"))
    checkpoint.save_pretrained(model, tmp_path / "m", meta={"steps": 3})
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    loaded = checkpoint.from_pretrained(tmp_path / "m", expected_kind="test-tiny")
    assert loaded.config == model.config and not loaded.training
    assert loaded.pretrained_meta == {"steps": 3}
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    x = torch.randn(2, 5)
    torch.testing.assert_close(loaded.b(loaded.a(x)), model.b(model.a(x)), rtol=0, atol=0)
    assert checkpoint.model_id(tmp_path / "m") == checkpoint.model_id(tmp_path / "m")


def test_from_pretrained_errors(tmp_path):
    model = _Tiny(_TinyConfig())
    d = tmp_path / "m"
    checkpoint.save_pretrained(model, d)
    with pytest.raises(PixseqError, match="expected igpt"):
        checkpoint.from_pretrained(d, expected_kind=("igpt",))
    with pytest.raises(PixseqError, match="model directory not found"):
        checkpoint.from_pretrained(tmp_path / "none")
    with pytest.raises(PixseqError, match="is a file; a model is a directory"):  # said 'not found'
        checkpoint.from_pretrained(d / "model.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PixseqError, match="not a pixseq model directory"):
        checkpoint.from_pretrained(tmp_path / "empty")
    # mistyped key in config.json
    doc = json.loads((d / "config.json").read_text())
    doc["config"]["inner"]["width"] = "4"
    (d / "config.json").write_text(json.dumps(doc))
    with pytest.raises(PixseqError, match="config.inner.width"):
        checkpoint.from_pretrained(d)
    # corrupt weights
    checkpoint.save_pretrained(model, d)
    (d / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(PixseqError, match="corrupt weights"):
        checkpoint.from_pretrained(d)
    # weights of another shape
    checkpoint.save_pretrained(_Tiny(_TinyConfig(inner=_Inner(width=3))), tmp_path / "other")
    (d / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    with pytest.raises(PixseqError, match="shape"):
        checkpoint.from_pretrained(d)


def test_legacy_weights_only(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.pt")
    assert torch.equal(checkpoint.load_legacy_state(tmp_path / "ok.pt")["w"], torch.ones(2))
    with pytest.raises(PixseqError, match="is a folder; give the checkpoint file in it"):  # said 'not found'
        checkpoint.load_legacy_state(tmp_path)

    class Evil:  # an arbitrary object: weights_only=True must refuse to unpickle it
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(PixseqError, match="weights_only=True"):
        checkpoint.load_legacy_state(tmp_path / "evil.pt")
    with pytest.raises(PixseqError, match="not found"):
        checkpoint.load_legacy_state(tmp_path / "none.ckpt")


@pytest.mark.parametrize("field, value, pattern", [
    ("kind", ["test-tiny"], "'kind' must be a model kind name"),  # was a raw "unhashable type"
    ("meta", [1], "'meta' must be a mapping"),
])
def test_from_pretrained_rejects_malformed_config_json(tmp_path, field, value, pattern):
    d = checkpoint.save_pretrained(_Tiny(_TinyConfig()), tmp_path / "m")
    doc = json.loads((d / "config.json").read_text())
    doc[field] = value
    (d / "config.json").write_text(json.dumps(doc))
    with pytest.raises(PixseqError, match=pattern):
        checkpoint.from_pretrained(d)


def test_from_pretrained_map_location(tmp_path):
    d = checkpoint.save_pretrained(_Tiny(_TinyConfig()), tmp_path / "m")
    assert checkpoint.from_pretrained(d, map_location=torch.device("cpu")).a.weight.device.type == "cpu"
    with pytest.raises(PixseqError, match="not a torch device"):
        checkpoint.from_pretrained(d, map_location="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(PixseqError, match="no CUDA GPU"):
            checkpoint.from_pretrained(d, map_location="cuda")


def test_model_id_without_weights(tmp_path):
    d = checkpoint.save_pretrained(_Tiny(_TinyConfig()), tmp_path / "m")
    (d / "model.safetensors").unlink()
    with pytest.raises(PixseqError, match="no model.safetensors"):
        checkpoint.model_id(d)


def test_save_pretrained_checks_before_writing(tmp_path):
    model = _Tiny(_TinyConfig(inner=_Inner(width=3)))
    d = checkpoint.save_pretrained(_Tiny(_TinyConfig()), tmp_path / "m")
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    with pytest.raises(PixseqError, match="plain JSON"):
        checkpoint.save_pretrained(model, d, meta={"loss": torch.tensor(1.0)})
    # the old model is untouched: no new weights beside the old config
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    with pytest.raises(PixseqError, match="registered pixseq model"):
        checkpoint.save_pretrained(nn.Linear(2, 2), tmp_path / "plain")
    assert not (tmp_path / "plain").exists()
    with pytest.raises(PixseqError, match="not a directory"):
        checkpoint.save_pretrained(model, d / "config.json")


def test_overwriting_a_model_never_leaves_an_old_config_beside_new_weights(tmp_path, monkeypatch):
    """config.json is the commit mark. A crash while the new weights are written leaves the old
    model whole; a crash after they are in place leaves no config (not a model), never the old
    config beside other weights of the same shapes (a silently different model)."""
    d = checkpoint.save_pretrained(_Tiny(_TinyConfig(name="old")), tmp_path / "m")
    real_save, real_atomic = checkpoint.save, checkpoint.atomic_write

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save", crash)
    with pytest.raises(OSError):
        checkpoint.save_pretrained(_Tiny(_TinyConfig(name="new")), d)
    assert checkpoint.from_pretrained(d).config.name == "old"
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "model.safetensors"]  # nothing staged left

    def config_write_crashes(path, *args, **kwargs):
        if Path(path).name == "config.json":
            raise OSError("disk full")
        return real_atomic(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save", real_save)
    monkeypatch.setattr(checkpoint, "atomic_write", config_write_crashes)
    with pytest.raises(OSError):
        checkpoint.save_pretrained(_Tiny(_TinyConfig(name="new")), d)
    with pytest.raises(PixseqError, match="not a pixseq model"):
        checkpoint.from_pretrained(d)
