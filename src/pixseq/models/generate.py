"""Drawing images from a generative model, as ``pixseq sample`` / ``complete``, the web UI and
the demo do: batched sampling, completion of kept rows (with the class guessed from them),
and the grids that show both.

Any model with ``generate(num, labels, **sampling)`` samples here (iGPT, Taming, GAN
generators); completion needs a token-image model (``complete`` and a prior over tokens).
"""
from __future__ import annotations

import inspect
import math
from typing import Sequence

import numpy as np
import torch

from pixseq.errors import PixseqError
from pixseq.models.base import class_index, class_names
from pixseq.runtime import notice

#: Images sampled per model call (bounded KV-cache memory).
SAMPLE_BATCH = 64
#: Most images one command draws into its one grid image (``sample -n``, ``complete -n``):
#: beyond it a grid is too large to look at, and a huge -n failed in an allocation.
MAX_SAMPLES = 10_000
#: Fill colour of the rows the model has to draw (blue: distinct from grey images' own pixels).
MASK_COLOUR = (90, 140, 200)
#: Completions per grid row (the first row also has the original and the kept part).
COMPLETIONS_PER_ROW = 8


# ---------------------------------------------------------------- checks of the user's options
def check_num(num: int, what: str = "-n") -> None:
    """Images drawn into one grid: 1..:data:`MAX_SAMPLES`."""
    if not 1 <= num <= MAX_SAMPLES:
        raise PixseqError(f"{what} must be from 1 to {MAX_SAMPLES} (one grid image), got {num}")


