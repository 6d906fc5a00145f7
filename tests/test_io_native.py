"""Images kept as they are (``pixseq.io.load_image_native`` / ``save_image_native`` /
``peek_image``): grey, grey + alpha, RGB, RGBA, 8 and 16 bits, PNG and TIFF."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pixseq.errors import PixseqError
from pixseq.io import load_image, load_image_native, peek_image, save_image_native


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_round_trip_keeps_channels_and_bits(tmp_path, suffix, channels, dtype):
    rng = np.random.default_rng(channels)
    image = rng.integers(0, np.iinfo(dtype).max + 1, size=(5, 7, channels)).astype(dtype)
    path = save_image_native(image, tmp_path / f"x{suffix}")
    got = load_image_native(path)
    assert got.dtype == dtype and np.array_equal(got, image)
    assert peek_image(path) == (5, 7, channels, 16 if dtype == np.uint16 else 8)


def test_sixteen_bit_grey_agrees_with_pillow(tmp_path):
    """16-bit grey is read by Pillow itself (mode I;16): an independent reader of our writer."""
    image = (np.arange(35, dtype=np.uint16).reshape(5, 7) * 1871)
    save_image_native(image, tmp_path / "g.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "g.png")), image)
    assert np.array_equal(load_image_native(tmp_path / "g.png")[:, :, 0], image)


def test_transparency_becomes_an_alpha_channel(tmp_path):
    pal = Image.new("P", (4, 3))
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.putpixel((1, 1), 1)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "p.png", transparency=0)
    got = load_image_native(tmp_path / "p.png")
    assert got.shape == (3, 4, 4) and got[1, 1].tolist() == [255, 0, 0, 255] and got[0, 0, 3] == 0
    Image.new("L", (4, 3), 9).save(tmp_path / "k.png", transparency=9)  # a grey tRNS key
    assert load_image_native(tmp_path / "k.png").shape == (3, 4, 2)
    assert load_image(tmp_path / "k.png").shape == (3, 4, 3)  # load_image as before: composited RGB


def test_exif_orientation_applies_to_sixteen_bit_colour(tmp_path):
    import png

    image = np.arange(2 * 3 * 3, dtype=np.uint16).reshape(2, 3, 3) * 3000
    with open(tmp_path / "o.png", "wb") as fh:
        png.Writer(3, 2, bitdepth=16, greyscale=False).write(fh, image.reshape(2, -1))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    # add an eXIf chunk by re-saving through Pillow would drop the 16 bits: insert it by hand
    import struct
    import zlib

    raw = (tmp_path / "o.png").read_bytes()
    data = exif.tobytes()[6:] if exif.tobytes().startswith(b"Exif\x00\x00") else exif.tobytes()
    chunk = struct.pack(">I", len(data)) + b"eXIf" + data + struct.pack(">I", zlib.crc32(b"eXIf" + data))
    (tmp_path / "o.png").write_bytes(raw[:33] + chunk + raw[33:])  # after the 8 + 25 bytes of IHDR
    got = load_image_native(tmp_path / "o.png")
    assert got.dtype == np.uint16 and np.array_equal(got, np.rot90(image, -1))
    assert peek_image(tmp_path / "o.png")[:2] == (3, 2)


def test_formats_that_cannot_hold_the_image_are_refused(tmp_path):
    with pytest.raises(PixseqError, match="no alpha channel"):
        save_image_native(np.zeros((2, 2, 4), np.uint8), tmp_path / "a.jpg")
    with pytest.raises(PixseqError, match="16-bit images can be written as .png or .tif only"):
        save_image_native(np.zeros((2, 2, 3), np.uint16), tmp_path / "a.webp")
    assert not list(tmp_path.iterdir())
    with pytest.raises(PixseqError, match="image too large"):
        save_image_native(np.zeros((4, 4, 2), np.uint16), tmp_path / "big.tif")
        load_image_native(tmp_path / "big.tif", max_pixels=10)
