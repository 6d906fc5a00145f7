"""pixseq.io: the one image loader (modes, EXIF, limits, bad files) and atomic writes."""
from __future__ import annotations

import io
import warnings

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


# What each EXIF orientation asks for, written from the EXIF 2.3 table (row 0 / column 0
# of the stored image end up ...): the display image as a numpy view of the stored one.
_EXIF_DISPLAY = {
    1: lambda s: s, 2: lambda s: s[:, ::-1], 3: lambda s: s[::-1, ::-1], 4: lambda s: s[::-1],
    5: lambda s: s.T, 6: lambda s: np.rot90(s, -1), 7: lambda s: s.T[::-1, ::-1], 8: lambda s: np.rot90(s, 1),
}


@pytest.mark.parametrize("mode", ["L", "I;16"])
def test_exif_orientation_single_channel_tiff(tmp_path, mode):
    """Uncompressed grey TIFFs with a transposing orientation (5-8) came out scrambled:
    Pillow memory-maps them when opened by path and then rotates the mapped buffer
    with the wrong shape while loading."""
    stored = np.arange(12, dtype=np.uint16).reshape(3, 4) * (257 * 20 if mode == "I;16" else 20)
    expected_grey = np.round(stored / (65535 if mode == "I;16" else 255) * 255).astype(np.uint8)
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        img = Image.fromarray(stored.astype(np.uint8) if mode == "L" else stored)
        assert img.mode == mode
        img.save(tmp_path / f"o{orientation}.tif", exif=exif)
        out = load_image(tmp_path / f"o{orientation}.tif")
        np.testing.assert_array_equal(out[..., 0], _EXIF_DISPLAY[orientation](expected_grey), err_msg=str(orientation))


def test_exif_orientation_all_eight_rgb(tmp_path):
    stored = _rgb(3, 4)
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(stored).save(tmp_path / f"o{orientation}.png", exif=exif)
        out = load_image(tmp_path / f"o{orientation}.png")
        want = np.stack([_EXIF_DISPLAY[orientation](stored[..., c]) for c in range(3)], axis=-1)
        np.testing.assert_array_equal(out, want, err_msg=str(orientation))


