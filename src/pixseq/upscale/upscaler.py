"""Upscale images with a super-resolution net: the library behind ``pixseq upscale``.

:func:`upscale_image` takes an image array as it came from the file (grey, grey + alpha,
RGB, RGBA; 8 or 16 bits) and returns the upscaled array in the same layout and bit depth:

* colour runs through the net in blended tiles (:mod:`pixseq.upscale.tiles`), grey as three
  equal channels (the result is brought back to one with ITU-R 601 luma weights), alpha as
  a second pass through the net (``alpha="model"``, as Real-ESRGAN's default) or resized
  with Lanczos (``alpha="resize"``);
* the tile size comes from a memory budget unless given; on an out-of-memory error the
  image is redone with tiles half as large, down to :data:`~pixseq.upscale.tiles.MIN_TILE`;
* fp32 on the CPU; on a GPU bf16 (fp16 where bf16 is missing) under autocast, and a tile
  whose fp16 result overflowed is run again in fp32;
* ``outscale`` other than the net's scale resizes the net's output with Lanczos as it
  streams out of the tiler (:mod:`pixseq.upscale.resize`), so the full-scale intermediate
  never exists; the output must stay within the pixel limit, and the error says which
  ``outscale`` would fit.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pixseq.device import resolve_device
from pixseq.errors import PixseqError
from pixseq.io import MAX_PIXELS
from pixseq.runtime import notice, progress
from pixseq.upscale.resize import StreamingResize, out_size
from pixseq.upscale.tiles import DEFAULT_OVERLAP, MIN_TILE, TileBlender, is_out_of_memory, tile_for_budget

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
ALPHA_MODES = ("model", "resize")
#: ITU-R BT.601 luma, as Pillow's convert("L"): brings the net's RGB output of a grey image back to grey
_LUMA = (0.299, 0.587, 0.114)
#: the default memory budget for one tile's forward pass on the CPU
CPU_BUDGET = 1 << 30


def resolve_precision(device: torch.device, precision: str = "auto") -> torch.dtype:
    """fp32 on the CPU, bf16 on a GPU that has it (else fp16), or what was asked for."""
    if precision not in PRECISIONS:
        raise PixseqError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp16" and device.type == "cpu":
        raise PixseqError("--precision fp16 needs a GPU; on the CPU use fp32 (the default) or bf16")
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def default_memory_budget(device: torch.device) -> int:
    """Bytes one tile's forward pass may use: half the GPU's free memory, or on the CPU
    :data:`CPU_BUDGET` (at most a quarter of the memory available)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    available = _available_ram()
    return min(CPU_BUDGET, available // 4) if available else CPU_BUDGET


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def check_outscale(outscale: float | None, option: str = "--outscale") -> None:
    """``outscale`` is a positive finite number when given."""
    if outscale is not None and not (math.isfinite(outscale) and outscale > 0):
        raise PixseqError(f"{option} must be a positive number, got {outscale:g}")


def output_size(height: int, width: int, scale: int, outscale: float | None, max_pixels: int = MAX_PIXELS,
                name: str = "the image", option: str = "--outscale") -> tuple[int, int]:
    """The output size (the net's ``scale`` unless ``outscale``), refused past ``max_pixels``
    with the largest ``outscale`` that would fit (``option``: what the user's flag is called)."""
    check_outscale(outscale, option)
    factor = float(scale) if outscale is None else float(outscale)
    out_h, out_w = out_size(height, width, factor)
    if out_h * out_w > max_pixels:
        fits = math.floor(math.sqrt(max_pixels / (height * width)) * 100) / 100
        hint = f"use {option} {fits:g} or less, or " if fits >= 0.01 else ""
        raise PixseqError(f"upscaling {name} ({width}x{height}) {factor:g}x gives {out_w}x{out_h} = "
                          f"{out_h * out_w} pixels, past the limit of {max_pixels}: {hint}cut the image into tiles "
                          f"and upscale each (or raise --max-pixels)")
    return out_h, out_w


class TileRunner:
    """The net on one tile: on its device, under ``torch.inference_mode`` and autocast at
    ``dtype``; a tile whose fp16 output is not finite is run again in fp32 (said once)."""

    def __init__(self, model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
        self.model, self.device, self.dtype, self.fell_back = model, device, dtype, False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        y = self._forward(x, self.dtype)
        if self.dtype == torch.float16 and not torch.isfinite(y).all():
            if not self.fell_back:
                notice("fp16 overflowed on a tile; such tiles run again in fp32 (or use --precision bf16)")
                self.fell_back = True
            y = self._forward(x, torch.float32)
        return y.float()

    def _forward(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32):
            return self.model(x)


class _Store:
    """Quantizes finished output rows into ``out[..., channels]`` as they arrive."""

    def __init__(self, out: np.ndarray, channels: slice, reduce: str | None) -> None:
        self.out, self.channels, self.reduce, self.row = out, channels, reduce, 0
        self.top = float(np.iinfo(out.dtype).max)

    #: rows converted at a time: the float temporaries stay small beside the output
    CHUNK = 64

    def __call__(self, rows: torch.Tensor) -> None:  # rows: (3, n, W) float
        for a in range(0, rows.shape[1], self.CHUNK):
            part = rows[:, a:a + self.CHUNK].clamp(0, 1)
            if self.reduce == "luma":
                part = sum(w * part[i] for i, w in enumerate(_LUMA))[None]
            elif self.reduce == "mean":
                part = part.mean(0, keepdim=True)
            values = part.mul_(self.top).round_().permute(1, 2, 0).cpu().numpy()  # (n, W, C)
            n = values.shape[0]
            self.out[self.row:self.row + n, :, self.channels] = values.astype(self.out.dtype)
            self.row += n


class _Crop:
    """Drops the output rows and columns of an input padded to the net's size multiple."""

    def __init__(self, sink: Callable[[torch.Tensor], None], height: int, width: int) -> None:
        self.sink, self.height, self.width, self.row = sink, height, width, 0

    def __call__(self, rows: torch.Tensor) -> None:
        keep = min(rows.shape[1], self.height - self.row)
        if keep > 0:
            self.sink(rows[:, :keep, :self.width])
        self.row += rows.shape[1]


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    ph, pw = (-x.shape[1]) % multiple, (-x.shape[2]) % multiple
    if not (ph or pw):
        return x
    mode = "reflect" if min(x.shape[1:]) > max(ph, pw) else "replicate"
    return F.pad(x[None], (0, pw, 0, ph), mode=mode)[0]


def _run_pass(blender: TileBlender, x: torch.Tensor, out_hw: tuple[int, int], store: _Store,
              on_tile: Callable[[], None]) -> None:
    """One image (3, H, W) through the blended tiles into ``store``, resized to ``out_hw``."""
    s = blender.scale
    native = (x.shape[1] * s, x.shape[2] * s)
    sink: Callable[[torch.Tensor], None] = store
    if native != out_hw:
        sink = StreamingResize(native, out_hw, emit=store).write
    blender.run(_pad_to_multiple(x, blender.multiple), _Crop(sink, *native), on_tile)


@dataclass
class _Plan:
    """What upscale_image works out before running: the passes over the image."""

    passes: list[tuple[np.ndarray, slice, str | None]]  # (3-channel input, output channels, reduction)
    resize_alpha: bool


def _plan(arr: np.ndarray, alpha: str) -> _Plan:
    c = arr.shape[2]
    colour = arr[:, :, :3] if c >= 3 else np.repeat(arr[:, :, :1], 3, axis=2)
    passes = [(colour, slice(0, min(c, 3)) if c >= 3 else slice(0, 1), None if c >= 3 else "luma")]
    if c in (2, 4) and alpha == "model":
        passes.append((np.repeat(arr[:, :, c - 1:], 3, axis=2), slice(c - 1, c), "mean"))
    return _Plan(passes, resize_alpha=c in (2, 4) and alpha == "resize")


def upscale_image(model: torch.nn.Module, image: np.ndarray, *, outscale: float | None = None,
                  tile: int | None = None, overlap: int | None = None, memory_budget: int | None = None,
                  precision: str = "auto", alpha: str = "model", max_pixels: int = MAX_PIXELS,
                  device: str | torch.device | None = None, desc: str = "upscaling",
                  stats: dict | None = None) -> np.ndarray:
    """Upscale ``image`` with the super-resolution ``model`` (``RRDBNet`` / ``SRVGGNetCompact``).

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` ``uint8`` / ``uint16``, C = 1 (grey), 2 (grey +
            alpha), 3 (RGB) or 4 (RGBA), as :func:`pixseq.io.load_image_native` gives.
        outscale: the output's scale (default: the net's), resized with Lanczos.
        tile: tile side in input pixels (``0``: the whole image at once); default from
            ``memory_budget`` (default :func:`default_memory_budget`).
        overlap: minimum overlap of neighbouring tiles (blended), in input pixels (default
            :data:`~pixseq.upscale.tiles.DEFAULT_OVERLAP`, less for tiles too small for it).
        precision: ``auto`` (fp32 on CPU, bf16/fp16 on GPU), ``fp32``, ``bf16``, ``fp16``.
        alpha: ``model`` (alpha through the net too) or ``resize`` (Lanczos).
        device: where to run (default: where the model is); the model is moved there.
        stats: when given, receives ``tile``, ``tiles`` and ``seconds`` of the run.

    Returns:
        the upscaled array, same channels and dtype (2-D in, 2-D out).
    """
    arr = _as_layout(image, alpha)
    h, w, c = arr.shape
    out_hw = output_size(h, w, model.scale, outscale, max_pixels)
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    model.to(dev).eval()
    dtype = resolve_precision(dev, precision)
    runner = TileRunner(model, dev, dtype)
    multiple = model.size_multiple
    tile, overlap = _tiling(model, (h, w), tile, overlap, memory_budget, dev, dtype)
    plan = _plan(arr, alpha)
    out = np.empty((*out_hw, c), arr.dtype)
    start = time.perf_counter()
    done: dict = {}

    def attempt(t: int, o: int) -> None:
        done["tiles"] = _run_all(plan, out, arr, runner, model.scale, t, o, multiple, desc)

    tile, overlap = _with_oom_retry(attempt, tile, overlap, multiple)
    if plan.resize_alpha:
        _resize_channel(arr[:, :, c - 1], out, c - 1)
    if stats is not None:
        stats.update(tile=min(tile, max(h, w)), overlap=overlap, tiles=done["tiles"],
                     seconds=time.perf_counter() - start, dtype=str(dtype).removeprefix("torch."))
    return out[:, :, 0] if np.asarray(image).ndim == 2 else out


def _as_layout(image: np.ndarray, alpha: str) -> np.ndarray:
    """``image`` as (H, W, C), checked."""
    arr = np.asarray(image)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or arr.dtype not in (np.uint8, np.uint16):
        raise PixseqError(f"upscale_image expects an (H, W[, 1-4]) uint8 or uint16 image, got {arr.shape} {arr.dtype}")
    if alpha not in ALPHA_MODES:
        raise PixseqError(f"--alpha must be one of {', '.join(ALPHA_MODES)}, got {alpha!r}")
    return arr


def _tiling(model: torch.nn.Module, hw: tuple[int, int], tile: int | None, overlap: int | None,
            budget: int | None, device: torch.device, dtype: torch.dtype) -> tuple[int, int]:
    """The tile (from the memory budget when not given; 0: the whole image) and the overlap
    (the default, or as much of it as a small tile leaves room for, with a notice)."""
    multiple, side = model.size_multiple, max(hw)
    if tile is None:
        tile = tile_for_budget(model.peak_floats_per_input_pixel(), budget or default_memory_budget(device),
                               torch.finfo(dtype).bits // 8, multiple, overlap or DEFAULT_OVERLAP)
    elif tile == 0:
        tile = side + (-side) % multiple
    if overlap is None:
        overlap = min(DEFAULT_OVERLAP, max(0, (tile - multiple) // 2 - 1))
        if overlap < DEFAULT_OVERLAP and side > tile:
            notice(f"tiles of {tile} px leave room for an overlap of {overlap} px, under the {DEFAULT_OVERLAP} "
                   f"that keeps them within about 2 levels of the whole-image result; seams may show")
    return tile, overlap


def _run_all(plan: _Plan, out: np.ndarray, arr: np.ndarray, runner: TileRunner, scale: int, tile: int,
             overlap: int, multiple: int, desc: str) -> int:
    """Every pass of ``plan`` with tiles of ``tile``; returns the number of tiles run."""
    blender = TileBlender(runner, scale, tile, overlap, multiple)
    h, w = arr.shape[:2]
    total = blender.count(h + (-h) % multiple, w + (-w) % multiple) * len(plan.passes)
    top = float(np.iinfo(arr.dtype).max)
    with progress(total=total, desc=desc, unit="tile", leave=False) as bar:
        for source, channels, reduce in plan.passes:
            x = torch.from_numpy(np.ascontiguousarray(source.transpose(2, 0, 1))).float().div_(top)  # (3, H, W)
            _run_pass(blender, x, out.shape[:2], _Store(out, channels, reduce), lambda: bar.update(1))
    return total


def _with_oom_retry(run: Callable[[int, int], None], tile: int, overlap: int, multiple: int) -> tuple[int, int]:
    """``run(tile, overlap)``, and again with half the tile (and, below twice the overlap, a
    smaller overlap) after each out-of-memory error; the tile and overlap used."""
    while True:
        try:
            run(tile, overlap)
            return tile, overlap
        except Exception as exc:  # noqa: BLE001 - only allocation failures are handled
            if not is_out_of_memory(exc):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            step = 8 * multiple // math.gcd(8, multiple)
            smaller = max(MIN_TILE, tile // 2 // step * step)
            if smaller >= tile:
                raise PixseqError(f"out of memory even with tiles of {tile} pixels; free memory, or use "
                                  f"--device cpu") from None
            overlap = min(overlap, max(0, (smaller - step) // 2 - 1))
            notice(f"out of memory with tiles of {tile} pixels; redoing the image with {smaller} "
                   f"(overlap {overlap})")
            tile = smaller


def _resize_channel(channel: np.ndarray, out: np.ndarray, index: int) -> None:
    """``channel`` (H, W) resized with Lanczos into ``out[..., index]`` (``alpha="resize"``)."""
    top = float(np.iinfo(channel.dtype).max)
    x = torch.from_numpy(channel.astype(np.float32) / top)[None]  # (1, H, W)
    store = _Store(out, slice(index, index + 1), None)
    resize = StreamingResize(tuple(channel.shape), out.shape[:2], emit=store)
    for y in range(0, channel.shape[0], 256):
        resize.write(x[:, y:y + 256])


# ---------------------------------------------------------------- files
@dataclass
class UpscaleResult:
    """One upscaled file: where it went, its sizes, the tiles and the time."""

    source: Path
    path: Path
    in_size: tuple[int, int]  # (H, W)
    out_size: tuple[int, int]
    channels: int
    bits: int
    tile: int
    tiles: int
    seconds: float


#: formats that keep an alpha channel / 16-bit samples (for ``ext="auto"``)
_ALPHA_SUFFIXES = (".png", ".webp", ".tif", ".tiff", ".tga")


def output_path(source: Path, out_dir: Path, ext: str, channels: int, bits: int) -> Path:
    """``out_dir/<stem>.<ext>``; ``ext="auto"``: the input's own suffix when its format can
    hold the result (alpha, 16 bits), else ``.png``."""
    if ext != "auto":
        return out_dir / f"{source.stem}.{ext.lstrip('.')}"
    suffix = source.suffix.lower()
    if bits == 16 and suffix not in (".png", ".tif", ".tiff"):
        suffix = ".png"
    if channels in (2, 4) and suffix not in _ALPHA_SUFFIXES:
        suffix = ".png"
    return out_dir / f"{source.stem}{suffix}"


def plan_outputs(sources: Sequence[Path], out_dir: Path, ext: str = "auto", scale: int = 4,
                 outscale: float | None = None, max_pixels: int = MAX_PIXELS,
                 force: bool = False) -> list[tuple[Path, Path]]:
    """Check every input and output before any work: outputs past the pixel limit, names
    that collide, an output that would replace an input, formats that cannot hold the image,
    an existing output without ``force`` (:func:`pixseq.io.claim_output`).
    Returns (source, output) pairs; the images are read later, one at a time."""
    from pixseq.io import checked_header, claim_file_in, output_format

    planned, seen = [], {}
    for src in sources:
        head = checked_header(src, max_pixels)
        channels, bits = (head.channels, head.bits) if head is not None else (3, 8)
        if head is not None:
            output_size(head.height, head.width, scale, outscale, max_pixels, name=str(src))
        dest = output_path(src, out_dir, ext, channels, bits)
        output_format(dest, "output file")
        if bits == 16 and dest.suffix.lower() not in (".png", ".tif", ".tiff"):
            raise PixseqError(f"{src} is a 16-bit image: --ext {ext} cannot hold 16 bits; use png or tif")
        if channels in (2, 4) and dest.suffix.lower() not in _ALPHA_SUFFIXES:
            raise PixseqError(f"{src} has an alpha channel: --ext {ext} cannot hold it; use png, webp or tif")
        if dest in seen:
            raise PixseqError(f"{seen[dest]} and {src} would both be written to {dest}; upscale them into "
                              f"different --out folders")
        claim_file_in(out_dir, dest, force=force, inputs=sources)
        seen[dest] = src
        planned.append((src, dest))
    return planned


def expand_inputs(images: Sequence[str | Path]) -> list[Path]:
    """Image files as given, folders replaced by the images in them (recursive, sorted)."""
    from pixseq.io import list_images

    found: list[Path] = []
    for item in images:
        path = Path(item)
        if path.is_dir():
            inside = list_images(path)
            if not inside:
                raise PixseqError(f"no images in folder {path}")
            found += inside
        elif not path.exists():
            raise PixseqError(f"image not found: {path}")
        else:
            found.append(path)
    if not found:
        raise PixseqError("no input images given")
    return found


def upscale_file(model: torch.nn.Module, source: str | Path, dest: str | Path, **options) -> UpscaleResult:
    """Read ``source`` as it is (:func:`pixseq.io.load_image_native`), upscale it
    (:func:`upscale_image` with ``options``) and write ``dest`` atomically in the same layout."""
    from pixseq.io import load_image_native, save_image_native

    source, dest = Path(source), Path(dest)
    image = load_image_native(source)
    stats: dict = {}
    out = upscale_image(model, image, desc=options.pop("desc", source.name), stats=stats, **options)
    save_image_native(out, dest)
    return UpscaleResult(source, dest, image.shape[:2], out.shape[:2], image.shape[2],
                         16 if image.dtype == np.uint16 else 8, stats["tile"], stats["tiles"], stats["seconds"])


def upscale_files(model: torch.nn.Module, images: Sequence[str | Path], out_dir: str | Path, ext: str = "auto",
                  on_result: Callable[[UpscaleResult], None] | None = None, force: bool = False,
                  **options) -> list[UpscaleResult]:
    """``pixseq upscale`` as one call: every image (files, or folders of them) upscaled into
    ``out_dir`` under its own stem. Every input and output name is checked before the first
    image runs (:func:`plan_outputs`); each output is complete when written. ``options`` go
    to :func:`upscale_image`; ``on_result`` is told of each file as it is written; an existing
    output is replaced only with ``force``."""
    from pixseq.io import claim_output

    out_dir = Path(out_dir)
    claim_output(out_dir, "--out", folder=True, inputs=images)
    sources = expand_inputs(images)
    check_outscale(options.get("outscale"))
    results = []
    plan = plan_outputs(sources, out_dir, ext, model.scale, options.get("outscale"),
                        options.get("max_pixels", MAX_PIXELS), force)
    for source, dest in plan:
        results.append(upscale_file(model, source, dest, **options))
        if on_result is not None:
            on_result(results[-1])
    return results
