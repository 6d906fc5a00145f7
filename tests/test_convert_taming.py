"""Official taming-transformers VQGAN checkpoints -> pixseq VQGAN: exact encode/decode.

The reference below is an independent float64 re-statement of the official architecture
(taming/modules/diffusionmodules/model.py: Encoder/Decoder, VQModel.encode/decode) that
works directly on a state dict in the official key layout.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pixseq.cli import main
from pixseq.checkpoint import from_pretrained
from pixseq.convert.taming import convert_taming, map_key
from pixseq.errors import PixseqError

CH, MULT, NRB, ATTN_LEVELS, Z, K = 32, (1, 2), 1, (1,), 8, 16


def _official_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of a tiny VQModel (ch=32, ch_mult=(1,2), 1 res block, attn at level 1)."""
    s: dict[str, tuple[int, ...]] = {}

    def conv(name, cin, cout, k):
        s[name + ".weight"], s[name + ".bias"] = (cout, cin, k, k), (cout,)

    def norm(name, c):
        s[name + ".weight"], s[name + ".bias"] = (c,), (c,)

    def res(name, cin, cout):
        norm(name + ".norm1", cin), conv(name + ".conv1", cin, cout, 3)
        norm(name + ".norm2", cout), conv(name + ".conv2", cout, cout, 3)
        if cin != cout:
            conv(name + ".nin_shortcut", cin, cout, 1)

    def attn(name, c):
        norm(name + ".norm", c)
        for p in ("q", "k", "v", "proj_out"):
            conv(f"{name}.{p}", c, c, 1)

    conv("encoder.conv_in", 3, CH, 3)
    cin = CH
    for i, m in enumerate(MULT):
        for j in range(NRB):
            res(f"encoder.down.{i}.block.{j}", cin, CH * m)
            cin = CH * m
            if i in ATTN_LEVELS:
                attn(f"encoder.down.{i}.attn.{j}", cin)
        if i < len(MULT) - 1:
            conv(f"encoder.down.{i}.downsample.conv", cin, cin, 3)
    for part in ("encoder", "decoder"):
        res(f"{part}.mid.block_1", cin, cin), attn(f"{part}.mid.attn_1", cin), res(f"{part}.mid.block_2", cin, cin)
    norm("encoder.norm_out", cin), conv("encoder.conv_out", cin, Z, 3)
    conv("quant_conv", Z, Z, 1), conv("post_quant_conv", Z, Z, 1)
    s["quantize.embedding.weight"] = (K, Z)
    conv("decoder.conv_in", Z, CH * MULT[-1], 3)
    for i in reversed(range(len(MULT))):
        for j in range(NRB + 1):
            res(f"decoder.up.{i}.block.{j}", cin, CH * MULT[i])
            cin = CH * MULT[i]
            if i in ATTN_LEVELS:
                attn(f"decoder.up.{i}.attn.{j}", cin)
        if i > 0:
            conv(f"decoder.up.{i}.upsample.conv", cin, cin, 3)
    norm("decoder.norm_out", cin), conv("decoder.conv_out", cin, 3, 3)
    s["loss.discriminator.main.0.weight"] = (4, 3, 4, 4)  # training-only: must be ignored
    return s


# ---- float64 reference forward on the official keys ---------------------------------
def _conv(sd, name, x, stride=1, pad=1):
    return F.conv2d(x, sd[name + ".weight"], sd[name + ".bias"], stride=stride, padding=pad)


def _gn(sd, name, x):
    return F.group_norm(x, 32, sd[name + ".weight"], sd[name + ".bias"], eps=1e-6)


def _res(sd, name, x):
    h = _conv(sd, name + ".conv1", F.silu(_gn(sd, name + ".norm1", x)))
    h = _conv(sd, name + ".conv2", F.silu(_gn(sd, name + ".norm2", h)))
    if name + ".nin_shortcut.weight" in sd:
        x = _conv(sd, name + ".nin_shortcut", x, pad=0)
    return x + h


def _attn(sd, name, x):
    b, c, hh, ww = x.shape
    h = _gn(sd, name + ".norm", x)
    q, k, v = (_conv(sd, f"{name}.{p}", h, pad=0).reshape(b, c, -1) for p in "qkv")
    w = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / c ** 0.5, dim=2)  # (b, query, key)
    out = torch.einsum("bcj,bij->bci", v, w).reshape(b, c, hh, ww)
    return x + _conv(sd, name + ".proj_out", out, pad=0)


def _mid(sd, part, h):
    return _res(sd, f"{part}.mid.block_2", _attn(sd, f"{part}.mid.attn_1", _res(sd, f"{part}.mid.block_1", h)))


def ref_encode(sd, x):
    h = _conv(sd, "encoder.conv_in", x * 2 - 1)
    for i in range(len(MULT)):
        for j in range(NRB):
            h = _res(sd, f"encoder.down.{i}.block.{j}", h)
            if i in ATTN_LEVELS:
                h = _attn(sd, f"encoder.down.{i}.attn.{j}", h)
        if i < len(MULT) - 1:
            h = _conv(sd, f"encoder.down.{i}.downsample.conv", F.pad(h, (0, 1, 0, 1)), stride=2, pad=0)
    h = _mid(sd, "encoder", h)
    h = _conv(sd, "encoder.conv_out", F.silu(_gn(sd, "encoder.norm_out", h)))
    z = _conv(sd, "quant_conv", h, pad=0).permute(0, 2, 3, 1)  # (b, h, w, d)
    return torch.cdist(z.reshape(-1, Z), sd["quantize.embedding.weight"]).argmin(1).view(z.shape[:3])


