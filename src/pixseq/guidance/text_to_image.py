"""``pixseq generate "PROMPT" --vqgan DIR --clip NAME|DIR ...`` as one library call.

:func:`text_to_image` checks everything a user can get wrong before any work (the prompts,
the models, the size, the init image, every output path), runs
:func:`pixseq.guidance.vqgan_clip.vqgan_clip`, and writes the image (atomically), the
frames and the animation. Ctrl-C keeps the image of the last finished step: it is written,
then the interruption is reported.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from pixseq.errors import PixseqError
from pixseq.guidance.clip import Guide, load_guide
from pixseq.guidance.prompts import Prompt, parse_prompt, parse_prompts
from pixseq.guidance.vqgan_clip import (RECOMPUTE_FROM, GenerateConfig, Generation, LatentDecoder, embed_targets,
                                        encode_init, vqgan_clip)
from pixseq.io import (check_image_output, check_output, claim_output, load_image, refuse_existing, save_image,
                       to_tensor, to_uint8)
from pixseq.runtime import notice

VIDEO_SUFFIXES = (".gif", ".webp")


@dataclass
class TextToImage:
    """The result: the generation, where it was written, and the final CLIP score per text prompt."""

    generation: Generation
    out: Path
    size: tuple[int, int]  # (height, width) actually generated
    clip_scores: dict[str, float]
    guide_note: str = ""
    written: list[Path] = field(default_factory=list)


def load_vqgan(path: str | os.PathLike, device: torch.device | str = "cpu"):
    """The VQGAN of ``--vqgan``: a ``vqgan`` model directory, or the tokenizer of a ``taming``
    one; anything else (an iGPT, a classifier) is one clear line."""
    from pixseq.checkpoint import load_model, read_config, resolve_model_path

    where = resolve_model_path(path)
    kind = read_config(where)["kind"]
    if kind not in ("vqgan", "taming"):
        raise PixseqError(f"--vqgan {path} holds a model of kind {kind!r}; text to image needs a VQGAN "
                          f"(`pixseq train vqgan`, or `pixseq convert taming` for official checkpoints)")
    model = load_model(where, kind=kind, device=device)
    return model if kind == "vqgan" else model.tokenizer


def round_size(size: tuple[int, int], factor: int) -> tuple[int, int]:
    """``(height, width)`` rounded to the nearest multiples of ``factor`` (at least one
    factor each, at least two codes in all), with a notice when it changed."""
    h, w = (max(factor, round(s / factor) * factor) for s in size)
    if h * w < 2 * factor * factor:
        w = 2 * factor
    if (h, w) != tuple(size):
        notice(f"--size {size[1]}x{size[0]} is not a multiple of the VQGAN's factor {factor}: "
               f"generating {w}x{h}")
    return h, w


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` (or one number for a square) -> ``(height, width)``."""
    parts = text.lower().split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise PixseqError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 256x256") from None
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2 or min(nums) < 1:
        raise PixseqError(f"--size {text!r}: expected two positive numbers WIDTHxHEIGHT, e.g. 256x256")
    return nums[1], nums[0]


def _check_outputs(out: Path, video: Path | None, frames_dir: Path | None, inputs: Sequence[Path],
                   force: bool) -> None:
    """The overwrite policy (:func:`pixseq.io.claim_output`) for every output of a generation."""
    from pixseq.io import real_path

    check_image_output(out, force=force, inputs=inputs)
    if video is not None:
        check_output(video, "--video")
        if video.suffix.lower() not in VIDEO_SUFFIXES:
            raise PixseqError(f"--video {video}: use an animated {' or '.join(VIDEO_SUFFIXES)} file")
        if real_path(video) == real_path(out):
            raise PixseqError("--out and --video name the same file")
        claim_output(video, "--video", force=force, inputs=inputs)
    if frames_dir is not None:
        claim_output(frames_dir, "--frames", folder=True, inputs=inputs)
        if frames_dir.is_dir() and any(frames_dir.glob("frame-*.png")):
            refuse_existing(frames_dir, "--frames", force, "frames of an earlier run")


def _image_prompts(specs: Sequence[str], size: tuple[int, int]) -> list[tuple[torch.Tensor, Prompt]]:
    out = []
    for spec in specs:
        p = parse_prompt(spec, "image prompt")
        out.append((_load_resized(Path(p.text), size, "image prompt"), p))
    return out