def test_colour_key_transparency_composited_on_white(tmp_path):
    """A PNG tRNS colour key on a grey, 16-bit grey or RGB image makes those pixels
    transparent, as on palette images; they kept their key colour (often black)."""
    Image.fromarray(np.array([[0, 128, 255]], np.uint8)).save(tmp_path / "l.png", transparency=0)
    assert load_image(tmp_path / "l.png")[0, :, 0].tolist() == [255, 128, 255]
    Image.fromarray(np.array([[0, 65535, 300]], np.uint16)).save(tmp_path / "i16.png", transparency=300)
    assert Image.open(tmp_path / "i16.png").mode == "I;16"
    assert load_image(tmp_path / "i16.png")[0, :, 0].tolist() == [0, 255, 255]  # 300 is the key
    rgb = np.array([[[0, 0, 0], [1, 2, 3], [1, 2, 4]]], np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png", transparency=(1, 2, 3))
    assert load_image(tmp_path / "rgb.png")[0].tolist() == [[0, 0, 0], [255, 255, 255], [1, 2, 4]]


def test_16bit_pgm_dark_image_not_brightened(tmp_path):
    """Pillow opens a 16-bit PGM as mode "I"; one with no value above 255 was taken for
    8-bit data (65535 -> 255 is the scale, so 255 must stay about 1, not 255)."""
    values = np.array([[0, 100, 200, 255]], dtype=">u2")
    (tmp_path / "d.pgm").write_bytes(b"P5\n4 1\n65535\n" + values.tobytes())
    assert Image.open(tmp_path / "d.pgm").mode == "I"
    out = load_image(tmp_path / "d.pgm")
    np.testing.assert_array_equal(out[0, :, 0], np.round(values[0].astype(float) / 65535 * 255))  # [0, 0, 1, 1]
    (tmp_path / "b.pgm").write_bytes(b"P5\n2 1\n65535\n" + np.array([[257 * 7, 65535]], ">u2").tobytes())
    assert load_image(tmp_path / "b.pgm")[0, :, 0].tolist() == [7, 255]


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


def test_pillow_warnings_only_when_the_image_loads(tmp_path, monkeypatch):
    """A damaged TIFF printed Pillow's 'Corrupt EXIF data' warning, with a line of Pillow's
    source, before the one-line error; a damaged EXIF block in a usable JPEG is still said."""
    buf = io.BytesIO()
    Image.fromarray(_rgb(40, 50)).save(buf, format="TIFF", compression="tiff_lzw")
    (tmp_path / "t.tif").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(PixseqError, match="t.tif"):
            load_image(tmp_path / "t.tif")
    assert caught == []
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "pixseq test camera"
    buf = io.BytesIO()
    Image.new("RGB", (16, 8), (200, 0, 0)).save(buf, format="JPEG", exif=exif)
    data = bytearray(buf.getvalue())
    start = data.find(b"Exif\x00\x00") + 6
    data[start + 20:start + 40] = b"\xff" * 20  # garbage over the IFD entries
    (tmp_path / "e.jpg").write_bytes(bytes(data))
    monkeypatch.setattr("pixseq.io._PILLOW_WARNINGS_SHOWN", set())  # each message is passed on once
    with pytest.warns(UserWarning):
        assert load_image(tmp_path / "e.jpg").shape[2] == 3


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as fh:
            fh.write(b"partial")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_atomic_write_text_is_utf8_and_takes_undecodable_names(tmp_path):
    """Text went out in the locale's encoding, strictly: a file name that is not valid UTF-8
    (as os.listdir gives it) failed e.g. `assess --json` with a UnicodeEncodeError traceback."""
    import json

    name = b"caf\xe9 \xe2\x82\xac.png".decode("utf-8", "surrogateescape")  # Latin-1 e-acute, then a euro sign
    with atomic_write(tmp_path / "s.json", "w") as fh:
        json.dump({"name": name}, fh, ensure_ascii=False)
    raw = (tmp_path / "s.json").read_bytes()
    assert "\u20ac".encode("utf-8") in raw  # the euro sign as UTF-8, not the locale's encoding
    assert json.loads(raw.decode("utf-8"))["name"] == name  # \udce9 reads back as the same name


def test_atomic_write_long_file_name(tmp_path):
    """A 250-character name is legal (<= 255 bytes) but its temporary file's was not."""
    target = tmp_path / ("x" * 246 + ".png")
    save_image(_rgb(), target)
    np.testing.assert_array_equal(load_image(target), _rgb())
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


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


def test_list_images_takes_the_other_names_of_common_formats(tmp_path):
    """.jfif / .jpe (JPEG), .pbm / .pnm (Netpbm) and .tga files were skipped without a word."""
    rgb = _rgb()
    for name, fmt in (("a.jfif", "JPEG"), ("b.jpe", "JPEG"), ("c.pnm", "PPM"), ("d.tga", "TGA")):
        Image.fromarray(rgb).save(tmp_path / name, format=fmt)
    Image.fromarray(rgb).convert("1").save(tmp_path / "e.pbm", format="PPM")
    found = list_images(tmp_path)
    assert [p.name for p in found] == ["a.jfif", "b.jpe", "c.pnm", "d.tga", "e.pbm"]
    assert np.array_equal(load_image(tmp_path / "c.pnm"), rgb) and np.array_equal(load_image(tmp_path / "d.tga"), rgb)


def test_list_images_skips_hidden_and_follows_folder_links(tmp_path):
    """macOS '._x.png' resource forks (not images) and '.ipynb_checkpoints' were listed, and
    images in linked folders were not; a link back up (a cycle) is not followed."""
    data = tmp_path / "data"
    save_image(_rgb(), data / "a.png")
    (data / "._a.png").write_bytes(b"\x00\x05\x16\x07" + bytes(60))
    save_image(_rgb(), data / ".ipynb_checkpoints" / "a-checkpoint.png")
    save_image(_rgb(), data / ".hidden.png")
    save_image(_rgb(), tmp_path / "elsewhere" / "b.png")
    (data / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (data / "linked" / "up").symlink_to(data, target_is_directory=True)
    (data / "dangling.png").symlink_to(tmp_path / "missing.png")
    assert [p.relative_to(data).as_posix() for p in list_images(data)] == ["a.png", "linked/b.png"]
    hidden_root = tmp_path / ".cache"  # only names below the folder given count
    save_image(_rgb(), hidden_root / "c.png")
    assert [p.name for p in list_images(hidden_root)] == ["c.png"]


def test_list_images_unreadable_sub_folder_is_an_error(tmp_path, monkeypatch):
    """A sub-folder that cannot be listed was skipped without a word (a class, or part of
    one, missing from the data). Simulated: the tests may run as root, who reads anything."""
    import os

    save_image(_rgb(), tmp_path / "a" / "0.png")
    save_image(_rgb(), tmp_path / "b" / "1.png")
    real_scandir = os.scandir

    def scandir(path="."):
        if os.path.basename(os.fspath(path)) == "b":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(PixseqError, match=r"cannot list folder .*b: Permission denied"):
        list_images(tmp_path)


def test_tensor_conversions_roundtrip():
    arr = _rgb()
    t = to_tensor(arr)
    assert t.shape == (3, 6, 10) and float(t.max()) <= 1.0
    np.testing.assert_array_equal(to_uint8(t), arr)