def check_sampling(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None) -> None:
    """PixseqError for a bad temperature, top-k or top-p (checked before any work or notice)."""
    if not 0 < temperature < math.inf:  # inf passed here and failed in the sampler, after notices
        raise PixseqError(f"--temperature must be a finite number > 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise PixseqError(f"--top-k must be >= 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise PixseqError(f"--top-p must be in (0, 1], got {top_p}")


def sampling_options(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                     seed: int = 0, device: torch.device | str = "cpu") -> dict:
    """Checked sampling options + a generator seeded with ``seed`` on ``device``: the
    ``**sampling`` keyword arguments of :func:`sample_images` and :func:`complete_image`."""
    check_sampling(temperature, top_k, top_p)
    gen = torch.Generator(device).manual_seed(seed)
    return dict(temperature=temperature, top_k=top_k, top_p=top_p, generator=gen)


def parse_class(model, value: str | int | None, what: str = "--class") -> int | None:
    """A class option as an index; accepts an index or a stored class name (case-insensitive)."""
    if value is None:
        return None
    if not getattr(model, "num_classes", 0):
        raise PixseqError(f"{what} given but this model is unconditional (it was trained without classes)")
    return class_index(model, value, what=what)  # the same lookup as the Python API's labels


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"WxH"`` (width x height, as every size pixseq prints) or ``"N"`` -> ``(H, W)``."""
    if text is None:
        return None
    parts = text.lower().split("x")
    try:
        hw = tuple(int(p) for p in reversed(parts))
    except ValueError:
        hw = ()
    if len(hw) == 1:
        hw = (hw[0], hw[0])
    if len(hw) != 2 or min(hw) < 1:
        raise PixseqError(f"--size must look like 96x64 (width x height), got {text!r}")
    from pixseq.io import MAX_PIXELS

    if hw[0] * hw[1] > MAX_PIXELS:  # a typo such as 5600x5600 -> 56000x56000 sampled for days
        raise PixseqError(f"--size {hw[1]}x{hw[0]} is more than pixseq's image limit of {MAX_PIXELS} pixels")
    return hw  # type: ignore[return-value]


def refuse_image_conditioned(model, name: str) -> None:
    """A Taming model conditioned on images cannot be sampled from nothing: say what to use."""
    condition = getattr(getattr(model, "config", None), "condition", "")  # taming: "", "lowres" or "edges"
    if condition:  # the library's "give one per sample" names no way to do that from here
        raise PixseqError(f"{name} is conditioned on {condition!r} images, which pixseq sample does not "
                          f"take: use pixseq complete IMAGE --model {name}, or model.generate(n, "
                          f"cond_images=...) in Python")


# ---------------------------------------------------------------- sampling
def sample_images(model, num: int, cls: int | None, size: tuple[int, int] | None, **sampling) -> tuple[torch.Tensor, int]:
    """Sample ``num`` images; returns them and a sensible grid width.

    A class-conditional model without ``cls`` cycles through its classes (one grid column each).
    """
    ncol = None
    labels = None
    if getattr(model, "num_classes", 0):
        if cls is None:
            labels = torch.arange(num) % model.num_classes
            ncol = min(num, model.num_classes)
        else:
            labels = torch.full((num,), cls, dtype=torch.long)
    kwargs = dict(sampling)
    if size is not None and tuple(size) != tuple(model.image_size):
        if "size" not in inspect.signature(model.generate).parameters:
            raise PixseqError(f"this {model.kind} model samples only its trained size "
                              f"{model.image_size[1]}x{model.image_size[0]}; drop --size")
        kwargs["size"] = tuple(size)
    # In batches: the KV caches of a whole -n at once can need gigabytes (an 'm' iGPT: ~17 MB
    # per 32x32 image). Up to one batch, the samples are those of a single call.
    images = [model.generate(len(part), None if labels is None else labels[part], **kwargs)
              for part in torch.arange(num).split(SAMPLE_BATCH)]
    return torch.cat(images), ncol or math.ceil(math.sqrt(num))


def describe_classes(model, num: int, cls: int | None) -> str:
    """Which classes a :func:`sample_images` call drew, in a few words."""
    if cls is not None:
        return f"class {cls}"
    if not getattr(model, "num_classes", 0):
        return "unconditional"
    if num >= model.num_classes:
        return "all classes"
    return "class 0" if num == 1 else f"classes 0..{num - 1}"  # fewer samples than classes: the first -n


def sample_grid(model, num: int, cls: int | None = None, size: tuple[int, int] | None = None,
                ncol: int | None = None, **sampling) -> tuple[np.ndarray, list[np.ndarray]]:
    """``pixseq sample`` as one call: ``num`` samples laid out in one legible uint8 grid
    (one column per class for a class-conditional model without ``cls``). Returns the grid
    and the samples as uint8 ``(H, W, 3)`` arrays."""
    from pixseq.report.grid import legible_scale, make_grid, to_uint8_batch

    if ncol is not None and ncol < 1:
        raise PixseqError(f"--ncol must be >= 1, got {ncol}")
    images, auto = sample_images(model, num, cls, size, **sampling)
    tiles = to_uint8_batch(images)
    ncol = min(ncol, num) if ncol else auto  # more columns than images: empty space
    return make_grid(tiles, ncol=ncol, scale=legible_scale(tiles[0].shape[0])), tiles


# ---------------------------------------------------------------- completion
def fit_to_model(image: np.ndarray, size: tuple[int, int], name: str = "image") -> np.ndarray:
    """Resize ``(H, W, 3)`` uint8 to the model's ``size`` (bicubic), with a notice when it changes."""
    from PIL import Image

    H, W = size
    if image.shape[:2] == (H, W):
        return image
    notice(f"{name} is {image.shape[1]}x{image.shape[0]} but the model's context is {W}x{H}; resized to {W}x{H}")
    return np.asarray(Image.fromarray(image).resize((W, H), Image.BICUBIC))


def check_keep(keep: float) -> None:
    """PixseqError unless ``--keep`` is a fraction strictly between 0 and 1."""
    if not 0 < keep < 1:  # written so that NaN fails too
        raise PixseqError(f"--keep must be a fraction strictly between 0 and 1, got {keep}")


def keep_rows_for(keep: float, height: int) -> int:
    """Pixel rows kept for a ``--keep`` fraction: at least one, and at least one left to sample."""
    check_keep(keep)
    if height < 2:  # was the model's "keep_rows must be in 0..0, got 1", after the resize notices
        raise PixseqError(f"the model's images are {height} pixel row high: completing needs a row to keep "
                          "and a row to draw")
    return max(1, min(height - 1, round(keep * height)))


def check_completions(num: int, images: int) -> None:
    """``-n`` completions of each of ``images`` images fit one grid image."""
    check_num(num)
    total = num * images
    if total > MAX_SAMPLES:  # -n alone is bounded; -n per image multiplied past the bound
        raise PixseqError(f"{images} images x -n {num} = {total} completions, more than the "
                          f"{MAX_SAMPLES} of one grid image: give fewer images or a smaller -n")


def complete_in_batches(model, x: torch.Tensor, keep_rows: int, num: int, labels: torch.Tensor | None,
                        **sampling) -> torch.Tensor:
    """``model.complete`` in calls of at most ``SAMPLE_BATCH`` outputs, like ``pixseq sample``.

    One call for all of ``-n`` would hold every completion's KV cache at once (gigabytes for
    a large -n). ``x`` is either one image completed ``num`` times (``labels``: its one class,
    or None) or ``B`` images completed once each (``labels``: one per image). Up to one
    batch, the result is that of a single call.
    """
    if x.size(0) == 1:
        parts = [model.complete(x, keep_rows, num=len(part), labels=labels, **sampling)
                 for part in torch.arange(num).split(SAMPLE_BATCH)]
    else:
        parts = [model.complete(x[part], keep_rows, num=1, labels=None if labels is None else labels[part],
                                **sampling)
                 for part in torch.arange(x.size(0)).split(SAMPLE_BATCH)]
    return torch.cat(parts)


@torch.no_grad()
def guess_class(model, x: torch.Tensor, keep_rows: int) -> int | None:
    """The class under which the kept token rows are likeliest (Bayes with a uniform class prior).

    Returns None when no whole token row is kept (then there is nothing to judge by).
    """
    x = x.to(model.device)
    encode = getattr(model, "encode", model.tokenizer.encode)  # taming pads to whole codes; igpt: pixels
    tokens = encode(x).flatten(1)  # (1, h*w)
    h = model.tokenizer.grid_size(*model.image_size)[0]
    w = tokens.size(1) // h
    kept = (keep_rows * h // model.image_size[0]) * w  # tokens wholly inside the kept rows
    if kept == 0:
        return None
    K = model.num_classes
    labels = torch.arange(K, device=model.device)
    if hasattr(model, "make_cond"):  # taming: class token (+ codes of a conditioning image)
        cond_images = x.expand(K, -1, -1, -1) if getattr(model.config, "condition", "") else None
        cond = model.make_cond(K, labels, cond_images)  # (K, Tc)
    else:
        cond = labels[:, None]  # (K, 1)
    prefix = tokens[:, :kept].expand(K, -1)  # (K, kept)
    logp = model.prior(prefix, cond).float().log_softmax(-1)  # (K, kept, V)
    score = logp.gather(-1, prefix[..., None]).squeeze(-1).sum(1)  # (K,)
    return int(score.argmax())


def complete_one(model, image: np.ndarray, keep_rows: int, num: int, cls: int | None, name: str,
                 sampling: dict) -> torch.Tensor:
    """``num`` completions of one model-sized uint8 image: ``(num, 3, H, W)`` in [0, 1].

    A class-conditional model uses ``cls``, else the class under which the kept rows are
    likeliest (with a notice), else (nothing kept to judge by) each class in turn."""
    from pixseq.io import to_tensor

    x = to_tensor(image)[None]  # (1, 3, H, W)
    labels = None
    if model.num_classes:
        if cls is None:
            cls = guess_class(model, x, keep_rows)
            names = class_names(model)
            if cls is not None:
                notice(f"no --class given: {name}: using class {cls}{f' ({names[cls]})' if cls < len(names) else ''}, "
                       f"under which the kept rows are most likely")
        labels = torch.full((1,), cls, dtype=torch.long) if cls is not None else torch.arange(num) % model.num_classes
        if cls is None:  # nothing kept to judge by: one completion per class in turn
            x = x.expand(num, -1, -1, -1)
    return complete_in_batches(model, x, keep_rows, num, labels, **sampling)


def grid_tiles(image: np.ndarray, kept: np.ndarray, completions: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """The cells of the output grid, row by row, and its column count: ``original | kept |``
    up to :data:`COMPLETIONS_PER_ROW` completions per row, blank cells elsewhere."""
    per_row = min(len(completions), COMPLETIONS_PER_ROW)
    blank = np.full_like(image, 255)
    tiles: list[np.ndarray] = []
    for start in range(0, len(completions), per_row):
        row = completions[start:start + per_row]
        tiles += ([image, kept] if start == 0 else [blank, blank]) + row + [blank] * (per_row - len(row))
    return tiles, 2 + per_row


def completion_grid(model, images: Sequence[tuple[str, np.ndarray]], keep: float, num: int,
                    cls: int | None = None, **sampling) -> tuple[np.ndarray, int]:
    """``pixseq complete`` as one call: for each ``(name, uint8 image)`` (resized to the model
    with a notice) a block of grid rows ``original | kept rows | num completions``. Returns
    the grid and the number of pixel rows kept."""
    from pixseq.report.grid import legible_scale, make_grid, to_uint8_batch

    H, W = model.image_size
    keep_rows = keep_rows_for(keep, H)
    tiles, ncol = [], 0
    for name, image in images:
        image = fit_to_model(image, (H, W), name=name)
        completions = complete_one(model, image, keep_rows, num, cls, name, sampling)
        kept = image.copy()
        kept[keep_rows:] = MASK_COLOUR  # the part the model has to draw
        block, ncol = grid_tiles(image, kept, to_uint8_batch(completions))
        tiles += block
    return make_grid(tiles, ncol=ncol, scale=legible_scale(H)), keep_rows