def _load_resized(path: Path, size: tuple[int, int], what: str) -> torch.Tensor:
    from PIL import Image

    if not path.exists():
        raise PixseqError(f"{what} not found: {path}")
    arr = load_image(path)
    img = Image.fromarray(arr).resize((size[1], size[0]), Image.LANCZOS)
    import numpy as np

    return to_tensor(np.asarray(img))[None]  # (1, 3, H, W)


def _check_inputs(prompt, image_prompts, init_image, out: Path, video: Path | None, frames_dir: Path | None,
                  big: Path | None, cfg: GenerateConfig, force: bool = False) -> list[Prompt]:
    """Every check of the prompts, inputs and outputs, before any model is loaded; the text prompts."""
    prompts = parse_prompts(prompt) if prompt is not None else []
    specs = [parse_prompt(s, "image prompt") for s in image_prompts]
    if init_image is not None and not Path(init_image).is_file():
        raise PixseqError(f"--init-image not found: {init_image}")
    inputs = [Path(p.text) for p in specs] + ([Path(init_image)] if init_image else [])
    _check_outputs(out, video, frames_dir, inputs, force)
    if cfg.frame_every == 0 and (video is not None or frames_dir is not None):
        raise PixseqError("--video and --frames need --frame-every N (a frame every N steps)")
    if big is not None:
        check_image_output(big, "the upscaled output", force=force, inputs=inputs)
    return prompts


def text_to_image(prompt: str | None, vqgan: str | os.PathLike, clip: str | os.PathLike, out: str | os.PathLike,
                  size: tuple[int, int] = (256, 256), config: GenerateConfig | None = None,
                  image_prompts: Sequence[str] = (), init_image: str | os.PathLike | None = None,
                  video: str | os.PathLike | None = None, frames_dir: str | os.PathLike | None = None,
                  clip_weights: str | os.PathLike | None = None, weights_dir=None, offline=None,
                  device: torch.device | str = "cpu", upscale: float | None = None,
                  upscale_model: str = "realesrgan-x4plus", force: bool = False) -> TextToImage:
    """All of ``pixseq generate``: ``prompt`` (``"a|b:0.5|c:-1"``) and/or ``image_prompts``
    (``PATH[:WEIGHT]``), a VQGAN model directory, a guide (:func:`load_guide`), ``size`` =
    (height, width), rounded to the VQGAN's factor with a notice. ``upscale``: also write the
    image super-resolved that many times (:mod:`pixseq.upscale`, ``upscale_model``) as
    ``OUT-x{upscale}.png`` beside it: the founding pipeline's 4x step. An existing output is
    replaced only with ``force``; an input never."""
    cfg = config or GenerateConfig()
    out = Path(out)
    video, frames_dir = (Path(video) if video else None), (Path(frames_dir) if frames_dir else None)
    if upscale is not None:
        from pixseq.upscale.upscaler import check_outscale

        check_outscale(upscale, "--upscale")  # before any model loads
    big = upscaled_path(out, upscale) if upscale is not None else None
    prompts = _check_inputs(prompt, image_prompts, init_image, out, video, frames_dir, big, cfg, force)
    tokenizer = load_vqgan(vqgan, device)
    guide = load_guide(clip, clip_weights, weights_dir, offline, device)
    if getattr(guide, "scope_note", ""):
        notice(guide.scope_note)
    hw = round_size(size, tokenizer.factor)
    upscaler = _upscaler(upscale_model, upscale, hw, device) if upscale is not None else None
    init = encode_init(tokenizer, _load_resized(Path(init_image), hw, "--init-image")) if init_image else None
    if init is not None and cfg.init_weight == 0:
        notice("--init-image without --init-weight: the image is only the starting point")
    targets = embed_targets(guide, prompts, _image_prompts(image_prompts, hw), cfg.cutouts, cfg.seed)
    positive = [p.text for p in prompts if p.weight > 0]
    with torch.no_grad():
        scored = guide.embed_text(positive) if positive else None  # for the final CLIP score
    # the loop needs the decoder and the image tower only: the encoder and text tower go
    decoder = LatentDecoder(tokenizer, _recompute(cfg, hw))
    del tokenizer
    guide.drop_text_tower()
    written: list[Path] = []

    def on_frame(step: int, frame: torch.Tensor) -> None:
        if frames_dir is not None:
            written.append(save_image(to_uint8(frame), frames_dir / f"frame-{step:05d}.png"))

    result = vqgan_clip(decoder, guide, targets, hw, cfg, init, on_frame)
    written.insert(0, save_image(to_uint8(result.image), out))
    if upscaler is not None:
        from pixseq.upscale import upscale_image

        written.append(save_image(upscale_image(upscaler, to_uint8(result.image), outscale=upscale), big))
    if video is not None and result.frames:
        last = [] if torch.equal(result.frames[-1], result.image) else [result.image]  # ended between frames
        written.append(write_animation(result.frames + last, video))
    scores = final_scores(guide, result.image, positive, scored)
    if result.interrupted:
        raise PixseqError(f"interrupted at step {result.steps_done} of {cfg.steps}; the image so far is in {out}")
    return TextToImage(result, out, hw, scores, getattr(guide, "scope_note", ""), written)


