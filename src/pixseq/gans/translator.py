"""Image-to-image translators: the ``pix2pix`` and ``cyclegan`` model kinds, and translating
images of any size in blended tiles.

A translator holds one generator per direction it can translate (``"AtoB"``; a CycleGAN
usually also ``"BtoA"``); the discriminators are training machinery and stay in the training
checkpoint. Images follow pixseq's convention: float ``(B, 3, H, W)`` in [0, 1] in and out (a
grey domain is the channel mean in, three equal channels out). Generators are fully
convolutional: sides that are not multiples of the net's ``size_multiple`` are reflect-padded
and the output cropped back.

Large images (:func:`translate_image`) run in overlapping tiles blended with the raised-cosine
weights of :mod:`pixseq.upscale.tiles` (scale 1), streamed row by row, so memory is bounded by
the tile, not the image. Instance norm (and batch norm with per-image statistics) normalises
by statistics of the whole image, which a tile alone does not have: every tile would come
out in its own colour cast. So those statistics are measured once on the image (shrunk to
the size of a tile when it is larger, the only approximation) and every tile is normalised
with them; an image that fits in one tile runs whole, exactly as the network defines it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pixseq.errors import PixseqError
from pixseq.gans.generators import (GeneratorConfig, build_generator, fixed_norm_stats, has_own_stat_norms,
                                    peak_floats_per_pixel, record_norm_stats)
from pixseq.registry import register

DIRECTIONS = ("AtoB", "BtoA")
#: Default overlap of neighbouring tiles, in pixels (benchmarks/translate_tiles.py: with 32 the
#: vintagify ResNet-9's tiled output stays within 2 grey levels of the whole image's).
DEFAULT_OVERLAP = 32


@dataclass
class TranslatorConfig:
    """The A->B generator's config (B->A mirrors it with channels swapped), the directions
    held, the domains' names, the training image size, the built-in task it learned (if
    any), and ``test_dropout``: keep dropout on at inference (pix2pix's noise)."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    directions: list[str] = field(default_factory=lambda: ["AtoB"])
    domain_a: str = "A"
    domain_b: str = "B"
    image_size: int = 256
    task: str = ""
    test_dropout: bool = False

    def __post_init__(self) -> None:
        if not self.directions or len(set(self.directions)) != len(self.directions) or \
                any(d not in DIRECTIONS for d in self.directions):
            raise PixseqError(f"bad translator config: directions must be AtoB and/or BtoA, got {self.directions}")

    def generator_config(self, direction: str) -> GeneratorConfig:
        g = self.generator
        if direction == "AtoB":
            return g
        return GeneratorConfig(**{**g.__dict__, "in_channels": g.out_channels, "out_channels": g.in_channels})


def _to_net(images: torch.Tensor, channels: int) -> torch.Tensor:
    x = images.mean(1, keepdim=True) if channels == 1 and images.size(1) == 3 else images
    return x * 2 - 1


def _from_net(y: torch.Tensor) -> torch.Tensor:
    y = ((y.float() + 1) / 2).clamp(0, 1)
    return y.expand(-1, 3, -1, -1) if y.size(1) == 1 else y


class Translator(nn.Module):
    """Generators by direction; ``translate(images, direction)`` maps domain A <-> B."""

    def __init__(self, config: TranslatorConfig) -> None:
        super().__init__()
        self.config = config
        self.generators = nn.ModuleDict({d: build_generator(config.generator_config(d)) for d in config.directions})
        self.num_classes = 0

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def directions(self) -> list[str]:
        return list(self.config.directions)

    def generator(self, direction: str = "AtoB") -> nn.Module:
        """The generator of ``direction``, or a one-line error when the model lacks it."""
        if direction not in DIRECTIONS:
            raise PixseqError(f"--direction must be AtoB or BtoA, got {direction!r}")
        if direction not in self.generators:
            a, b = self.config.domain_a, self.config.domain_b
            has = " and ".join(self.directions)
            raise PixseqError(f"this {self.kind} model translates {has} only ({a} -> {b}"
                              f"{'' if 'AtoB' in self.generators else ' reversed'}); it has no {direction} generator")
        return self.generators[direction]

    def size_multiple(self, direction: str = "AtoB") -> int:
        return self.config.generator_config(direction).size_multiple

    def run(self, x: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        """The generator on network inputs ``x`` in [-1, 1] with its channels, any size: sides
        that are not multiples of its ``size_multiple`` are reflect-padded, the output cropped."""
        net = self.generator(direction)
        H, W = x.shape[-2:]
        m = self.size_multiple(direction)
        ph, pw = (-H) % m, (-W) % m
        if ph or pw:
            mode = "reflect" if min(H, W) > max(ph, pw) else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return net(x)[..., :H, :W]

    def forward(self, images: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        """Images ``(B, 3|1, H, W)`` in [0, 1] -> translated ``(B, 3, H, W)`` in [0, 1]
        (differentiable: training calls it too)."""
        cfg = self.config.generator_config(direction)
        return _from_net(self.run(_to_net(images, cfg.in_channels), direction))

    def train(self, mode: bool = True) -> "Translator":
        super().train(mode)
        if not mode and self.config.test_dropout:  # pix2pix's noise stays on at inference
            for m in self.modules():
                if isinstance(m, nn.Dropout):
                    m.train(True)
        return self

    @torch.no_grad()
    def translate(self, images: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        """:meth:`forward` without gradients on the model's device, in eval mode."""
        self.eval()
        return self(images.to(self.device), direction)

    def describe(self, direction: str = "AtoB") -> str:
        a, b = self.config.domain_a, self.config.domain_b
        src, dst = (a, b) if direction == "AtoB" else (b, a)
        task = f", task {self.config.task}" if self.config.task else ""
        return f"{self.kind} {src} -> {dst}, {self.config.generator_config(direction).describe}{task}"


@register("pix2pix", TranslatorConfig, "pix2pix image-to-image translator (paired training: U-Net G, L1 + GAN)")
class Pix2Pix(Translator):
    """A pix2pix generator (A -> B)."""


@register("cyclegan", TranslatorConfig, "CycleGAN translator (unpaired training: two generators, cycle loss)")
class CycleGAN(Translator):
    """A CycleGAN's generators G: A -> B and F: B -> A (either may be missing in a converted model)."""


TRANSLATOR_KINDS = ("pix2pix", "cyclegan")


# ---------------------------------------------------------------------------- tiles
class _Direction(nn.Module):
    """One direction of a translator as :func:`pixseq.upscale.upscaler.upscale_image` drives a
    super-resolution net: scale 1, a tile alignment, a memory estimate per pixel."""

    scale = 1

    def __init__(self, model: Translator, direction: str, align: int) -> None:
        super().__init__()
        self.model, self.direction, self.size_multiple = model, direction, align

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, self.direction)

    def peak_floats_per_input_pixel(self) -> float:
        return peak_floats_per_pixel(self.model.config.generator_config(self.direction))


def _preview(x: torch.Tensor, pixels: int) -> torch.Tensor:
    """``x`` (1, 3, H, W) itself when it has at most ``pixels`` pixels, else shrunk (area) to that."""
    H, W = x.shape[-2:]
    if H * W <= pixels:
        return x
    f = (pixels / (H * W)) ** 0.5
    return F.interpolate(x, size=(max(1, int(H * f)), max(1, int(W * f))), mode="area")


def translate_image(model: Translator, image: np.ndarray, direction: str = "AtoB", *, tile: int | None = None,
                    overlap: int = DEFAULT_OVERLAP, memory_budget: int | None = None, precision: str = "auto",
                    device: str | torch.device | None = None, desc: str = "translating",
                    stats: dict | None = None) -> np.ndarray:
    """Translate one uint8 ``(H, W, 3)`` image of any size; returns uint8 ``(H, W, 3)``.

    ``tile``: tile side in pixels (0: the whole image at once; default: the largest that fits
    ``memory_budget``, see :func:`pixseq.upscale.upscaler.default_memory_budget`); ``overlap``:
    blended overlap of neighbouring tiles. ``stats`` receives ``tile``, ``tiles``, ``seconds``
    and ``norm_stats`` (``"whole image"``, ``"image shrunk to W x H"`` or ``"none"``)."""
    from pixseq.upscale.tiles import tile_for_budget
    from pixseq.upscale.upscaler import default_memory_budget, resolve_precision, upscale_image

    model.generator(direction)  # a missing direction before any work
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise PixseqError(f"translate_image expects an (H, W, 3) uint8 image, got {arr.shape} {arr.dtype}")
    dev = torch.device(device) if device is not None else model.device
    model.to(dev).eval()
    m = model.size_multiple(direction)
    # tiles start on the net's stride grid when it is fine (a ResNet's 4): shifted by another
    # amount a strided net computes other phases; a U-Net's 256 would leave too few starts
    wrapper = _Direction(model, direction, align=m if m <= 16 else 1)
    h, w = arr.shape[:2]
    net = model.generator(direction)
    # the largest tile the memory allows: also the largest image the statistics pass may see
    fits = tile_for_budget(wrapper.peak_floats_per_input_pixel(), memory_budget or default_memory_budget(dev),
                           torch.finfo(resolve_precision(dev, precision)).bits // 8, m, overlap)
    tile = fits if tile is None else tile
    whole = tile == 0 or (h <= tile and w <= tile)
    norm_stats, kept = None, "whole image" if has_own_stat_norms(net) else "none"
    if not whole and has_own_stat_norms(net):
        x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float().div_(255)[None].to(dev)
        small = _preview(x, fits * fits)
        norm_stats = record_norm_stats(net, lambda: wrapper(small))
        if small.shape[-2:] != x.shape[-2:]:
            kept = f"image shrunk to {small.shape[-1]}x{small.shape[-2]}"
    run: dict = {}
    with fixed_norm_stats(net, norm_stats):
        out = upscale_image(wrapper, arr, tile=0 if whole else tile, overlap=overlap, precision=precision,
                            device=dev, desc=desc, stats=run)
    model.eval()  # (upscale_image set the wrapper's mode; the model's own test-time dropout is kept)
    if stats is not None:
        stats.update(run, norm_stats=kept)
    return out


@dataclass
class TranslateResult:
    """One translated file."""

    source: Path
    path: Path
    size: tuple[int, int]  # (H, W)
    tile: int
    tiles: int
    seconds: float
    norm_stats: str


def plan_translation(sources: Sequence[Path], out_dir: Path, ext: str = "png",
                     max_pixels: int | None = None, force: bool = False) -> list[tuple[Path, Path]]:
    """Check every input and output name before any work (images past the pixel limit, files
    whose header no image reader recognises, outputs that collide or would replace an input, an existing output without ``force``:
    :func:`pixseq.io.claim_output`). Returns ``(source, output)`` pairs."""
    from pixseq.io import MAX_PIXELS, checked_header, claim_file_in, output_format

    limit = MAX_PIXELS if max_pixels is None else max_pixels
    seen, planned = {}, []
    for src in sources:
        head = checked_header(src, limit)
        if head is not None and head.height * head.width > limit:
            raise PixseqError(f"image too large: {src} has {head.width}x{head.height} = {head.height * head.width} "
                              f"pixels, limit is {limit} (--max-pixels)")
        dest = out_dir / f"{src.stem}.{ext.lstrip('.')}"
        output_format(dest, "output file")
        if dest in seen:
            raise PixseqError(f"{seen[dest]} and {src} would both be written to {dest}; translate them into "
                              f"different --out folders")
        claim_file_in(out_dir, dest, force=force, inputs=sources)
        seen[dest] = src
        planned.append((src, dest))
    return planned


def translate_files(model: Translator, images: Sequence[str | Path], out_dir: str | Path, direction: str = "AtoB",
                    ext: str = "png", max_pixels: int | None = None,
                    on_result: Callable[[TranslateResult], None] | None = None, force: bool = False,
                    **options) -> list[TranslateResult]:
    """``pixseq translate`` as one call: every image (files, or folders of them) translated into
    ``out_dir`` under its own stem. The direction, every input's size and every output name
    are checked before the first image runs; each output is written atomically when done.
    ``options`` go to :func:`translate_image`."""
    import time

    from pixseq.io import MAX_PIXELS, claim_output, load_image, save_image
    from pixseq.upscale.upscaler import expand_inputs

    model.generator(direction)
    out_dir = Path(out_dir)
    claim_output(out_dir, "--out", folder=True, inputs=images)
    sources = expand_inputs(images)
    plan = plan_translation(sources, out_dir, ext, max_pixels, force)
    results = []
    for source, dest in plan:
        image = load_image(source, max_pixels=MAX_PIXELS if max_pixels is None else max_pixels)
        run: dict = {}
        start = time.perf_counter()
        out = translate_image(model, image, direction, desc=source.name, stats=run, **options)
        save_image(out, dest)
        results.append(TranslateResult(source, dest, image.shape[:2], run["tile"], run["tiles"],
                                       time.perf_counter() - start, run["norm_stats"]))
        if on_result is not None:
            on_result(results[-1])
    return results
