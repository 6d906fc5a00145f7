"""The pixseq neural codec: tokenize an image, entropy-code the tokens with the prior.

``compress(image, model)`` -> bytes of a ``.pxs`` file; ``decompress(data, model)`` -> the
image. ``model`` is any tokenizer + prior pair (palette iGPT, VQGAN + latent GPT) with
``.tokenizer``, ``.prior``, ``.image_size`` and ``.num_classes`` (see
:class:`pixseq.models.base.TokenImageModel`). The codec is lossy exactly as much as the
tokenizer is: the decoded image equals the tokenizer's own reconstruction
(:func:`reconstruct`), bit for bit; the entropy coding itself is lossless.

**Tiling.** The prior's context is one training-size image, so the (optionally
downscaled by ``scale``) image is padded by edge replication to whole tiles of
``model.image_size`` and every tile is coded independently, ``batch`` tiles at a time, in
row-major tile order. Memory is bounded by one batch of tiles (their pixels, tokens and
the prior's KV cache), whatever the image size; the decoder crops the padding and resizes
back to the original size, so the output always has the input's size.

**Determinism and portability (stated honestly).** Encoder and decoder both drive the prior
through :class:`pixseq.priors.sampling.IncrementalDecoder`, one token per step with the same
batching, so they compute the same float logits; these become integer frequency tables by a
deterministic rule (:mod:`pixseq.codec.entropy`). Hence decode(encode(x)) is bit-exact
across runs and processes *on the same machine and software stack*. On CPU the coding runs
single-threaded, because PyTorch's matmul results depend on the thread count (measured: 1
vs 2 threads change the last bits). A file is **not** guaranteed to decode on a different
device type (CPU vs GPU), GPU model, CPU instruction set or PyTorch version, because their float kernels may round
differently and a single flipped probability bit derails an entropy decoder. The header
records the device type and a CRC of the tokens, so such a mismatch is reported as a clear
error instead of producing a wrong image.

**Rate accounting.** bits per pixel = file bytes x 8 / (H x W) of the original image,
header included. :class:`CodecStats` also reports the model's cross-entropy
``sum -log2 p(token)`` and the coder's overhead over it (payload only, header excluded).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
import os
import time
import zlib
from dataclasses import asdict, dataclass
from typing import Iterator

import numpy as np
import torch
from PIL import Image

from pixseq.codec import container
from pixseq.codec.container import Header
from pixseq.codec.entropy import TokenDecoder, TokenEncoder, probabilities
from pixseq.errors import PixseqError
from pixseq.io import MAX_PIXELS, to_tensor, to_uint8
from pixseq.priors.sampling import IncrementalDecoder

DEFAULT_BATCH = 16
#: The largest downscale factor and tiles-per-batch a .pxs header can record (one byte, two bytes).
MAX_SCALE, MAX_BATCH = 255, 0xFFFF


@dataclass
class CodecStats:
    """Rate accounting of one compressed image."""

    height: int
    width: int
    file_bytes: int
    header_bytes: int
    tokens: int
    ideal_bits: float  # the model's cross-entropy, sum of -log2 p(token)
    seconds: float
    vocab_size: int = 0  # tokens the model chooses among (0: not known)

    @property
    def bpp(self) -> float:
        """Bits per pixel of the whole file (header included) over the original image."""
        return self.file_bytes * 8 / (self.height * self.width)

    @property
    def payload_bits(self) -> int:
        return 8 * (self.file_bytes - self.header_bytes)

    @property
    def overhead(self) -> float:
        """Relative excess of the coded payload over the model cross-entropy (header excluded)."""
        return self.payload_bits / self.ideal_bits - 1.0 if self.ideal_bits > 0 else float("nan")

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("nan")

    @property
    def uniform_bits(self) -> float:
        """Bits per token of a uniform code over the vocabulary: what no model at all costs."""
        return math.log2(self.vocab_size) if self.vocab_size > 1 else float("nan")

    def worse_than_uniform(self) -> str | None:
        """A notice when the model's cross-entropy is above the uniform code's (it codes worse
        than knowing nothing: untrained, or trained on unlike images), else None."""
        if not self.tokens or not self.uniform_bits < self.ideal_bits / self.tokens:
            return None
        return (f"the model codes this image at {self.ideal_bits / self.tokens:.3f} bits/token, more than "
                f"the {self.uniform_bits:.3f} bits of a uniform code over its {self.vocab_size} tokens: it "
                f"predicts worse than no model (undertrained, or trained on unlike images)")

    def as_dict(self) -> dict:
        return {**asdict(self), "bpp": self.bpp, "payload_bits": self.payload_bits, "overhead": self.overhead,
                "tokens_per_second": self.tokens_per_second}


# ------------------------------------------------------------------------------ geometry
def _device(model: torch.nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _integer(name: str, value, top: int) -> int:
    """``value`` as an int in 1..top: NumPy integers count (a sweep over ``np.arange``), bools
    and floats do not (a float batch was a TypeError deep in the tiling)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= value <= top:
        raise PixseqError(f"{name} must be an integer in 1..{top}, got {value!r}")
    return int(value)


