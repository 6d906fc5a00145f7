"""The neural codec: entropy coding, the .pxs container, round trips, determinism, rate accounting."""
from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from pixseq.codec import compress, compress_with_stats, decompress, read_header, reconstruct
from pixseq.codec import container
from pixseq.codec.entropy import MIN_PROBABILITY, TokenDecoder, TokenEncoder
from pixseq.errors import PixseqError

sys.path.insert(0, str(Path(__file__).parent))
from _codec_models import sample_image, tiny_igpt, tiny_taming  # noqa: E402


# ------------------------------------------------------------------ entropy coding
def test_range_coder_round_trip_and_rate_matches_cross_entropy():
    rng = np.random.default_rng(0)
    V, steps, B = 64, 200, 8
    probs = [rng.dirichlet(np.full(V, 0.3), size=B) for _ in range(steps)]
    symbols = [np.array([rng.choice(V, p=p) for p in P]) for P in probs]
    enc = TokenEncoder()
    for s, p in zip(symbols, probs):
        enc.encode(s, p)
    data = enc.finish()
    # independent float64 reference for the ideal code length
    ideal = -sum(np.log2(p[np.arange(B), s]).sum() for s, p in zip(symbols, probs))
    assert enc.ideal_bits == pytest.approx(ideal, rel=1e-12)
    # 1600 symbols: 24-bit quantisation costs << 0.1 %, termination <= 64 bits; 1 % is generous
    assert 8 * len(data) <= ideal * 1.01 + 64
    dec = TokenDecoder(data)
    for s, p in zip(symbols, probs):
        np.testing.assert_array_equal(dec.decode(p), s)


def test_zero_probability_token_is_still_encodable_at_about_precision_bits():
    V = 512
    p = np.zeros((1, V))
    p[0, 0] = 1.0
    enc = TokenEncoder()
    for _ in range(50):
        enc.encode(np.array([7]), p)  # the model says "impossible"
    data = enc.finish()
    bits_each = 8 * len(data) / 50
    # leaky quantisation gives it probability ~2**-24: ~24 bits each, never infinite
    assert -np.log2(MIN_PROBABILITY) - 1 <= bits_each <= -np.log2(MIN_PROBABILITY) + 2
    dec = TokenDecoder(data)
    assert all(dec.decode(p)[0] == 7 for _ in range(50))


# ------------------------------------------------------------------ container
def _header(**kw) -> container.Header:
    base = dict(model_id=bytes(range(16)), height=19, width=13, tile=(8, 8), grid=(8, 8), tiles=(3, 2), batch=4,
                vocab_size=16, token_crc=123, model_path="/models/m")
    return container.Header(**{**base, **kw})


def test_container_round_trip_and_layout():
    h = _header(scale=1, label=-1)
    payload = struct.pack("<3I", 1, 2, 3)
    data = container.pack(h, payload)
    assert data[:4] == b"PXSQ" and data[4] == container.FORMAT_VERSION
    assert len(data) == 70 + len(h.model_path) + len(payload)  # documented fixed overhead
    h2, p2 = container.unpack(data)
    assert h2 == h and p2 == payload
    assert container.header_size(data) == len(data) - len(payload)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: b"JUNK" + d[4:], "bad magic"),
    (lambda d: d[:4] + bytes([container.LATEST_VERSION + 1]) + d[5:], "newer"),
    (lambda d: d[:4] + bytes([2]) + d[5:], "generator's latent"),  # a version-2 file given to the token reader
    (lambda d: d[:40], "truncated"),
    (lambda d: d[:-3], "truncated"),
    (lambda d: d[:30] + bytes([d[30] ^ 1]) + d[31:], "header checksum"),
    (lambda d: d[:-6] + bytes([d[-6] ^ 0x80]) + d[-5:], "payload checksum"),
    (lambda d: d + b"\0\0\0\0", "expected"),
    (lambda d: d[:4], "truncated"),  # the magic alone was reported as 'bad magic bytes'
    (lambda d: d[:2], "truncated"),
])
def test_container_rejects_bad_files_with_one_clear_line(mutate, message):
    data = container.pack(_header(), b"\1\2\3\4" * 5)
    with pytest.raises(PixseqError, match=message) as err:
        container.unpack(mutate(data))
    assert "\n" not in str(err.value)


def test_container_validates_fields_even_with_a_valid_checksum():
    data = bytearray(container.pack(_header(), b"\0" * 8))
    struct.pack_into("<H", data, 40, 9)  # tiles down: 9 tiles do not match a 19-row image
    off = len(data) - 4 - 8 - 4 - 4  # payload-length field: before header crc, payload, payload crc
    struct.pack_into("<I", data, off + 4, zlib.crc32(bytes(data[:off + 4])))  # re-seal the header
    with pytest.raises(PixseqError, match="tiles do not cover"):
        container.unpack(bytes(data))


def test_model_fingerprint_tracks_weights_not_object_identity():
    a, b = tiny_igpt(seed=0), tiny_igpt(seed=0)
    assert container.model_fingerprint(a) == container.model_fingerprint(b)
    with torch.no_grad():
        b.prior.lm_head.weight[0, 0] += 1e-3
    assert container.model_fingerprint(a) != container.model_fingerprint(b)


# ------------------------------------------------------------------ codec
@pytest.fixture(scope="module")
def model():
    return tiny_igpt()


