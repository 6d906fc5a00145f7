"""``.pxs`` format version 2, payload kind 1: a generator's quantised latent (GAN inversion).

Version-1 files (tokens coded with a prior, :mod:`pixseq.codec.container`) are unchanged and
still written by the token codec, so every pixseq reads them; a version-1 reader given a
version-2 file says "format version 2, newer than the 1 this pixseq reads; upgrade pixseq".
In version 2 the byte after the version names the payload kind; an unknown kind is its own
clear error. Layout (little-endian; ``varint`` = unsigned LEB128, 1 byte below 128)::

    offset  size  field
    0       4     magic b"PXSQ"
    4       1     format version (2)
    5       1     payload kind (1 = latent)
    6       1     flags: bit 0 = a model path follows, bit 1 = class label used
    7       1     quantiser (high 3 bits: 0 = qsgd, 1 = uniform) | bits - 1 (low 5 bits)
    8       8     model id: first 8 bytes of the model's sha256 fingerprint (kind, config,
                  weights; :func:`~pixseq.codec.container.model_fingerprint`). 64 bits tell
                  models apart (an accidental match: 2**-64); they are no defence against forgery
    16      ...   varint H, varint W (the decoded image's size: the input's)
                  varint n, then n varints: the latent's shape
                  [varint class label]              when flag bit 1
                  float32 scale (QSGD: ||z||; uniform: r)
                  float16 mean, float16 std          the entropy model (see below)
                  [varint n, n bytes UTF-8 path]    when flag bit 0: the model directory
                  varint payload length (bytes, a multiple of 4)
                  4     CRC32 of the quantised symbols (int32 LE): payload corruption, or a
                        decoder that disagrees, becomes a clear error
                  4     CRC32 of every header byte before it
    ...     ...   payload: the range coder's 32-bit words

Entropy model: every symbol (a signed QSGD level, or a uniform index) is coded with
``constriction``'s ``QuantizedGaussian`` over the quantiser's whole alphabet with the
header's mean and standard deviation; the encoder tries standard deviations around the
symbols' own and keeps the one that gives the fewest words. The model depends only on
header numbers, never on the generator, so unlike token files a latent file decodes to the
same latent on any machine (the generator then runs on whatever device is at hand).
Without a path the header is 37 bytes for a 1-d latent of fewer than 128 coordinates (a 28 x 28
image: 0.38 bpp before the first bit of z); all of it counts in the bpp.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from pixseq.codec.container import MAGIC
from pixseq.errors import PixseqError
from pixseq.inversion.quantize import QUANTIZERS, symbol_range
from pixseq.io import MAX_PIXELS

VERSION = 2
KIND_LATENT = 1
KINDS = {KIND_LATENT: "latent"}
MODEL_ID_BYTES = 8
MAX_LATENT = 1 << 24  # coordinates; stops a forged header from allocating much
MAX_DIMS = 4
FLAG_PATH, FLAG_LABEL = 1, 2
#: The standard deviations tried, as multiples of the symbols' own RMS spread.
_STD_STEPS = tuple(2 ** (k / 4) for k in range(-4, 5))


@dataclass(frozen=True)
class LatentHeader:
    """Everything the decoder needs besides the generator and the payload."""

    model_id: bytes
    height: int
    width: int
    latent_shape: tuple[int, ...]
    quantizer: str
    bits: int
    scale: float
    mean: float
    std: float
    label: int = -1
    model_path: str = ""
    symbol_crc: int = 0

    @property
    def num_symbols(self) -> int:
        return int(np.prod(self.latent_shape))

    def validate(self) -> None:
        """Field sanity; a one-line PixseqError naming the first bad field."""
        if self.height < 1 or self.width < 1 or self.height * self.width > MAX_PIXELS:
            raise PixseqError(f"corrupt .pxs header: image size {self.width}x{self.height} is out of range")
        if not 1 <= len(self.latent_shape) <= MAX_DIMS or min(self.latent_shape) < 1 \
                or self.num_symbols > MAX_LATENT:
            raise PixseqError(f"corrupt .pxs header: latent shape {self.latent_shape} is out of range")
        if self.quantizer not in QUANTIZERS or not 1 <= self.bits <= 16:
            raise PixseqError("corrupt .pxs header: unknown quantiser or bit depth")
        if not (np.isfinite(self.scale) and self.scale >= 0 and np.isfinite(self.mean) and self.std > 0):
            raise PixseqError("corrupt .pxs header: bad scale or entropy-model parameters")
        if self.label < -1:
            raise PixseqError("corrupt .pxs header: bad class label")


# ------------------------------------------------------------------------------ varints
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


class _Reader:
    """Reads a header field by field; running off the end is a 'truncated' error."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise PixseqError("truncated .pxs file: the header is cut short")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value
            if shift > 35:
                raise PixseqError("corrupt .pxs header: a number field is too long")


# ------------------------------------------------------------------------------ entropy coding
def _gaussian(lo: int, hi: int, mean: float, std: float):
    from pixseq.codec.entropy import _constriction

    return _constriction().stream.model.QuantizedGaussian(lo, hi, mean, std)


def _encode(symbols: np.ndarray, lo: int, hi: int, mean: float, std: float) -> np.ndarray:
    from pixseq.codec.entropy import _constriction

    enc = _constriction().stream.queue.RangeEncoder()
    enc.encode(symbols, _gaussian(lo, hi, mean, std))
    return enc.get_compressed()


def _f16(x: float) -> float:
    return float(np.float16(x))


