"""ESRGAN / Real-ESRGAN inference: the nets and their key layout, the converters (against the
ncnn runtime), blended tiling, streaming Lanczos, layouts kept (grey, alpha, 16 bits), the
out-of-memory retry, named models, ``pixseq upscale`` / ``pixseq convert realesrgan`` and
their bad inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pixseq.checkpoint import save_pretrained
from pixseq.cli import main
from pixseq.errors import PixseqError
from pixseq.io import load_image_native, save_image_native
from pixseq.upscale.rrdb import RRDBNet, RRDBNetConfig, SRVGGConfig, SRVGGNetCompact
from pixseq.upscale.tiles import TileBlender
from pixseq.upscale.upscaler import upscale_image


def _tiny_rrdb(scale: int = 4, seed: int = 0) -> RRDBNet:
    torch.manual_seed(seed)
    return RRDBNet(RRDBNetConfig(scale=scale, num_feat=8, num_block=2, num_grow_ch=4)).eval()


def _tiny_srvgg() -> SRVGGNetCompact:
    torch.manual_seed(0)
    model = SRVGGNetCompact(SRVGGConfig(num_feat=8, num_conv=2, upscale=4)).eval()
    with torch.no_grad():  # PReLU slopes other than the default 0.25, so that they are read
        for i in (1, 3, 5):
            model.body[i].weight.uniform_(0.05, 0.4)
    return model


def _photo(h: int = 40, w: int = 48) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:100 + h, 150:150 + w])


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err
    assert err.startswith("pixseq: error:") and err.count("\n") == 1, err
    for w in words:
        assert w in err, err


# ---------------------------------------------------------------- the nets
def test_rrdbnet_has_real_esrgan_key_layout_and_size():
    with torch.device("meta"):
        model = RRDBNet(RRDBNetConfig())
    keys = set(model.state_dict())
    assert {"conv_first.weight", "body.22.rdb3.conv5.bias", "conv_body.weight", "conv_up1.weight",
            "conv_up2.weight", "conv_hr.weight", "conv_last.bias"} <= keys
    assert len(keys) == 2 * (1 + 23 * 15 + 5)  # 351 convolutions, as the ncnn file has
    # RealESRGAN_x4plus: 16,697,987 parameters (Real-ESRGAN's model zoo: "16.7 M")
    assert sum(p.numel() for p in model.parameters()) == 16_697_987
    with torch.device("meta"):
        vgg = SRVGGNetCompact(SRVGGConfig())
    assert {"body.0.weight", "body.1.weight", "body.32.weight", "body.33.weight", "body.34.bias"} <= set(vgg.state_dict())


def test_inference_fast_path_equals_the_plain_path():
    """The no-grad path (one preallocated buffer, in-place ops) computes what the autograd
    path (torch.cat, out-of-place) does: the same float32 operations in the same order."""
    for model in (_tiny_rrdb(4), _tiny_rrdb(2), _tiny_srvgg()):
        x = torch.rand(1, 3, 12, 16)
        with torch.no_grad():
            fast = model(x)
        plain = model(x).detach()
        assert fast.shape == (1, 3, 12 * model.scale, 16 * model.scale)
        torch.testing.assert_close(fast, plain, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- converters
def _package_pair(stem: str):
    from pixseq.upscale.named import NAMED_MODELS, package_files

    name = next(n for n, s in NAMED_MODELS.items() if s == stem)
    return package_files(name)


@pytest.mark.parametrize("stem", ["REALESRGAN_X4PLUS_UP4X", "REALESRGAN_X4PLUSANIME_UP4X",
                                  "REALESRGAN_ANIMAVIDEOV3_UP3X"])
def test_ncnn_conversion_matches_the_ncnn_runtime(stem):
    """The converted net against ncnn itself (PyPI ``ncnn``, CPU, fp32 arithmetic) on a small
    photo crop. Both run the file's float16 weights widened exactly to float32, so they differ
    only by float32 summation order over up to 351 convolutions: measured <= 7e-6; 1e-4 (a
    fortieth of one 8-bit level) leaves room for other CPUs' kernels."""
    pytest.importorskip("ncnn")
    from pixseq.upscale.ncnn import convert_ncnn, run_ncnn_runtime

    param, bin_path = _package_pair(stem)
    model = convert_ncnn(param, bin_path)
    image = _photo(16, 20).astype(np.float32) / 255
    expected = run_ncnn_runtime(param, bin_path, image)
    with torch.no_grad():
        got = model(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert got.shape == expected.shape == (16 * model.scale, 20 * model.scale, 3)
    assert np.abs(got - expected).max() < 1e-4


def test_ncnn_pair_that_does_not_match_is_one_line(tmp_path, capsys):
    param, _ = _package_pair("REALESRGAN_X4PLUS_UP4X")
    _, anime_bin = _package_pair("REALESRGAN_X4PLUSANIME_UP4X")
    video_param, _ = _package_pair("REALESRGAN_ANIMAVIDEOV3_UP4X")
    out = tmp_path / "m"
    assert main(["convert", "realesrgan", str(param), str(out), "--bin", str(anime_bin)]) == 2
    _one_line_error(capsys, "does not match its .param")
    x4_bin = param.with_suffix(".bin")
    assert main(["convert", "realesrgan", str(video_param), str(out), "--bin", str(x4_bin)]) == 2
    _one_line_error(capsys, "does not match its .param")
    cut = tmp_path / "cut.bin"
    cut.write_bytes(x4_bin.read_bytes()[:-100])
    assert main(["convert", "realesrgan", str(param), str(out), "--bin", str(cut)]) == 2
    _one_line_error(capsys, "does not match its .param", "past the end")
    assert not out.exists()


def test_pth_conversion_prefers_params_ema_and_infers_the_architecture(tmp_path):
    from pixseq.upscale.convert import convert_realesrgan_pth

    ema, raw = _tiny_rrdb(4, seed=1), _tiny_rrdb(4, seed=2)
    torch.save({"params_ema": ema.state_dict(), "params": raw.state_dict()}, tmp_path / "x4.pth")
    torch.save({"params": _tiny_rrdb(2).state_dict()}, tmp_path / "x2.pth")
    torch.save(_tiny_srvgg().state_dict(), tmp_path / "vgg.pth")  # a bare state dict
    got = convert_realesrgan_pth(tmp_path / "x4.pth")
    assert got.config == ema.config
    for k, v in ema.state_dict().items():
        assert torch.equal(got.state_dict()[k], v), k
    assert convert_realesrgan_pth(tmp_path / "x2.pth").config.scale == 2  # 12 = 3 x 2^2 input channels
    vgg = convert_realesrgan_pth(tmp_path / "vgg.pth")
    assert isinstance(vgg, SRVGGNetCompact) and vgg.config.num_conv == 2 and vgg.config.upscale == 4
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(vgg(x), _tiny_srvgg()(x), rtol=0, atol=0)


def test_weights_of_another_architecture_are_refused(tmp_path, capsys):
    from pixseq.tokenizers.vqgan import VQGAN, vqgan_config

    torch.save({"state_dict": VQGAN(vqgan_config(4, 8, 4, 8)).state_dict()}, tmp_path / "vq.pth")
    torch.save({"params": VQGAN(vqgan_config(4, 8, 4, 8)).state_dict()}, tmp_path / "vq2.pth")
    bad = _tiny_rrdb().state_dict()
    bad["conv_body.weight"] = torch.zeros(8, 8, 1, 1)
    torch.save({"params_ema": bad}, tmp_path / "bent.pth")
    for name, words in (("vq.pth", ["holds no state dict"]), ("vq2.pth", ["not a Real-ESRGAN"]),
                        ("bent.pth", ["conv_body.weight", "shape"])):
        assert main(["convert", "realesrgan", str(tmp_path / name), str(tmp_path / "out")]) == 2
        _one_line_error(capsys, *words)
    assert not (tmp_path / "out").exists()
    save_pretrained(VQGAN(vqgan_config(4, 8, 4, 8)), tmp_path / "vqdir")  # a pixseq model, not an upscaler
    _photo_file(tmp_path / "a.png")
    assert main(["upscale", str(tmp_path / "a.png"), "--model", str(tmp_path / "vqdir"), "--out",
                 str(tmp_path / "up")]) == 2
    _one_line_error(capsys, "kind 'vqgan'", "rrdbnet or srvgg")
    assert not (tmp_path / "up").exists()


# ---------------------------------------------------------------- tiles and resizing
def test_blend_weights_are_a_partition_of_unity():
    """A per-pixel net (nearest upsampling) tiled gives exactly the whole-image output: the
    window weights of overlapping tiles sum to 1 everywhere, in 2-D too."""
    x = torch.rand(3, 150, 230)
    up = lambda t: F.interpolate(t, scale_factor=4, mode="nearest")
    for tile, overlap in ((64, 16), (100, 32), (149, 20)):
        rows = []
        TileBlender(up, 4, tile, overlap).run(x, rows.append)
        torch.testing.assert_close(torch.cat(rows, 1), up(x[None])[0], rtol=0, atol=1e-6)


def test_tiled_output_is_within_two_levels_of_whole_image():
    model = _tiny_rrdb()
    image = _photo(72, 88)
    whole = upscale_image(model, image, tile=0).astype(int)
    tiled = upscale_image(model, image, tile=40, overlap=16).astype(int)
    assert tiled.shape == whole.shape == (288, 352, 3)
    assert np.abs(tiled - whole).max() <= 2
    # the whole-image path is the net itself, exactly
    with torch.no_grad():
        ref = model(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)[0]
    ref = ref.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(whole, ref)


def test_streaming_lanczos_matches_pillow_and_its_own_whole_pass():
    from pixseq.upscale.resize import StreamingResize

    rng = np.random.default_rng(0)
    image = np.clip(_photo(50, 61).astype(float) + rng.normal(0, 8, (50, 61, 3)), 0, 255).astype(np.uint8)
    x = torch.from_numpy(image).permute(2, 0, 1).float()
    for out_hw in ((100, 122), (37, 45), (75, 30)):
        whole, bands = [], []
        StreamingResize((50, 61), out_hw, whole.append).write(x)
        streamer = StreamingResize((50, 61), out_hw, bands.append)
        for a, b in ((0, 7), (7, 8), (8, 30), (30, 50)):
            streamer.write(x[:, a:b])
        whole, bands = torch.cat(whole, 1), torch.cat(bands, 1)
        torch.testing.assert_close(bands, whole, rtol=0, atol=1e-3)
        # Pillow's own Lanczos on float ("F") images: float coefficients, no 8-bit rounding
        # between its passes, so the same sums up to float32 rounding
        pil = np.dstack([np.asarray(Image.fromarray(image[:, :, i].astype(np.float32), mode="F")
                                    .resize(out_hw[::-1], Image.LANCZOS)) for i in range(3)])
        np.testing.assert_allclose(whole.permute(1, 2, 0).numpy(), pil, rtol=0, atol=2e-3)


def test_outscale_resizes_the_net_output_in_stream():
    model = _tiny_rrdb()
    image = _photo(30, 36)
    full = upscale_image(model, image, tile=0)
    half = upscale_image(model, image, outscale=2, tile=20, overlap=6)
    assert half.shape == (60, 72, 3)
    expected = np.asarray(Image.fromarray(full).resize((72, 60), Image.LANCZOS)).astype(int)
    assert np.abs(half.astype(int) - expected).max() <= 3  # tiles (2 levels) + Pillow's rounding


# ---------------------------------------------------------------- layouts and memory
def test_grey_alpha_and_sixteen_bit_layouts_are_kept():
    model = _tiny_rrdb()
    rgb = _photo(20, 24)
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    out = upscale_image(model, grey)
    assert out.shape == (80, 96) and out.dtype == np.uint8
    via_rgb = upscale_image(model, np.repeat(grey[:, :, None], 3, 2)).astype(float)
    luma = via_rgb @ np.array([0.299, 0.587, 0.114])
    assert np.abs(out - luma).max() <= 1  # luma of the net's RGB (rounded once vs twice)
    alpha = np.tile(np.linspace(0, 255, 24, dtype=np.uint8), (20, 1))
    rgba = upscale_image(model, np.dstack([rgb, alpha]))
    assert rgba.shape == (80, 96, 4)
    assert np.array_equal(rgba[:, :, :3], upscale_image(model, rgb))
    resized = upscale_image(model, np.dstack([grey, alpha]), alpha="resize")
    assert resized.shape == (80, 96, 2)
    ramp = np.asarray(Image.fromarray(alpha).resize((96, 80), Image.LANCZOS)).astype(int)
    assert np.abs(resized[:, :, 1].astype(int) - ramp).max() <= 1
    deep = upscale_image(model, rgb.astype(np.uint16) * 257)
    assert deep.dtype == np.uint16 and deep.shape == (80, 96, 3)
    assert np.abs(deep / 257.0 - upscale_image(model, rgb)).max() <= 0.51  # the same net, 16-bit rounding


def test_out_of_memory_retries_with_smaller_tiles(monkeypatch):
    from pixseq import runtime
    from pixseq.upscale import upscaler

    model = _tiny_rrdb()
    real = model.forward

    def picky(x):
        if x.shape[-1] > 80:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(x)

    monkeypatch.setattr(model, "forward", picky)
    monkeypatch.setattr(upscaler, "MIN_TILE", 64)
    image = _photo(100, 150)
    with runtime.capture_notices() as notes:
        stats: dict = {}
        got = upscale_image(model, image, tile=256, overlap=16, stats=stats)
    assert stats["tile"] == 64 and any("out of memory" in n and "64" in n for n in notes), notes
    assert np.array_equal(got, upscale_image(model, image, tile=64, overlap=16))
    monkeypatch.setattr(model, "forward", lambda x: (_ for _ in ()).throw(RuntimeError("out of memory")))
    with pytest.raises(PixseqError, match="out of memory even with tiles of 64"):
        upscale_image(model, image, tile=64, overlap=16)


def test_tile_from_memory_budget():
    from pixseq.upscale.tiles import tile_for_budget

    peak = RRDBNet(RRDBNetConfig(num_block=1)).peak_floats_per_input_pixel()
    assert peak == 2 * 64 * 16
    tile = tile_for_budget(peak, 1 << 30, 4)
    assert tile % 8 == 0 and tile ** 2 * peak * 4 * 1.25 <= 1 << 30 < (tile + 8) ** 2 * peak * 4 * 1.25


# ---------------------------------------------------------------- named models and the verbs
def _photo_file(path, image=None):
    Image.fromarray(_photo() if image is None else image).save(path)
    return path


def test_named_model_is_converted_once_and_cached(tmp_path, monkeypatch):
    """A zoo model made on first use: converted into the zoo cache, its weights' SHA-256
    checked against the index then and at every later load."""
    import pixseq
    from pixseq.upscale.named import load_upscaler

    monkeypatch.setenv("PIXSEQ_ZOO_CACHE", str(tmp_path))
    model = load_upscaler("realesr-animevideov3-x2")
    folder = tmp_path / "realesr-animevideov3-x2"
    assert (folder / "config.json").is_file() and model.kind == "srvgg" and model.scale == 2
    assert model.pretrained_meta["bin_sha256"]
    monkeypatch.setattr("pixseq.upscale.ncnn.convert_ncnn", lambda *a: pytest.fail("converted twice"))
    assert pixseq.load_model("zoo:realesr-animevideov3-x2").scale == 2


def test_upscale_verb_keeps_layouts_and_names(tmp_path, capsys):
    save_pretrained(_tiny_rrdb(), tmp_path / "sr")
    rgb = _photo(20, 24)
    _photo_file(tmp_path / "a.jpg", rgb)
    save_image_native(np.dstack([rgb, np.full((20, 24), 128, np.uint8)]), tmp_path / "b.png")
    save_image_native(rgb.astype(np.uint16) * 257, tmp_path / "c.tif")
    out = tmp_path / "up"
    assert main(["upscale", str(tmp_path / "a.jpg"), str(tmp_path / "b.png"), str(tmp_path / "c.tif"),
                 "--model", str(tmp_path / "sr"), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    a, b, c = (load_image_native(out / n) for n in ("a.jpg", "b.png", "c.tif"))
    assert a.shape == (80, 96, 3) and b.shape == (80, 96, 4) and c.shape == (80, 96, 3)
    assert c.dtype == np.uint16 and a.dtype == b.dtype == np.uint8
    assert main(["upscale", str(tmp_path / "b.png"), "--model", str(tmp_path / "sr"), "--out", str(out),
                 "--ext", "jpg"]) == 2
    _one_line_error(capsys, "alpha channel")


def test_upscale_bad_inputs_are_one_line_and_write_nothing(tmp_path, capsys):
    save_pretrained(_tiny_rrdb(), tmp_path / "sr")
    model = ["--model", str(tmp_path / "sr")]
    small = _photo_file(tmp_path / "small.png")
    # 4100 x 4000 -> 16400 x 16000 = 262 M pixels: past the 64 M limit (read from the header only)
    Image.new("RGB", (4100, 4000), (90, 120, 150)).save(tmp_path / "huge.png")
    out = tmp_path / "up"
    assert main(["upscale", str(small), str(tmp_path / "huge.png"), *model, "--out", str(out)]) == 2
    _one_line_error(capsys, "past the limit of 64000000", "--outscale 1.97", "tiles")
    for bad in ("0", "-1", "nan"):
        assert main(["upscale", str(small), *model, "--out", str(out), "--outscale", bad]) == 2
        _one_line_error(capsys, "--outscale must be a positive number")
    _photo_file(tmp_path / "small.jpg")
    assert main(["upscale", str(small), str(tmp_path / "small.jpg"), *model, "--out", str(out),
                 "--ext", "png"]) == 2
    _one_line_error(capsys, "would both be written")
    assert main(["upscale", str(tmp_path / "nope.png"), *model, "--out", str(out)]) == 2
    _one_line_error(capsys, "image not found")
    # an unreadable file after a good one: refused while planning, before the good one is written
    (tmp_path / "bad.png").write_text("not a png")
    assert main(["upscale", str(small), str(tmp_path / "bad.png"), *model, "--out", str(out)]) == 2
    _one_line_error(capsys, "not an image file")
    torch.save({"params_ema": _tiny_rrdb().state_dict()}, tmp_path / "x4.pth")  # a weight file as --model
    assert main(["upscale", str(small), "--model", str(tmp_path / "x4.pth"), "--out", str(out)]) == 2
    _one_line_error(capsys, "is a weight file", "pixseq convert realesrgan")
    assert not out.exists()


def test_fp16_overflow_reruns_the_tile_in_fp32():
    """Real-ESRGAN's fp16 black / NaN images: a tile whose fp16 output is not finite runs
    again in fp32, said once (CPU autocast runs fp16 convolutions too)."""
    from pixseq import runtime
    from pixseq.upscale.upscaler import TileRunner, resolve_precision

    conv = torch.nn.Conv2d(3, 3, 3, padding=1)
    conv.weight.data.fill_(3e4)  # 3e4 x 27 taps: past fp16's 65504
    runner = TileRunner(conv, torch.device("cpu"), torch.float16)
    with runtime.capture_notices() as notes:
        x = torch.rand(1, 3, 8, 8)
        y = runner(x)
        runner(x)
    assert torch.isfinite(y).all() and torch.equal(y, conv(x).detach())
    assert len(notes) == 1 and "fp16 overflowed" in notes[0]
    assert resolve_precision(torch.device("cpu")) == torch.float32
    with pytest.raises(PixseqError, match="fp16 needs a GPU"):
        resolve_precision(torch.device("cpu"), "fp16")


@pytest.mark.gpu
def test_gpu_bf16_and_fp16_agree_with_fp32():
    """bf16 / fp16 autocast on a GPU against fp32: bf16 keeps 8 bits of mantissa, so a tiny
    net's outputs may move by a few levels; fp16 (11 bits) by about one."""
    model = _tiny_rrdb().cuda()
    image = _photo(32, 40)
    ref = upscale_image(model, image, precision="fp32").astype(int)
    assert np.abs(upscale_image(model, image, precision="bf16").astype(int) - ref).max() <= 4
    assert np.abs(upscale_image(model, image, precision="fp16").astype(int) - ref).max() <= 2


def test_demo_section_quick(tmp_path, monkeypatch):
    from pixseq.demo.upscale import demo_section
    from pixseq.report import Page

    monkeypatch.setenv("PIXSEQ_ZOO_CACHE", str(tmp_path / "zoo"))
    page = Page("demo")
    stats = demo_section(page, tmp_path, "cpu", quick=True)
    assert 10 < stats["psnr_bicubic_db"] < 60 and 10 < stats["psnr_esrgan_db"] < 60
    assert "Real-ESRGAN x4plus" in page.render()


def test_generate_upscale_writes_the_super_resolved_image(tmp_path, capsys):
    """The founding pipeline in one command: VQGAN-CLIP, then ``--upscale 4`` with an
    upscaler (a tiny RRDBNet folder here; realesrgan-x4plus by default): the 4x file is the
    library's upscale of the generated image, exactly."""
    from pixseq.guidance.clip import random_clip, tiny_clip_config
    from pixseq.tokenizers.vqgan import VQGAN, vqgan_config

    torch.manual_seed(0)
    save_pretrained(VQGAN(vqgan_config(4, 32, 8, 16)).eval(), tmp_path / "vq")
    save_pretrained(random_clip(tiny_clip_config()), tmp_path / "clip")
    save_pretrained(_tiny_rrdb(), tmp_path / "sr")
    out = tmp_path / "o.png"
    base = ["generate", "a red shoe", "--vqgan", str(tmp_path / "vq"), "--clip", str(tmp_path / "clip"),
            "--size", "16x12", "--steps", "2", "--cutn", "2", "--out", str(out)]
    assert main([*base, "--upscale", "4", "--upscale-model", str(tmp_path / "sr")]) == 0
    assert "o-x4.png" in capsys.readouterr().out
    small, big = load_image_native(out), load_image_native(tmp_path / "o-x4.png")
    assert big.shape == (48, 64, 3)
    assert np.array_equal(big, upscale_image(_tiny_rrdb(), small))
    # past the pixel limit: refused before the optimisation, nothing written
    (tmp_path / "o.png").unlink()
    assert main([*base, "--upscale", "1e4", "--upscale-model", str(tmp_path / "sr")]) == 2
    _one_line_error(capsys, "past the limit", "use --upscale 577")  # generate's own flag, not upscale's
    for bad in ("0", "-2", "inf"):  # refused before any model loads
        assert main([*base, "--upscale", bad, "--upscale-model", str(tmp_path / "nowhere")]) == 2
        _one_line_error(capsys, "--upscale must be a positive number")
    assert not out.exists()


def test_generate_upscale_with_the_shipped_zoo_models(tmp_path, capsys):
    """``pixseq generate PROMPT --vqgan zoo:vqgan-fm --clip zoo:lit-fm --upscale 4``: the zoo
    names work for the guide too (``zoo:lit-fm`` once read as open_clip's ARCH:TAG form)."""
    from pixseq.guidance.clip import load_guide

    save_pretrained(_tiny_rrdb(), tmp_path / "sr")
    out = tmp_path / "fm.png"
    base = ["generate", "a sneaker", "--vqgan", "zoo:vqgan-fm", "--size", "28x28", "--steps", "2", "--cutn", "2",
            "--out", str(out), "--upscale", "4", "--upscale-model", str(tmp_path / "sr"), "--device", "cpu"]
    assert main([*base, "--clip", "zoo:lit-fm"]) == 0
    assert "fm-x4.png" in capsys.readouterr().out
    small, big = load_image_native(out), load_image_native(tmp_path / "fm-x4.png")
    assert small.shape[:2] == (28, 28) and big.shape[:2] == (112, 112)
    assert np.array_equal(big, upscale_image(_tiny_rrdb(), small))
    assert load_guide("zoo:lit-fm").training is False
    for clip, words in (("zoo:no-such-model", ["no-such-model"]), ("zoo:vqgan-fm", ["kind"])):
        assert main([*base[:-8], "--out", str(tmp_path / "x.png"), "--clip", clip]) == 2
        _one_line_error(capsys, *words)
    with pytest.raises(PixseqError, match="not a zoo model"):
        load_guide("zoo:lit-fm", weights=tmp_path / "w.safetensors")
    assert not (tmp_path / "x.png").exists()


def test_a_verb_builds_only_its_own_parser():
    """``pixseq upscale`` imports no other verb's module (each verb's options import models,
    metrics, open_clip: ~400 MB of resident memory the upscaler carried through a run);
    ``pixseq --help`` and an unknown verb still see them all."""
    import os
    import subprocess
    import sys

    code = ("import sys\nfrom pixseq.cli import build_parser, main, VERBS\n"
            "try:\n    main(['upscale', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('pixseq.cli.') and m.rsplit('.', 1)[1] in VERBS))\n"
            "print(sorted(build_parser()._subparsers._group_actions[0].choices) == sorted(VERBS))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = done.stdout.strip().splitlines()
    assert lines[-2] == "['pixseq.cli.upscale']", done.stdout
    assert lines[-1] == "True", done.stdout
