"""The ``.pxs`` container: a small binary header, the entropy-coded payload, checksums.

Layout (all integers little-endian; version 1)::

    offset  size  field
    0       4     magic  b"PXSQ"
    4       1     format version (1)
    5       1     flags: bit 0 = a model path follows, bit 1 = class label used
    6       1     device kind the probabilities were computed on (0 = cpu, 1 = cuda)
    7       1     downscale factor s >= 1 (the coded image is ceil(H/s) x ceil(W/s))
    8       16    model id: first 16 bytes of the sha256 fingerprint of the model's kind,
                  config and weights (see :func:`model_fingerprint`)
    24      4,4   image height H, width W (the decoded image has exactly this size)
    32      2,2   tile height, width in coded pixels (= the model's training image size)
    36      2,2   token grid per tile (h, w) (= tokenizer.grid_size(tile))
    40      2,2   number of tiles down, across
    44      2     tiles coded per batch (the decoder must use the same batching, see below)
    46      4     vocabulary size V of the tokenizer / prior
    50      2     class label (signed; -1 = none)
    52      4     CRC32 of all decoded tokens (catches a decoder whose floating point differs)
    56      2     length n of the model path (0 when flag bit 0 is clear)
    58      n     model directory path, UTF-8 (a hint for ``pixseq decompress`` without --model)
    58+n    4     payload length in bytes (a multiple of 4: the range coder's 32-bit words)
    62+n    4     CRC32 of bytes [0, 62+n) (the header)
    66+n    ...   payload: the range coder's words, uint32 little-endian
    end-4   4     CRC32 of the payload

The fixed overhead is 70 bytes (66 of header, 4 of payload CRC) plus the path; all of it counts
in the reported bits per pixel.
Format version 2 (a generator's quantised latent, GAN inversion) is laid out in
:mod:`pixseq.codec.latent`; :func:`payload_kind` tells the two apart.
Parsing checks, in order: length, magic, version (a newer version is its own clear error),
header CRC, field sanity (sizes, tile counts consistent with the image size, limits that
keep a hostile header from allocating much), payload length, payload CRC. Every failure is
a one-line :class:`~pixseq.errors.PixseqError`.

Why the batch size and device are recorded: the decoder recomputes the prior's
probabilities and must get the *same floats* as the encoder, bit for bit. Matrix products
on a batch of 8 and a batch of 3 can round differently, so the decoder reproduces the
encoder's batching exactly; CPU and GPU kernels round differently, so the device kind is
recorded, and the CRC of the tokens turns any remaining mismatch into a clear error instead
of a silently wrong image.
"""
from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass

import torch

from pixseq.errors import PixseqError
from pixseq.io import MAX_PIXELS

MAGIC = b"PXSQ"
FORMAT_VERSION = 1
#: The newest format version this pixseq reads: 2 holds a generator's latent
#: (:mod:`pixseq.codec.latent`); token files stay version 1, readable by every pixseq.
LATEST_VERSION = 2
MODEL_ID_BYTES = 16
DEVICE_KINDS = ("cpu", "cuda")
MAX_TOKENS = 1 << 28  # no sane file codes more tokens; stops a forged header from allocating much
MAX_VOCAB = 1 << 20

FLAG_PATH = 1
FLAG_LABEL = 2

# magic, version, flags, device, scale, model id, H, W, tile hw, grid hw, tiles yx, batch, V, label, token crc
_FIXED = struct.Struct("<4sBBBB16sIIHHHHHHHIhI")
_PATHLEN = struct.Struct("<H")
_TAIL = struct.Struct("<II")  # payload length, header crc
_CRC = struct.Struct("<I")
MIN_SIZE = _FIXED.size + _PATHLEN.size + _TAIL.size + _CRC.size