def plan(model, height: int, width: int, scale: int = 1, batch: int = DEFAULT_BATCH, label: int = -1,
         model_id: bytes | None = None) -> Header:
    """The header geometry for coding an ``height x width`` image with ``model`` (no payload yet).

    ``model_id``: the model's fingerprint when already known (hashing a large model's weights
    takes a moment, so callers that have it pass it)."""
    scale, batch = _integer("scale", scale, MAX_SCALE), _integer("batch", batch, MAX_BATCH)
    th, tw = (int(v) for v in model.image_size)
    gh, gw = (int(v) for v in model.tokenizer.grid_size(th, tw))
    hc, wc = -(-height // scale), -(-width // scale)
    block = getattr(getattr(model.prior, "config", None), "block_size", gh * gw)
    if gh * gw > block:
        raise PixseqError(f"model's token grid {gw}x{gh} exceeds its prior's context of {block} tokens")
    if getattr(getattr(model, "config", None), "condition", ""):
        raise PixseqError("the codec does not support image-conditional priors (the condition image would have "
                          "to be coded too); use an unconditional or class-conditional model")
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    if num_classes and not 0 <= label < num_classes:
        raise PixseqError(f"this model is class-conditional: give a class label in 0..{num_classes - 1}")
    if not num_classes and label != -1:
        raise PixseqError("this model is unconditional; it takes no class label")
    model_id = model_id or container.model_fingerprint(model)[:container.MODEL_ID_BYTES]
    return Header(model_id=model_id, height=height,
                  width=width, tile=(th, tw), grid=(gh, gw), tiles=(-(-hc // th), -(-wc // tw)),
                  batch=batch, vocab_size=int(model.tokenizer.vocab_size), scale=scale, label=label,
                  device=_device(model).type)


def _coded_image(image: np.ndarray, header: Header) -> np.ndarray:
    """The image the tokenizer sees: downscaled by ``header.scale`` (Lanczos), uint8."""
    if header.scale == 1:
        return image
    hc, wc = header.coded_size
    return np.asarray(Image.fromarray(image).resize((wc, hc), Image.Resampling.LANCZOS))


def _tile_batches(image: np.ndarray, header: Header) -> Iterator[np.ndarray]:
    """Pad (edge replication) to whole tiles and yield ``(b, th, tw, 3)`` uint8 batches, row-major."""
    (th, tw), (ty, tx) = header.tile, header.tiles
    hc, wc = image.shape[:2]
    padded = np.pad(image, ((0, ty * th - hc), (0, tx * tw - wc), (0, 0)), mode="edge")
    # (ty*th, tx*tw, 3) -> (ty, th, tx, tw, 3) -> (ty, tx, th, tw, 3) -> (N, th, tw, 3)
    tiles = padded.reshape(ty, th, tx, tw, 3).transpose(0, 2, 1, 3, 4).reshape(-1, th, tw, 3)
    for start in range(0, len(tiles), header.batch):
        yield tiles[start:start + header.batch]


def _to_batch(tiles: np.ndarray, device: torch.device) -> torch.Tensor:
    """``(b, th, tw, 3)`` uint8 -> ``(b, 3, th, tw)`` float in [0, 1]."""
    return torch.stack([to_tensor(t) for t in tiles]).to(device)


class _Canvas:
    """Collects decoded tiles, then crops the padding and undoes the downscale."""

    def __init__(self, header: Header) -> None:
        (th, tw), (ty, tx) = header.tile, header.tiles
        self.header = header
        self.tiles = np.zeros((ty * tx, th, tw, 3), dtype=np.uint8)
        self.filled = 0

    def add(self, images: torch.Tensor) -> None:
        for im in images:  # (3, th, tw) float in [0, 1]
            self.tiles[self.filled] = to_uint8(im)
            self.filled += 1

    def image(self) -> np.ndarray:
        h = self.header
        (th, tw), (ty, tx) = h.tile, h.tiles
        full = self.tiles.reshape(ty, tx, th, tw, 3).transpose(0, 2, 1, 3, 4).reshape(ty * th, tx * tw, 3)
        hc, wc = h.coded_size
        out = np.ascontiguousarray(full[:hc, :wc])
        if h.scale > 1:
            out = np.asarray(Image.fromarray(out).resize((h.width, h.height), Image.Resampling.BICUBIC))
        return out


@contextlib.contextmanager
def _deterministic_threads(device: torch.device) -> Iterator[None]:
    """Run CPU coding single-threaded: PyTorch's CPU matmuls split their reductions across
    threads, so 1 and 2 threads give different last bits (measured) and a file written under
    one thread count would not decode under another. One thread also costs little here:
    each step is a ``(batch, 1)`` token forward pass, too small to parallelise well."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cond(header: Header, b: int, device: torch.device) -> torch.Tensor | None:
    return None if header.label < 0 else torch.full((b, 1), header.label, dtype=torch.long, device=device)


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
        raise PixseqError(f"compress needs an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    if image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise PixseqError(f"image too large to compress: {image.shape[1]}x{image.shape[0]} > {MAX_PIXELS} pixels")
    return np.ascontiguousarray(image)


# ------------------------------------------------------------------------------ public API
@torch.inference_mode()
def compress_with_stats(image: np.ndarray, model, model_dir: str | None = None, *, scale: int = 1,
                        batch: int = DEFAULT_BATCH, label: int | None = None) -> tuple[bytes, CodecStats]:
    """Compress an ``(H, W, 3)`` uint8 image; returns the ``.pxs`` bytes and their rate accounting.

    ``model_dir`` (optional) is recorded in the header as a hint for decoding without
    ``--model``; ``scale`` codes the image downscaled by that factor (fewer tokens, lower
    rate); ``label`` is the class for a class-conditional prior (default 0 for those).
    """
    t0 = time.perf_counter()
    image = _check_image(image)
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    label = (0 if num_classes else -1) if label is None else int(label)
    header = plan(model, image.shape[0], image.shape[1], scale, batch, label)
    device = _device(model)
    enc, crc = TokenEncoder(), 0
    with _deterministic_threads(device):
        for tiles in _tile_batches(_coded_image(image, header), header):
            tokens = model.tokenizer.encode(_to_batch(tiles, device))  # (b, gh, gw)
            flat = tokens.reshape(len(tiles), -1)  # (b, T)
            stepper = IncrementalDecoder(model.prior, len(tiles), cond=_cond(header, len(tiles), device))
            for t in range(flat.size(1)):
                enc.encode(flat[:, t], probabilities(stepper.next_logits()))
                stepper.push(flat[:, t])
            crc = zlib.crc32(flat.cpu().numpy().astype("<i4").tobytes(), crc)
    payload = enc.finish()
    header = dataclasses.replace(header, token_crc=crc, model_path=str(model_dir or ""))
    data = container.pack(header, payload)
    stats = CodecStats(header.height, header.width, len(data), len(data) - len(payload), enc.num_symbols,
                       enc.ideal_bits, time.perf_counter() - t0, header.vocab_size)
    return data, stats


def compress(image: np.ndarray, model, model_dir: str | None = None, **kwargs) -> bytes:
    """Compress an ``(H, W, 3)`` uint8 image to ``.pxs`` bytes (see :func:`compress_with_stats`)."""
    return compress_with_stats(image, model, model_dir, **kwargs)[0]


def read_header(data: bytes) -> Header:
    """Parse and verify a ``.pxs`` file's header and checksums (no model needed)."""
    return container.unpack(data)[0]


def check_model(header: Header, model, model_dir: str | None = None) -> None:
    """Raise a clear PixseqError unless ``model`` is the one the file was compressed with."""
    mine = container.model_fingerprint(model)[:container.MODEL_ID_BYTES]
    if mine != header.model_id:
        # compress records the model's folder resolved: compare the given one the same way
        same_dir = bool(model_dir and header.model_path
                        and os.path.realpath(model_dir) == os.path.realpath(header.model_path))
        if same_dir:
            raise PixseqError(f"wrong model: the directory recorded in the file, {model_dir}, now holds another "
                              f"model ({mine.hex()}; the file needs {header.model_id.hex()}): it was retrained or "
                              "replaced since the file was written")
        where = f" ({model_dir})" if model_dir else ""
        hint = f"; it names {header.model_path}" if header.model_path else ""
        raise PixseqError(f"wrong model: the file was compressed with model {header.model_id.hex()}, "
                          f"the given model{where} is {mine.hex()}{hint}")
    expect = plan(model, header.height, header.width, header.scale, header.batch, header.label, mine)
    if (expect.tile, expect.grid, expect.vocab_size) != (header.tile, header.grid, header.vocab_size):
        raise PixseqError("corrupt .pxs header: token geometry does not match the model it names")
    device = _device(model).type
    if device != header.device:
        raise PixseqError(f"this file was encoded on {header.device} and must be decoded on {header.device} "
                          f"(the model is on {device}; float kernels differ between device types)")


@torch.inference_mode()
def decompress(data: bytes, model, model_dir: str | None = None) -> np.ndarray:
    """Decode ``.pxs`` bytes with ``model`` (it must be the model named in the header) -> uint8 image."""
    header, payload = container.unpack(data)
    check_model(header, model, model_dir)
    device = _device(model)
    dec, canvas, crc = TokenDecoder(payload), _Canvas(header), 0
    with _deterministic_threads(device):
        for start in range(0, header.num_tiles, header.batch):
            b = min(header.batch, header.num_tiles - start)
            flat = _decode_batch(dec, model, header, b, device)  # (b, T)
            crc = zlib.crc32(flat.numpy().astype("<i4").tobytes(), crc)
            canvas.add(model.tokenizer.decode(flat.view(b, *header.grid).to(device)))
    if crc != header.token_crc:
        raise PixseqError("decoded tokens fail their checksum: the file is corrupt, or was encoded on a different "
                          f"machine/software whose float results differ (encoded on {header.device})")
    return canvas.image()


def _decode_batch(dec: TokenDecoder, model, header: Header, b: int, device: torch.device) -> torch.Tensor:
    """Decode the tokens of ``b`` tiles, one step (one token of every tile) at a time: ``(b, T)``."""
    stepper = IncrementalDecoder(model.prior, b, cond=_cond(header, b, device))
    flat = torch.empty(b, header.grid[0] * header.grid[1], dtype=torch.long)
    for t in range(flat.size(1)):
        flat[:, t] = torch.from_numpy(dec.decode(probabilities(stepper.next_logits())))
        stepper.push(flat[:, t].to(device))
    return flat


@torch.inference_mode()
def reconstruct(image: np.ndarray, model, *, scale: int = 1, batch: int = DEFAULT_BATCH) -> np.ndarray:
    """The tokenizer's own reconstruction with the codec's tiling: what :func:`decompress` must return."""
    image = _check_image(image)
    label = 0 if int(getattr(model, "num_classes", 0) or 0) else -1
    # no file is written, so the (costly for big models) fingerprint is not needed
    header = plan(model, image.shape[0], image.shape[1], scale, batch, label, model_id=bytes(16))
    device, canvas = _device(model), _Canvas(header)
    with _deterministic_threads(device):  # as the codec runs: the thread count changes the last bits
        for tiles in _tile_batches(_coded_image(image, header), header):
            canvas.add(model.tokenizer.decode(model.tokenizer.encode(_to_batch(tiles, device))))
    return canvas.image()
