"""``.pxs`` files on disk: ``pixseq compress`` / ``decompress`` as library calls.

The bytes are made and read by :mod:`pixseq.codec.codec`; this module adds what a file
needs around them: the checks of the paths before any work (an output that would replace
the input, an image name given to ``compress``, an existing output without ``force``), the
model recorded in the file, and atomic writes.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from pixseq.errors import PixseqError


def check_pxs_output(out: str | os.PathLike, image: str | os.PathLike, force: bool) -> Path:
    """The ``.pxs`` output of ``compress``, checked before any work (the overwrite policy of
    :func:`pixseq.io.claim_output`)."""
    from pixseq.io import IMAGE_SUFFIXES, check_output, claim_output, refuse_overwriting_input

    out = Path(out)
    refuse_overwriting_input(out, image)
    check_output(out, "--out")  # a folder, or a parent that is a file, is named before "exists"
    if out.suffix.lower() in IMAGE_SUFFIXES:  # e.g. compress/decompress mixed up: not an image inside
        raise PixseqError(f"--out {out}: compress writes a .pxs file, not an image; name it e.g. "
                          f"{out.with_suffix('.pxs').name} (decompress writes images)")
    return claim_output(out, "--out", force=force, inputs=[image])


def compress_file(image: np.ndarray, model, out: str | os.PathLike, model_dir: str | os.PathLike | None,
                  scale: int = 1, batch: int = 16, label: int | None = None):
    """Compress the uint8 ``image`` with ``model`` into the file ``out`` (atomically);
    ``model_dir`` is recorded in the file (None: not recorded). Returns the
    :class:`~pixseq.codec.codec.CodecStats`; a model that codes worse than a uniform code
    says so in one notice."""
    from pixseq.codec.codec import compress_with_stats
    from pixseq.io import atomic_write
    from pixseq.runtime import notice

    path = "" if model_dir is None else recorded_name(model_dir)
    data, stats = compress_with_stats(image, model, path, scale=scale, batch=batch, label=label)
    with atomic_write(out) as fh:
        fh.write(data)
    warning = stats.worse_than_uniform()
    if warning is not None:
        notice(warning)
    return stats


def compress_invert_file(image: np.ndarray, model, out: str | os.PathLike, model_dir: str | os.PathLike | None,
                         **settings):
    """Compress the uint8 ``image`` by GAN inversion of the generator ``model`` into the file
    ``out`` (atomically; version-2 ``.pxs``); ``settings`` go to
    :func:`pixseq.inversion.codec.compress_invert` (``bits``, ``quantizer``, ``config``,
    ``label`` ...). Returns ``(LatentStats, InversionResult)``."""
    from pixseq.inversion.codec import compress_invert
    from pixseq.io import atomic_write

    path = "" if model_dir is None else recorded_name(model_dir)
    data, stats, result = compress_invert(image, model, model_path=path, **settings)
    with atomic_write(out) as fh:
        fh.write(data)
    return stats, result


def recorded_name(model_dir: str | os.PathLike) -> str:
    """How a file records its model: a zoo model by its name (``zoo:NAME``, found wherever
    pixseq is installed), any other directory by its absolute path."""
    from pixseq.plugins import import_optional

    text = os.fspath(model_dir)
    zoo = import_optional("pixseq.zoo")
    if zoo is not None and zoo.resolve(text) is not None:
        return text if text.startswith("zoo:") else f"zoo:{text}"
    return str(Path(text).resolve())


def read_pxs(path: str | os.PathLike) -> bytes:
    """The bytes of a ``.pxs`` file, or a one-line error naming it."""
    path = Path(path)
    if not path.is_file():
        raise PixseqError(f"compressed file not found: {path}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PixseqError(f"cannot read {path}: {exc.strerror}") from None


def decoder_dir(given: str | os.PathLike | None, recorded: str) -> str:
    """The model that decodes a file: the one ``given``, else the one the file records."""
    if given:
        return str(given)
    if not recorded:
        raise PixseqError("the file does not record its model directory; pass --model DIR")
    if not recorded.startswith("zoo:") and not Path(recorded).is_dir():
        raise PixseqError(f"the model directory recorded in the file is missing: {recorded}; pass --model DIR")
    return recorded


def decode_device(header, device: str) -> str:
    """``auto``: decode on the device type the file was encoded on (files are not portable
    across them), when that device is here."""
    return header.device if device == "auto" and torch.cuda.is_available() else device


def decompress_file(path: str | os.PathLike, model: str | os.PathLike | None = None,
                    device: str = "auto") -> tuple[np.ndarray, str, bytes]:
    """Decode the ``.pxs`` file ``path`` with ``model`` (default: the model directory it
    records, hash-checked). Format, checksums and geometry are checked before any model
    loads. Token files (format version 1) and generator latents (version 2, GAN inversion)
    are both read. Returns ``(uint8 image, the model directory used, the file's bytes)``."""
    from pixseq.checkpoint import load_model
    from pixseq.codec import CODEC_MODEL_KINDS, decompress, read_header
    from pixseq.codec.container import payload_kind
    from pixseq.device import resolve_device

    data = read_pxs(path)
    if payload_kind(data) == "latent":
        from pixseq.inversion.codec import decompress_latent, read_latent_header

        model_dir = decoder_dir(model, read_latent_header(data).model_path)
        net = load_model(model_dir, device=resolve_device(device))  # any kind: a non-generator is named
        return decompress_latent(data, net, model_dir), model_dir, data
    header = read_header(data)
    model_dir = decoder_dir(model, header.model_path)
    net = load_model(model_dir, CODEC_MODEL_KINDS, resolve_device(decode_device(header, device)))
    return decompress(data, net, model_dir), model_dir, data