def encode_symbols(symbols: np.ndarray, lo: int, hi: int) -> tuple[bytes, float, float]:
    """Range-code integer ``symbols`` in ``lo .. hi``; returns ``(payload, mean, std)`` with the
    float16 mean and standard deviation that gave the shortest payload."""
    sym = np.ascontiguousarray(np.asarray(symbols).reshape(-1), dtype=np.int32)
    mean = _f16(0.0 if lo < 0 else float(sym.mean()) if sym.size else 0.0)
    rms = float(np.sqrt(np.mean((sym - mean) ** 2))) if sym.size else 1.0
    best = None
    for step in _STD_STEPS:
        std = _f16(min(max(rms * step, 0.05), 60000.0))
        words = _encode(sym, lo, hi, mean, std)
        if best is None or len(words) < len(best[0]):
            best = (words, mean, std)
    words, mean, std = best
    return words.astype("<u4").tobytes(), mean, std


def decode_symbols(payload: bytes, header: LatentHeader) -> np.ndarray:
    """The symbols of a latent file's payload, int64 of the latent's shape, CRC-checked."""
    from pixseq.codec.entropy import _constriction

    lo, hi = symbol_range(header.quantizer, header.bits)
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    try:
        dec = _constriction().stream.queue.RangeDecoder(words)
        sym = np.asarray(dec.decode(_gaussian(lo, hi, header.mean, header.std), header.num_symbols))
    except BaseException as exc:  # constriction signals invalid data with AssertionError / ValueError
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise PixseqError("corrupt .pxs payload: the range decoder hit invalid data") from None
    if symbol_crc(sym) != header.symbol_crc:
        raise PixseqError("corrupt .pxs file: the decoded latent fails its checksum (payload damaged)")
    return sym.astype(np.int64).reshape(header.latent_shape)


def symbol_crc(symbols: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(np.asarray(symbols).reshape(-1), dtype="<i4").tobytes())


# ------------------------------------------------------------------------------ container
def pack_latent(header: LatentHeader, payload: bytes) -> bytes:
    """Serialise a header and payload into a complete version-2 ``.pxs`` file."""
    header.validate()
    if len(payload) % 4:
        raise ValueError("payload must be whole 32-bit words")
    path = header.model_path.encode("utf-8")
    path = b"" if len(path) > 0xFFFF else path  # an absurdly long path is only a hint: drop it
    flags = (FLAG_PATH if path else 0) | (FLAG_LABEL if header.label >= 0 else 0)
    q = QUANTIZERS.index(header.quantizer) << 5 | (header.bits - 1)
    head = MAGIC + bytes([VERSION, KIND_LATENT, flags, q]) + header.model_id[:MODEL_ID_BYTES].ljust(MODEL_ID_BYTES, b"\0")
    head += _varint(header.height) + _varint(header.width) + _varint(len(header.latent_shape))
    head += b"".join(_varint(d) for d in header.latent_shape)
    head += _varint(header.label) if header.label >= 0 else b""
    head += struct.pack("<fee", header.scale, header.mean, header.std)
    head += _varint(len(path)) + path if path else b""
    head += _varint(len(payload)) + struct.pack("<I", header.symbol_crc)
    return head + struct.pack("<I", zlib.crc32(head)) + payload


def unpack_latent(data: bytes) -> tuple[LatentHeader, bytes]:
    """Parse and verify a version-2 latent file; returns the header and the payload bytes."""
    data = bytes(data)
    if len(data) < 8 or data[:4] != MAGIC or data[4] != VERSION:
        raise PixseqError("not a pixseq latent file (.pxs format version 2)")
    if data[5] != KIND_LATENT:
        raise PixseqError(f"this .pxs file holds payload kind {data[5]}, unknown to this pixseq; upgrade pixseq")
    flags, q = data[6], data[7]
    if flags & ~(FLAG_PATH | FLAG_LABEL) or (q >> 5) >= len(QUANTIZERS):
        raise PixseqError("corrupt .pxs header: unknown flags or quantiser")
    r = _Reader(data, 8)
    model_id = r.take(MODEL_ID_BYTES)
    height, width, ndims = r.varint(), r.varint(), r.varint()
    if not 1 <= ndims <= MAX_DIMS:
        raise PixseqError(f"corrupt .pxs header: a latent of {ndims} dimensions")
    shape = tuple(r.varint() for _ in range(ndims))
    label = r.varint() if flags & FLAG_LABEL else -1
    scale, mean, std = struct.unpack("<fee", r.take(8))
    path = r.take(r.varint()) if flags & FLAG_PATH else b""
    n_payload = r.varint()
    (crc,) = struct.unpack("<I", r.take(4))
    (head_crc,) = struct.unpack("<I", r.take(4))
    if zlib.crc32(data[:r.pos - 4]) != head_crc:
        raise PixseqError("corrupt .pxs file: header checksum mismatch")
    if len(data) != r.pos + n_payload:
        kind = "truncated" if len(data) < r.pos + n_payload else "corrupt"
        raise PixseqError(f"{kind} .pxs file: expected {r.pos + n_payload} bytes, found {len(data)}")
    if n_payload % 4:
        raise PixseqError("corrupt .pxs payload: not a whole number of 32-bit words")
    try:
        model_path = path.decode("utf-8")
    except UnicodeDecodeError:
        raise PixseqError("corrupt .pxs header: model path is not UTF-8") from None
    header = LatentHeader(model_id, height, width, shape, QUANTIZERS[q >> 5], (q & 31) + 1, float(scale),
                          float(mean), float(std), label, model_path, crc)
    header.validate()
    return header, data[r.pos:]


def header_bytes(data: bytes) -> int:
    """Bytes of a latent file that are not payload words."""
    header, payload = unpack_latent(data)
    return len(data) - len(payload)
