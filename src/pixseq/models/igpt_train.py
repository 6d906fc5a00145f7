"""iGPT recipes: build, fit and train an iGPT (palette tokenizer + GPT prior over pixels).

* :func:`build_igpt` — a fresh model for a set of images: palette fitted, GPT preset;
* :func:`fit_igpt` — train a built model on arrays with the one Trainer, write its directory;
* :func:`train_igpt` — all of ``pixseq train igpt``: a data spec to a model directory.

Layout of the output directory ``out``::

    out/config.json, out/model.safetensors   the finished model (written last, atomically)
    out/train/run.json                       the model/data settings (reused by resume)
    out/train/train_state.pt, history.jsonl  the Trainer's checkpoint and loss history
                                             (with val_data: held-out eval/bits_per_pixel
                                             at each checkpoint)
    out/train/tb/                            TensorBoard scalars
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch

from pixseq.errors import PixseqError
from pixseq.train.config import TrainConfig

if TYPE_CHECKING:
    from pixseq.models.igpt import IGPT
    from pixseq.train.runs import TrainResult

#: Model/data settings recorded with a run; ``resume`` refuses to change them.
RUN_KEYS = ("data", "limit", "size", "image_size", "palette", "classes", "val_data", "val_limit")


def default_train_config() -> TrainConfig:
    """``pixseq train igpt``'s training defaults."""
    return TrainConfig(steps=2000, batch_size=32, lr=1e-3, warmup_steps=100, ckpt_every=200, log_every=10)


def default_image_size(images: Sequence[np.ndarray], cap: int = 32) -> int:
    """The data's own side when images are square and small, else ``cap``."""
    sides = {im.shape[0] for im in images} | {im.shape[1] for im in images}
    return min(sides.pop(), cap) if len(sides) == 1 else cap


def build_igpt(images: np.ndarray, size: str, palette: int, num_classes: int, seed: int,
               saved_palette: torch.Tensor | None = None, **gpt_overrides) -> "IGPT":
    """A fresh iGPT for uint8 ``(N, S, S, 3)`` images: palette fitted, GPT preset ``size``.

    ``saved_palette``: a resumed run's palette, used instead of fitting one again (see
    :func:`saved_palette`)."""
    from pixseq.models.igpt import IGPT, IGPTConfig
    from pixseq.priors.gpt import gpt_config

    cfg = IGPTConfig(palette_size=palette, image_size=int(images.shape[1]),
                     gpt=gpt_config(size, **gpt_overrides), num_classes=num_classes)
    if saved_palette is not None and tuple(saved_palette.shape) != (palette, 3):
        saved_palette = None  # fitted anew; the Trainer then names the checkpoint's mismatch
    return IGPT.from_data(images, cfg, seed=seed, palette=saved_palette)


def saved_palette(train_dir: Path) -> torch.Tensor | None:
    """The palette in ``train_dir``'s training checkpoint, or None (no checkpoint, or not an
    iGPT's). A resumed run encodes its data with this palette: fitting k-means again gave the
    same colours only on the same machine and library versions, and with any other colours
    the data would be tokens of another palette than the restored model's."""
    from pixseq.train.files import read_checkpoint_state

    state = read_checkpoint_state(train_dir)
    try:
        return None if state is None else state["modules"]["model"]["tokenizer.palette"].clone()
    except (KeyError, TypeError):  # foreign: the Trainer's load says why
        return None


def fit_igpt(model: "IGPT", images: np.ndarray, labels: np.ndarray | None, out_dir: str | Path,
             train_config: TrainConfig, device: str | torch.device, resume: bool = False,
             meta: dict[str, Any] | None = None, callbacks=(),
             held_out: tuple[np.ndarray, np.ndarray | None] | None = None) -> tuple["IGPT", list[dict]]:
    """Train ``model`` with the Trainer (state in ``out_dir/train``), then save it to ``out_dir``.

    ``held_out``: ``(images, labels)`` at the model's size, evaluated at every checkpoint
    (``eval/loss``, ``eval/bits_per_pixel`` in the history; the last ones in the model's meta).
    Returns ``(model, history)``. The model directory is written only when training finished.
    """
    from pixseq.checkpoint import save_pretrained
    from pixseq.models.base import class_names_meta
    from pixseq.models.igpt import IGPTTask, IGPTTokenDataset
    from pixseq.train import Trainer

    out_dir = Path(out_dir)
    meta = class_names_meta(meta, model.num_classes, "igpt")
    dataset = IGPTTokenDataset(model, images, labels if model.num_classes else None)
    eval_data = None
    if held_out is not None:
        eval_data = IGPTTokenDataset(model, held_out[0], held_out[1] if model.num_classes else None)
    trainer = Trainer(IGPTTask(model), dataset, train_config, out_dir / "train", device, callbacks=callbacks,
                      eval_data=eval_data)
    start = time.perf_counter()
    history = trainer.fit(resume=resume)
    seconds = time.perf_counter() - start
    if trainer.dist.is_main:
        last = history[-1] if history else {}
        info = {"steps": train_config.steps, "train_seconds_last_session": round(seconds, 1),
                "final_loss": last.get("loss"), "images": int(len(dataset))}
        if "eval/loss" in last:
            info.update(held_out_loss=last["eval/loss"], held_out_images=int(len(eval_data)))
        # save_pretrained copies to the CPU itself; model.cpu() moved the returned model off the GPU (rank 0 only)
        save_pretrained(model, out_dir, meta={**(meta or {}), **info})
    return model, history