def test_round_trip_equals_tokenizer_reconstruction_bit_for_bit(model):
    img = sample_image(19, 13)
    data, stats = compress_with_stats(img, model, "some/dir", batch=4)
    out = decompress(data, model)
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, reconstruct(img, model, batch=4))
    # a palette tokenizer is per-pixel, so tiling must not change it: compare with the
    # tokenizer applied to the whole image at once
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    whole = model.tokenizer.decode(model.tokenizer.encode(x))[0]
    np.testing.assert_array_equal(out, (whole.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())
    # rate accounting: whole file, header included
    assert stats.file_bytes == len(data) and stats.bpp == pytest.approx(len(data) * 8 / (19 * 13))
    assert stats.tokens == 3 * 2 * 64 and stats.payload_bits == 8 * (len(data) - stats.header_bytes)
    # 384 tokens: the range coder's <= 64 termination bits dominate; stays within a few %
    assert -0.01 < stats.overhead < 0.05
    assert read_header(data).model_path == "some/dir"


def test_downscaled_coding_restores_original_size(model):
    img = sample_image(21, 30, seed=1)
    data = compress(img, model, scale=3)
    out = decompress(data, model)
    assert out.shape == img.shape
    np.testing.assert_array_equal(out, reconstruct(img, model, scale=3))
    assert len(data) < len(compress(img, model))  # 9x fewer tokens


def test_wrong_model_is_a_clear_error(model):
    data = compress(sample_image(), model)
    other = tiny_igpt(seed=1)
    with pytest.raises(PixseqError, match="wrong model"):
        decompress(data, other)


def test_class_conditional_model_records_its_label():
    m = tiny_igpt(num_classes=3)
    img = sample_image(8, 8)
    d1, d2 = compress(img, m, label=1), compress(img, m, label=2)
    assert read_header(d1).label == 1 and d1 != d2
    np.testing.assert_array_equal(decompress(d2, m), reconstruct(img, m))
    with pytest.raises(PixseqError, match="class"):
        compress(img, m, label=3)
    with pytest.raises(PixseqError, match="unconditional"):
        compress(img, tiny_igpt(), label=0)


def test_vqgan_latent_gpt_model_round_trip():
    """The taming pair (VQGAN tokenizer, factor 4) through the same codec: tiles of 16x16 px, 4x4 codes."""
    m = tiny_taming()
    img = sample_image(30, 21, seed=4)
    data, stats = compress_with_stats(img, m, batch=3)
    h = read_header(data)
    assert (h.tile, h.grid, h.tiles, h.vocab_size) == ((16, 16), (4, 4), (2, 2), 32)
    assert stats.tokens == 4 * 16
    out = decompress(data, m)
    assert out.shape == img.shape
    # the VQGAN's decoder sees one tile at a time, so the reference is the tiled reconstruction
    np.testing.assert_array_equal(out, reconstruct(img, m, batch=3))
    with pytest.raises(PixseqError, match="wrong model"):
        decompress(data, tiny_taming(seed=1))


def test_reconstruct_equals_decompress_under_several_threads():
    """reconstruct() ran the tokenizer with the caller's thread count, the codec with one:
    with two threads a VQGAN's convolutions rounded differently and 4 pixels differed here."""
    from dataclasses import replace

    from pixseq.models.taming import Taming, taming_config
    from pixseq.tokenizers.vqgan import vqgan_config

    torch.manual_seed(0)
    tok = replace(vqgan_config(factor=4, codes=64, dim=16, ch=32), norm_groups=8)
    m = Taming(taming_config(tok, (32, 32), n_layer=1, n_head=2, n_embd=32)).eval()
    img = sample_image(96, 96)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        np.testing.assert_array_equal(decompress(compress(img, m), m), reconstruct(img, m))
        assert torch.get_num_threads() == 2  # the codec restores the caller's setting
    finally:
        torch.set_num_threads(before)


def test_bad_images_are_rejected(model):
    with pytest.raises(PixseqError, match="uint8"):
        compress(np.zeros((4, 4), np.uint8), model)
    with pytest.raises(PixseqError, match="scale"):
        compress(sample_image(), model, scale=0)


def test_scale_and_batch_take_numpy_integers_and_refuse_floats_and_bools(model):
    img = sample_image()
    # np.int64 (a sweep over np.arange) was refused as 'scale must be an integer ... got np.int64(2)'
    data = compress(img, model, scale=np.int64(2), batch=np.int64(3))
    assert data == compress(img, model, scale=2, batch=3)
    np.testing.assert_array_equal(decompress(data, model), reconstruct(img, model, scale=2, batch=3))
    for kwargs in ({"batch": 2.5}, {"scale": True}):  # a TypeError traceback / silently scale 1
        with pytest.raises(PixseqError, match="must be an integer"):
            compress(img, model, **kwargs)


def test_a_model_with_nan_weights_is_a_clear_error():
    broken = tiny_igpt()
    with torch.no_grad():  # what a diverged training run saves
        next(broken.prior.parameters()).fill_(float("nan"))
    # constriction's 'Probability distribution not normalizable' ValueError was a traceback
    with pytest.raises(PixseqError, match="NaN or infinite probabilities"):
        compress(sample_image(), broken)


_CHILD = """
import sys; sys.path.insert(0, {tests!r})
import numpy as np, torch
torch.set_num_threads(1)
from _codec_models import tiny_igpt, sample_image
from pixseq.codec import compress, decompress
m = tiny_igpt()
sys.stdout.write(compress(sample_image(), m, batch=4).hex())
np.save({out!r}, decompress(bytes.fromhex({data!r}), m))
"""


def test_deterministic_across_processes(model, tmp_path):
    """Another process (fresh interpreter, fresh model build) writes identical bytes and decodes ours."""
    img = sample_image()
    data = compress(img, model, batch=4)
    assert compress(img, model, batch=4) == data  # same process, second run
    code = _CHILD.format(tests=str(Path(__file__).parent), out=str(tmp_path / "dec.npy"), data=data.hex())
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert bytes.fromhex(res.stdout) == data
    np.testing.assert_array_equal(np.load(tmp_path / "dec.npy"), reconstruct(img, model, batch=4))