@dataclass(frozen=True)
class Header:
    """Everything the decoder needs besides the model and the payload."""

    model_id: bytes
    height: int
    width: int
    tile: tuple[int, int]
    grid: tuple[int, int]
    tiles: tuple[int, int]
    batch: int
    vocab_size: int
    scale: int = 1
    label: int = -1
    device: str = "cpu"
    token_crc: int = 0
    model_path: str = ""

    @property
    def coded_size(self) -> tuple[int, int]:
        """Size of the (downscaled) image the tokenizer sees, before padding to whole tiles."""
        return -(-self.height // self.scale), -(-self.width // self.scale)

    @property
    def num_tiles(self) -> int:
        return self.tiles[0] * self.tiles[1]

    @property
    def num_tokens(self) -> int:
        return self.num_tiles * self.grid[0] * self.grid[1]

    def validate(self) -> None:
        """Field sanity; raises PixseqError naming the first bad field."""
        H, W = self.height, self.width
        if H < 1 or W < 1 or H * W > MAX_PIXELS:
            raise PixseqError(f"corrupt .pxs header: image size {W}x{H} is out of range")
        if self.scale < 1 or min(self.tile) < 1 or min(self.grid) < 1 or self.batch < 1:
            raise PixseqError("corrupt .pxs header: zero scale, tile, grid or batch size")
        hc, wc = self.coded_size
        expect = (-(-hc // self.tile[0]), -(-wc // self.tile[1]))
        if tuple(self.tiles) != expect:
            raise PixseqError(f"corrupt .pxs header: {self.tiles} tiles do not cover a {wc}x{hc} image")
        if not 2 <= self.vocab_size <= MAX_VOCAB or self.num_tokens > MAX_TOKENS:
            raise PixseqError("corrupt .pxs header: vocabulary or token count out of range")
        if self.device not in DEVICE_KINDS or self.label < -1:
            raise PixseqError("corrupt .pxs header: unknown device kind or label")


def pack(header: Header, payload: bytes) -> bytes:
    """Serialise a header and payload into a complete ``.pxs`` file."""
    header.validate()
    if len(payload) % 4:
        raise ValueError("payload must be whole 32-bit words")
    path = header.model_path.encode("utf-8")
    if len(path) > 0xFFFF:
        path = b""  # an absurdly long path is only a hint: drop it rather than fail
    flags = (FLAG_PATH if path else 0) | (FLAG_LABEL if header.label >= 0 else 0)
    head = _FIXED.pack(MAGIC, FORMAT_VERSION, flags, DEVICE_KINDS.index(header.device), header.scale,
                       header.model_id[:MODEL_ID_BYTES].ljust(MODEL_ID_BYTES, b"\0"), header.height, header.width,
                       *header.tile, *header.grid, *header.tiles, header.batch, header.vocab_size,
                       header.label, header.token_crc)
    head += _PATHLEN.pack(len(path)) + path + struct.pack("<I", len(payload))
    head += _CRC.pack(zlib.crc32(head))
    return head + payload + _CRC.pack(zlib.crc32(payload))


def unpack(data: bytes) -> tuple[Header, bytes]:
    """Parse and verify a ``.pxs`` file; returns the header and the payload bytes."""
    data = bytes(data)
    if not data or not data.startswith(MAGIC[:len(data)]):
        raise PixseqError("not a pixseq compressed file (.pxs): bad magic bytes")
    if len(data) < 5:  # the magic, or its start, and nothing after it: a cut-off file
        raise PixseqError(f"truncated .pxs file: {len(data)} bytes is shorter than any valid header")
    if data[4] > LATEST_VERSION:
        raise PixseqError(f"this .pxs file uses format version {data[4]}, newer than the {LATEST_VERSION} "
                          "this pixseq reads; upgrade pixseq")
    if data[4] == 2:
        raise PixseqError("this .pxs file holds a generator's latent (GAN inversion, format version 2), not "
                          "tokens: decode it with `pixseq decompress` (pixseq.codec.files.decompress_file)")
    if data[4] == 0:
        raise PixseqError("corrupt .pxs file: format version 0")
    if len(data) < MIN_SIZE:
        raise PixseqError(f"truncated .pxs file: {len(data)} bytes is shorter than any valid header")
    f = _FIXED.unpack_from(data, 0)
    (n_path,) = _PATHLEN.unpack_from(data, _FIXED.size)
    off = _FIXED.size + _PATHLEN.size + n_path
    if len(data) < off + _TAIL.size + _CRC.size:
        raise PixseqError("truncated .pxs file: the header is cut short")
    n_payload, head_crc = _TAIL.unpack_from(data, off)
    if zlib.crc32(data[:off + 4]) != head_crc:
        raise PixseqError("corrupt .pxs file: header checksum mismatch")
    start = off + _TAIL.size
    if len(data) != start + n_payload + _CRC.size:
        kind = "truncated" if len(data) < start + n_payload + _CRC.size else "corrupt"
        raise PixseqError(f"{kind} .pxs file: expected {start + n_payload + _CRC.size} bytes, found {len(data)}")
    payload = data[start:start + n_payload]
    if n_payload % 4 or zlib.crc32(payload) != _CRC.unpack_from(data, start + n_payload)[0]:
        raise PixseqError("corrupt .pxs file: payload checksum mismatch")
    _, _, flags, dev, scale, mid, H, W, th, tw, gh, gw, ty, tx, batch, V, label, tok_crc = f
    if dev >= len(DEVICE_KINDS) or flags & ~(FLAG_PATH | FLAG_LABEL):
        raise PixseqError("corrupt .pxs header: unknown flags or device kind")
    try:
        path = data[_FIXED.size + _PATHLEN.size:off].decode("utf-8")
    except UnicodeDecodeError:
        raise PixseqError("corrupt .pxs header: model path is not UTF-8") from None
    header = Header(mid, H, W, (th, tw), (gh, gw), (ty, tx), batch, V, scale, label,
                    DEVICE_KINDS[dev], tok_crc, path)
    header.validate()
    return header, payload


def payload_kind(data: bytes) -> str:
    """``"tokens"`` (format version 1) or ``"latent"`` (version 2, kind 1) for the bytes of a
    ``.pxs`` file; anything else is the one-line error :func:`unpack` would give."""
    data = bytes(data[:6])
    if len(data) >= 6 and data[:4] == MAGIC and data[4] == 2:
        if data[5] != 1:
            raise PixseqError(f"this .pxs file holds payload kind {data[5]}, unknown to this pixseq; upgrade pixseq")
        return "latent"
    if len(data) >= 5 and data[:4] == MAGIC and data[4] == FORMAT_VERSION:
        return "tokens"
    unpack(data)  # raises the right error (bad magic, truncated, newer version, version 0)
    raise PixseqError("truncated .pxs file")  # pragma: no cover - unpack of 6 bytes always raises


def header_size(data: bytes) -> int:
    """Bytes of a packed file that are not payload words (header + trailing CRC)."""
    (n_path,) = _PATHLEN.unpack_from(data, _FIXED.size)
    return _FIXED.size + _PATHLEN.size + n_path + _TAIL.size + _CRC.size


def model_fingerprint(model: torch.nn.Module) -> bytes:
    """sha256 over a model's kind, config and every tensor of its state dict (name, dtype,
    shape, bytes in sorted name order) — the identity of a model, wherever it was loaded from.

    Hashing the tensors in memory (rather than the ``model.safetensors`` file) means a
    model built in a test, or loaded from a copy of its directory, has the same id.
    """
    from pixseq.config import to_dict

    h = hashlib.sha256()
    kind = getattr(model, "kind", type(model).__name__)
    cfg = getattr(model, "config", None)
    try:
        cfg_doc = to_dict(cfg) if cfg is not None else {}
    except Exception:  # noqa: BLE001 - a non-dataclass config: its repr still identifies it
        cfg_doc = repr(cfg)
    h.update(json.dumps({"kind": kind, "config": cfg_doc}, sort_keys=True, default=str).encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.digest()