def ref_decode(sd, codes):
    zq = sd["quantize.embedding.weight"][codes].permute(0, 3, 1, 2)
    h = _mid(sd, "decoder", _conv(sd, "decoder.conv_in", _conv(sd, "post_quant_conv", zq, pad=0)))
    for i in reversed(range(len(MULT))):
        for j in range(NRB + 1):
            h = _res(sd, f"decoder.up.{i}.block.{j}", h)
            if i in ATTN_LEVELS:
                h = _attn(sd, f"decoder.up.{i}.attn.{j}", h)
        if i > 0:
            h = _conv(sd, f"decoder.up.{i}.upsample.conv", F.interpolate(h, scale_factor=2.0, mode="nearest"))
    return _conv(sd, "decoder.conv_out", F.silu(_gn(sd, "decoder.norm_out", h)))


def _save_like_lightning(obj: dict, path) -> None:
    """torch.save with a callback state keyed by a pytorch_lightning class (as Lightning 1.x
    writes ``checkpoint["callbacks"]``), from a stand-in module that is gone at load time."""
    import sys
    import types

    name = "pytorch_lightning.callbacks.model_checkpoint"
    mod = types.ModuleType(name)
    cls = type("ModelCheckpoint", (), {"__module__": name})
    mod.ModelCheckpoint = cls
    parents = ("pytorch_lightning", "pytorch_lightning.callbacks")
    saved = {n: sys.modules.get(n) for n in (*parents, name)}
    sys.modules.update({n: types.ModuleType(n) for n in parents})
    sys.modules[name] = mod
    try:
        torch.save({**obj, "callbacks": {cls: {"best_model_score": torch.tensor(0.5)}}}, path)
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


@pytest.fixture
def official_ckpt(tmp_path):
    g = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(shape, generator=g) * 0.2 for k, shape in _official_shapes().items()}
    sd["quantize.embedding.weight"] *= 5  # spread codes so several are used
    path = tmp_path / "last.ckpt"
    _save_like_lightning({"state_dict": sd, "global_step": 1}, path)
    return path, {k: v.double() for k, v in sd.items()}


def test_converted_model_reproduces_official_encode_decode(official_ckpt):
    path, sd = official_ckpt
    model = convert_taming(path)
    assert model.factor == 2 and model.vocab_size == K and model.config.attn_levels == ATTN_LEVELS
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    codes = model.encode(x)
    ref_codes = ref_encode(sd, x.double())
    assert torch.equal(codes, ref_codes) and codes.unique().numel() > 1
    out = model.decode_latent(model.quantizer.lookup(codes))
    # fp32 model vs fp64 reference through ~20 layers: differences ~1e-6 of O(1) outputs
    assert torch.allclose(out.double(), ref_decode(sd, codes), atol=1e-4, rtol=1e-4)
    assert torch.allclose(model.decode(codes).double(), ((ref_decode(sd, codes) + 1) / 2).clamp(0, 1), atol=1e-4)


def test_cli_convert_writes_a_vqgan_model_dir(official_ckpt, tmp_path, capsys):
    path, sd = official_ckpt
    assert main(["convert", "taming", str(path), str(tmp_path / "out")]) == 0
    model = from_pretrained(tmp_path / "out", "vqgan")
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(model.encode(x), ref_encode(sd, x.double()))
    assert "16 codes" in capsys.readouterr().out


def test_bad_checkpoints_are_one_line_errors(tmp_path, capsys):
    torch.save({"state_dict": {"encoder.conv_in.weight": torch.zeros(32, 3, 3, 3)}}, tmp_path / "bad.ckpt")
    assert main(["convert", "taming", str(tmp_path / "bad.ckpt"), str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing" in err and not (tmp_path / "o").exists()
    assert main(["convert", "taming", str(tmp_path / "nope.ckpt"), str(tmp_path / "o")]) == 2
    with pytest.raises(PixseqError, match="unexpected key"):
        map_key("encoder.down.0.block.0.temb_proj.weight")
    assert map_key("loss.discriminator.main.0.weight") is None


def test_non_metadata_globals_are_still_refused(tmp_path, capsys):
    torch.save({"state_dict": {}, "x": torch.nn.ReLU()}, tmp_path / "evil.ckpt")  # a pickled module
    assert main(["convert", "taming", str(tmp_path / "evil.ckpt"), str(tmp_path / "o")]) == 2
    assert "weights_only" in capsys.readouterr().err


def test_convert_taming_empty_paths_are_refused(official_ckpt, tmp_path, monkeypatch, capsys):
    """An empty DIR was the current folder: the VQGAN's files were written into it."""
    path, _ = official_ckpt
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.iterdir())
    for argv in ([str(path), ""], ["", "m"]):
        with pytest.raises(SystemExit) as exc:  # argparse's own usage error exits 2 itself
            main(["convert", "taming", *argv])
        assert exc.value.code == 2 and "empty path" in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == before


def test_convert_refuses_to_replace_a_model_and_incomplete_levels(official_ckpt, tmp_path, capsys):
    """OUT holding a model was silently overwritten (e.g. a trained VQGAN beside its training
    state); a checkpoint lacking a level's first block was a KeyError traceback."""
    path, sd = official_ckpt
    out = tmp_path / "out"
    assert main(["convert", "taming", str(path), str(out)]) == 0
    before = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["convert", "taming", str(path), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err and (out / "model.safetensors").read_bytes() == before
    assert main(["convert", "taming", str(path), str(out), "--force"]) == 0
    capsys.readouterr()
    broken = {k: v for k, v in sd.items() if k != "encoder.down.1.block.0.conv1.weight"}
    torch.save({"state_dict": broken}, tmp_path / "broken.ckpt")
    assert main(["convert", "taming", str(tmp_path / "broken.ckpt"), str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "encoder.down.1.block.0.conv1.weight" in err and not (tmp_path / "o2").exists()