def train_igpt(data: str, out: str | Path, *, size: str | None = None, image_size: int | None = None,
               palette: int | None = None, classes: bool | None = None, limit: int | None = None,
               val_data: str | None = None, val_limit: int | None = None,
               train: Mapping[str, Any] | TrainConfig | None = None, device: str | torch.device = "cpu",
               resume: bool = False, force: bool = False, seed: int | None = None,
               callbacks=()) -> "TrainResult":
    """``pixseq train igpt`` as one call: fit a palette on ``data`` (a data spec), train the
    GPT prior over its pixels, write the model directory ``out``.

    Settings left ``None`` take the defaults (GPT preset ``s``, the data's side up to 32, 512
    colours, unconditional) or, with ``resume``, the run's recorded ones. ``train``: training
    settings (:class:`TrainConfig` fields, ``None`` = not given) over
    :func:`default_train_config`. Returns a :class:`~pixseq.train.runs.TrainResult`::

        result = train_igpt("fashion-mnist", "runs/fm", image_size=16, palette=16, classes=True,
                            train={"steps": 300})
        result.model.generate(4, labels="Sneaker")
    """
    from pixseq.data import load_data, resize_square
    from pixseq.device import resolve_device
    from pixseq.train.batches import cap_batch
    from pixseq.train.distributed import launched_world_size
    from pixseq.train.runs import (RunRecorder, TrainResult, check_limit, check_out_dir, load_val_data, run_settings,
                                   train_config)

    out = Path(out)
    check_out_dir(out, out / "train", resume, force, inputs=[data, val_data])
    given = dict(data=data, limit=limit, size=size, image_size=image_size, palette=palette, classes=classes,
                 val_data=val_data, val_limit=val_limit)
    settings = run_settings(given, RUN_KEYS, out / "train", resume)
    config = train_config(train, default_train_config(), out / "train", resume, seed)
    check_limit(settings["limit"])
    images_set = load_data(settings["data"], limit=settings["limit"])
    if settings["classes"]:
        images_set.require_labels("--classes")
    val = load_val_data(settings, images_set)
    side = settings["image_size"] if settings["image_size"] is not None else default_image_size(images_set.images)
    colours = settings["palette"] if settings["palette"] is not None else 512
    _check_sizes(side, colours, len(images_set.images))
    config = cap_batch(config, len(images_set.images), launched_world_size())  # before anything is written
    device = resolve_device(device)
    settings = {**settings, "size": settings["size"] or "s", "image_size": side, "palette": colours,
                "classes": bool(settings["classes"])}
    images = resize_square(images_set.images, side)
    num_classes = images_set.num_classes if settings["classes"] else 0
    model = build_igpt(images, settings["size"], colours, num_classes, config.seed,
                       saved_palette=saved_palette(out / "train") if resume else None)
    meta = {"class_names": list(images_set.class_names) if num_classes else [], "data": settings["data"]}
    recorder = RunRecorder(out / "train", settings, resume)
    model, history = fit_igpt(model, images, images_set.labels, out, config, device, resume=resume, meta=meta,
                              callbacks=[recorder, *callbacks], held_out=val)
    return TrainResult(model, history, settings, config, held_out=0 if val is None else len(val[0]))


def _check_sizes(side: int, palette: int, num_images: int) -> None:
    if not 1 <= side <= 256 or palette < 2:
        raise PixseqError(f"--image-size must be in 1..256 and --palette >= 2, got {side} and {palette}")
    if palette > num_images * side * side:
        raise PixseqError(f"--palette {palette} is more colours than the {num_images * side * side} "
                          "training pixels it is fitted to")
