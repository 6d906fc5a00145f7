"""pixseq.io: the one image loader (modes, EXIF, limits, bad files) and atomic writes."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pixseq.errors import PixseqError
from pixseq.io import atomic_write, list_images, load_image, save_image, to_tensor, to_uint8


def _rgb(h: int = 6, w: int = 10) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_png_roundtrip_is_exact(tmp_path):
    arr = _rgb()
    save_image(arr, tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (6, 10, 3)
    np.testing.assert_array_equal(out, arr)


def test_exif_orientation_applied(tmp_path):
    arr = _rgb(4, 8)
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": stored 4x8 is shown as 8x4
    img.save(tmp_path / "o.jpg", exif=exif, quality=100)
    out = load_image(tmp_path / "o.jpg")
    assert out.shape == (8, 4, 3)
    # Orientation 6 == the stored pixels rotated 90 degrees clockwise (PIL's ROTATE_270).
    ref = np.asarray(Image.open(tmp_path / "o.jpg").convert("RGB").transpose(Image.Transpose.ROTATE_270))
    np.testing.assert_array_equal(out, ref)


def test_grey_becomes_rgb(tmp_path):
    grey = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == (4, 6, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_palette_image(tmp_path):
    arr = _rgb(5, 5)
    img = Image.fromarray(arr).quantize(colors=8)
    img.save(tmp_path / "p.png")
    out = load_image(tmp_path / "p.png")
    np.testing.assert_array_equal(out, np.asarray(img.convert("RGB")))


def test_rgba_and_la_composited_on_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 200            # red channel
    rgba[0, 0, 3] = 255           # opaque
    rgba[0, 1, 3] = 0             # fully transparent -> white
    rgba[1, :, 3] = 128           # half: 200*a + 255*(1-a)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png").astype(int)
    assert tuple(out[0, 0]) == (200, 0, 0)
    assert tuple(out[0, 1]) == (255, 255, 255)
    a = 128 / 255
    # Pillow's alpha_composite rounds in 8-bit integer arithmetic: allow 1 level.
    assert abs(out[1, 0, 0] - (200 * a + 255 * (1 - a))) <= 1
    assert abs(out[1, 0, 1] - 255 * (1 - a)) <= 1
    la = np.zeros((1, 2, 2), np.uint8)
    la[0, 0] = (40, 255)
    la[0, 1] = (40, 0)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    out = load_image(tmp_path / "la.png")
    assert tuple(out[0, 0]) == (40, 40, 40) and tuple(out[0, 1]) == (255, 255, 255)


def test_cmyk_jpeg(tmp_path):
    img = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # pure red in CMYK
    img.save(tmp_path / "c.jpg", quality=100)
    out = load_image(tmp_path / "c.jpg").astype(int)
    assert out.shape == (4, 4, 3)
    # JPEG is lossy: the colour must still be clearly red.
    assert out[..., 0].min() > 200 and out[..., 1].max() < 60 and out[..., 2].max() < 60


def test_16bit_grey_scaled_not_clipped(tmp_path):
    arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "s.png")
    assert Image.open(tmp_path / "s.png").mode.startswith("I")
    out = load_image(tmp_path / "s.png")
    assert list(out[0, :, 0]) == [0, 128, 255]  # 32768/65535*255 = 127.5 -> 128


def test_pixel_limit(tmp_path):
    save_image(_rgb(20, 20), tmp_path / "big.png")
    with pytest.raises(PixseqError, match="too large"):
        load_image(tmp_path / "big.png", max_pixels=100)


@pytest.mark.parametrize("case", ["missing", "empty", "text", "truncated", "folder"])
def test_bad_files_are_one_line_errors(tmp_path, case):
    path = tmp_path / "x.png"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("hello, not an image\n")
    elif case == "truncated":
        save_image(_rgb(64, 64), tmp_path / "full.png")
        path.write_bytes((tmp_path / "full.png").read_bytes()[:200])
    elif case == "folder":
        path.mkdir()
    with pytest.raises(PixseqError) as info:
        load_image(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as fh:
            fh.write(b"partial")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_save_image_unknown_suffix(tmp_path):
    with pytest.raises(PixseqError, match="unknown image format"):
        save_image(_rgb(), tmp_path / "a.notaformat")
    with pytest.raises(PixseqError, match="can read PSD images but not write them"):  # was a raw KeyError
        save_image(_rgb(), tmp_path / "a.psd")
    assert not any(tmp_path.iterdir())


def test_list_images_recursive_and_sorted(tmp_path):
    (tmp_path / "b").mkdir()
    save_image(_rgb(), tmp_path / "b" / "2.png")
    save_image(_rgb(), tmp_path / "1.jpg")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == ["1.jpg", "b/2.png"]


def test_tensor_conversions_roundtrip():
    arr = _rgb()
    t = to_tensor(arr)
    assert t.shape == (3, 6, 10) and float(t.max()) <= 1.0
    np.testing.assert_array_equal(to_uint8(t), arr)
