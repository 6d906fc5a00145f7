"""Fuzzing the .pxs decoder: mutated, truncated and re-sealed files give only PixseqError — never a
crash, a hang or another exception type. (benchmarks/codec_fuzz.py runs >= 10 000 cases.)"""
from __future__ import annotations

import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixseq.codec import compress, decompress
from pixseq.codec import container
from pixseq.errors import PixseqError

sys.path.insert(0, str(Path(__file__).parent))
from _codec_models import sample_image, tiny_igpt  # noqa: E402

MODEL = tiny_igpt(size=4)
IMAGE = sample_image(7, 5)
VALID = compress(IMAGE, MODEL, "m", batch=2)
REFERENCE = decompress(VALID, MODEL)
SLOW = 5.0  # seconds; one decode of this 4-tile file takes ~30 ms, so this only trips on a hang


def reseal(data: bytes) -> bytes:
    """Recompute both CRCs so a mutation reaches the field checks and the range decoder."""
    d = bytearray(data)
    if len(d) < container.MIN_SIZE:
        return bytes(d)
    (n_path,) = struct.unpack_from("<H", d, container._FIXED.size)
    off = container._FIXED.size + 2 + n_path
    if len(d) < off + 12:
        return bytes(d)
    struct.pack_into("<I", d, off + 4, zlib.crc32(bytes(d[:off + 4])))
    start = off + 8
    (n_payload,) = struct.unpack_from("<I", d, off)
    if len(d) == start + n_payload + 4:
        struct.pack_into("<I", d, start + n_payload, zlib.crc32(bytes(d[start:start + n_payload])))
    return bytes(d)


def check(data: bytes) -> None:
    t0 = time.perf_counter()
    try:
        out = decompress(data, MODEL)
    except PixseqError as exc:
        assert "\n" not in str(exc) and str(exc)
    else:  # a mutation that leaves a decodable file must decode to a well-formed image
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
        if data == VALID:
            np.testing.assert_array_equal(out, REFERENCE)
    assert time.perf_counter() - t0 < SLOW


edits = st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=4)
FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(edits, st.booleans())
def test_byte_mutations(changes, sealed):
    d = bytearray(VALID)
    for pos, val in changes:
        d[pos] = val
    check(reseal(bytes(d)) if sealed else bytes(d))


@FUZZ
@given(st.integers(0, len(VALID) - 1), st.booleans())
def test_truncation(n, sealed):
    d = VALID[:n]
    check(reseal(d) if sealed else d)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.integers(0, len(VALID)), st.binary(min_size=1, max_size=16), st.booleans())
def test_insertions(pos, blob, sealed):
    d = VALID[:pos] + blob + VALID[pos:]
    check(reseal(d) if sealed else d)


@pytest.mark.parametrize("field_offset, fmt, value", [
    (24, "<I", 70_000), (24, "<I", 0), (40, "<H", 60_000), (44, "<H", 0), (44, "<H", 1), (46, "<I", 1 << 30),
    (7, "<B", 0), (6, "<B", 1), (6, "<B", 7), (5, "<B", 0xFF), (50, "<h", 3), (50, "<h", -2), (36, "<H", 4096),
])
def test_forged_header_fields(field_offset, fmt, value):
    """Re-sealed headers with hostile values: rejected (or decoded) quickly, never allocating much."""
    d = bytearray(VALID)
    struct.pack_into(fmt, d, field_offset, value)
    with pytest.raises(PixseqError):
        decompress(reseal(bytes(d)), MODEL)
