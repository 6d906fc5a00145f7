"""Generative compression by GAN inversion: image -> latent z -> quantised, entropy-coded ``.pxs``.

``compress_invert(image, model, bits=4)`` inverts the generator on the image
(:func:`pixseq.inversion.optimize.invert`), quantises the best ``z``
(:mod:`pixseq.inversion.quantize`: QSGD or uniform, 1..16 bits) and writes a version-2
``.pxs`` file (:mod:`pixseq.codec.latent`) naming the generator by its fingerprint;
``decompress_latent(data, model)`` checks the model and regenerates ``G(z_hat)``, resized
back to the input's size when the generator's size differs.

Rate accounting is the token codec's: bits per pixel = file bytes x 8 / (H x W) of the
original image, header included; :class:`LatentStats` also gives the payload alone (the
coded z) and the quality before and after quantisation, so what quantisation costs is
visible. The founding study counted none of these bits (see :mod:`pixseq.inversion.quantize`
for what its Elias code did).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from pixseq.codec import latent as fmt
from pixseq.codec.container import model_fingerprint
from pixseq.errors import PixseqError
from pixseq.inversion.generators import as_generator, fit_to
from pixseq.inversion.optimize import InversionConfig, InversionResult, invert
from pixseq.inversion.quantize import Quantized, check_bits, quantize
from pixseq.io import MAX_PIXELS, to_tensor, to_uint8


@dataclass
class LatentStats:
    """Rate and quality accounting of one inverted, quantised image."""

    height: int
    width: int
    file_bytes: int
    header_bytes: int
    latent_dims: int
    bits: int
    quantizer: str
    label: int
    psnr_float: float  # G(z) against the (resized) input, before quantisation
    psnr_quantized: float  # G(z_hat)
    invert_seconds: float
    steps: int

    @property
    def bpp(self) -> float:
        """Bits per pixel of the whole file over the original image."""
        return self.file_bytes * 8 / (self.height * self.width)

    @property
    def payload_bits(self) -> int:
        return 8 * (self.file_bytes - self.header_bytes)

    @property
    def payload_bpp(self) -> float:
        """Bits per pixel of the coded z alone (no header)."""
        return self.payload_bits / (self.height * self.width)

    def as_dict(self) -> dict:
        return {**asdict(self), "bpp": self.bpp, "payload_bits": self.payload_bits, "payload_bpp": self.payload_bpp}


def model_id(model: torch.nn.Module) -> bytes:
    """The 8-byte id a latent file records (the fingerprint of the model as loaded)."""
    return model_fingerprint(model)[:fmt.MODEL_ID_BYTES]


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float((a.double() - b.double()).pow(2).mean())
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def encode_latent(q: Quantized, model: torch.nn.Module, height: int, width: int, label: int = -1,
                  model_path: str = "", ident: bytes | None = None) -> bytes:
    """The ``.pxs`` bytes of the quantised latent ``q`` of ``model`` for an ``height x width`` image."""
    lo, hi = q.alphabet
    payload, mean, std = fmt.encode_symbols(q.symbols, lo, hi)
    header = fmt.LatentHeader(ident or model_id(model), height, width, tuple(int(d) for d in q.symbols.shape),
                              q.quantizer, q.bits, q.scale, mean, std, int(label), model_path,
                              fmt.symbol_crc(q.symbols))
    return fmt.pack_latent(header, payload)


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
        raise PixseqError(f"compress needs an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    if image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise PixseqError(f"image too large to compress: {image.shape[1]}x{image.shape[0]} > {MAX_PIXELS} pixels")
    return image


def compress_invert(image: np.ndarray, model: torch.nn.Module, *, bits: int = 4, quantizer: str = "qsgd",
                    config: InversionConfig | None = None, label=None, model_path: str = "", seed: int = 0,
                    lpips_model=None) -> tuple[bytes, LatentStats, InversionResult]:
    """Compress an ``(H, W, 3)`` uint8 image by inverting ``model`` (a generator, see
    :func:`~pixseq.inversion.generators.as_generator`); returns the ``.pxs`` bytes, their
    accounting and the inversion (its quality-against-steps history included). ``label``: the
    class for a conditional generator (None: the best of all classes, recorded in the file)."""
    bits = check_bits(bits, quantizer)
    gen = as_generator(model)  # before the work: an iGPT is refused here
    image = _check_image(image)
    x = to_tensor(image)[None]
    result = invert(gen, x, labels=label, config=config, lpips_model=lpips_model)
    q = quantize(result.z[0], bits, quantizer, seed)
    lab = int(result.labels[0]) if result.labels is not None else -1
    data = encode_latent(q, model, image.shape[0], image.shape[1], lab, model_path)
    out = decode_quantized(q, model, lab)
    stats = LatentStats(image.shape[0], image.shape[1], len(data), len(data) - len(fmt.unpack_latent(data)[1]),
                        q.symbols.size, bits, quantizer, lab, _psnr(result.images, result.targets),
                        _psnr(out, result.targets), result.seconds, (config or InversionConfig()).steps)
    return data, stats, result


def check_latent_model(header: fmt.LatentHeader, model: torch.nn.Module, model_dir: str | None = None) -> None:
    """Raise a clear PixseqError unless ``model`` is the generator the file was made with."""
    gen = as_generator(model)  # an iGPT given to decode a latent: said as such, not as 'wrong model'
    mine = model_id(model)
    if mine != header.model_id:
        where = f" ({model_dir})" if model_dir else ""
        hint = f"; it names {header.model_path}" if header.model_path else ""
        raise PixseqError(f"wrong model: the file was compressed with generator {header.model_id.hex()}, the given "
                          f"model{where} is {mine.hex()}{hint}")
    expect = gen.latent_shape(*gen.working_size(header.height, header.width))
    if tuple(expect) != tuple(header.latent_shape):
        raise PixseqError("corrupt .pxs header: the latent's shape does not match the generator it names")
    if (header.label >= 0) != bool(gen.num_classes) or header.label >= max(gen.num_classes, 1):
        raise PixseqError("corrupt .pxs header: its class label does not fit the generator it names")


def read_latent_header(data: bytes) -> fmt.LatentHeader:
    """Parse and verify a latent file's header (no model needed)."""
    return fmt.unpack_latent(data)[0]


@torch.no_grad()
def decode_quantized(q: Quantized, model: torch.nn.Module, label: int = -1) -> torch.Tensor:
    """``G(z_hat)`` of a quantised latent, ``(1, 3, H, W)`` in [0, 1] at the generator's size."""
    gen = as_generator(model)
    labels = torch.tensor([label], device=gen.device) if label >= 0 else None
    with torch.no_grad():
        return gen.generate(q.latent()[None].to(gen.device), labels)


def decompress_latent(data: bytes, model: torch.nn.Module, model_dir: str | None = None) -> np.ndarray:
    """Decode a latent ``.pxs`` file with ``model`` (the generator it names) -> uint8 ``(H, W, 3)``."""
    header, payload = fmt.unpack_latent(data)
    check_latent_model(header, model, model_dir)
    q = Quantized(fmt.decode_symbols(payload, header), header.scale, header.quantizer, header.bits)
    out = fit_to(decode_quantized(q, model, header.label).float(), (header.height, header.width))
    return to_uint8(out[0])