def upscaled_path(out: Path, factor: float) -> Path:
    """Where ``--upscale`` writes: ``castle.png`` -> ``castle-x4.png``."""
    return out.with_name(f"{out.stem}-x{factor:g}{out.suffix}")


def _upscaler(name: str, factor: float, hw: tuple[int, int], device):
    """The super-resolution model, loaded (and the output size checked) before the loop."""
    from pixseq.upscale import load_upscaler
    from pixseq.upscale.upscaler import output_size

    model = load_upscaler(name, device)
    output_size(hw[0], hw[1], model.scale, factor, name="the generated image", option="--upscale")
    return model


def _recompute(cfg: GenerateConfig, hw: tuple[int, int]) -> bool:
    return cfg.recompute == "on" or (cfg.recompute == "auto" and hw[0] * hw[1] >= RECOMPUTE_FROM)


def final_scores(guide: Guide, image: torch.Tensor, texts: Sequence[str],
                 text_embeds: torch.Tensor | None) -> dict[str, float]:
    """The CLIP score (torchmetrics' definition, :mod:`pixseq.metrics.clip_score`) of the
    image for each positive text prompt, from the texts' embeddings taken before the loop."""
    from pixseq.metrics.clip_score import score_from_embeddings

    if not texts:
        return {}
    device = next(guide.parameters()).device
    with torch.no_grad():
        img = guide.embed_images(image[None].to(device))
    return {t: float(s) for t, s in zip(texts, score_from_embeddings(img, text_embeds.to(device)))}


def write_animation(frames: Sequence[torch.Tensor], path: str | os.PathLike, ms_per_frame: int = 100) -> Path:
    """An animated GIF / WebP of ``frames`` ``(3, H, W)``, written atomically."""
    from PIL import Image

    from pixseq.io import atomic_write, output_format

    path = Path(path)
    images = [Image.fromarray(to_uint8(f)) for f in frames]
    with atomic_write(path) as fh:
        images[0].save(fh, format=output_format(path), save_all=True, append_images=images[1:],
                       duration=ms_per_frame, loop=0)
    return path


def generate_config(steps: int = 300, lr: float = 0.1, cutn: int = 32, cut_pow: float = 1.0, cut_batch: int = 8,
                    tv_weight: float = 0.0, init_weight: float = 0.0, init_decay: float = 50.0,
                    frame_every: int = 0, recompute: str = "auto", seed: int = 0, **augment) -> GenerateConfig:
    """A :class:`GenerateConfig` from ``pixseq generate``'s flat options; out-of-range values
    are one-line errors naming the option."""
    from pixseq.guidance.cutouts import CutoutConfig

    try:
        cutouts = CutoutConfig(cutn=cutn, cut_pow=cut_pow, chunk=cut_batch, **augment)
    except ValueError as exc:
        raise PixseqError(f"cut-out options: {exc} (--cutn, --cut-pow, --cut-batch)") from None
    return GenerateConfig(steps=steps, lr=lr, cutouts=cutouts, tv_weight=tv_weight, init_weight=init_weight,
                          init_decay=init_decay, frame_every=frame_every, recompute=recompute, seed=seed)
