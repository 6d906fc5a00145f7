"""``pixseq train igpt``: fit a colour palette on the data, then train the GPT prior over pixels.

Layout of ``--out DIR``::

    DIR/config.json, DIR/model.safetensors   the finished model (written last, atomically)
    DIR/train/run.json                       the model/data settings (reused by --resume)
    DIR/train/train_state.pt, history.jsonl  the Trainer's checkpoint and loss history
                                             (with --val-data: held-out eval/bits_per_pixel
                                             at each checkpoint)
    DIR/train/tb/                            TensorBoard scalars

so ``pixseq sample --model DIR`` works on the same path.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from pixseq.cli.common import path_arg, plural
from pixseq.errors import PixseqError
from pixseq.train.distributed import is_main_process, launched_world_size

HELP = "train an iGPT (k-means colour palette + GPT prior over pixels) on a data spec"

#: Model/data settings stored in train/run.json; --resume refuses to change them.
RUN_KEYS = ("data", "limit", "size", "image_size", "palette", "classes", "val_data", "val_limit")


def _defaults():
    from pixseq.train import TrainConfig

    return TrainConfig(steps=2000, batch_size=32, lr=1e-3, warmup_steps=100, ckpt_every=200, log_every=10)


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.train import add_train_arguments
    from pixseq.train.args import add_val_arguments

    parser.add_argument("--data", required=True, help="data spec: fashion-mnist[:train|test], a folder, photos")
    parser.add_argument("--out", required=True, type=path_arg, help="model directory to write")
    parser.add_argument("--size", choices=["s", "m", "l"], default=None, help="GPT size preset (default s)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="square side images are resized to (default: the data's side up to 32)")
    parser.add_argument("--palette", type=int, default=None, help="palette colours = vocabulary (default 512)")
    parser.add_argument("--classes", action="store_true", default=None,
                        help="class-conditional: a class token from the data's labels is prepended")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    add_val_arguments(parser)
    parser.add_argument("--bf16", dest="train_precision", action="store_const", const="bf16",
                        default=argparse.SUPPRESS, help="bf16 autocast (same as --precision bf16)")
    add_train_arguments(parser, _defaults())


# ---------------------------------------------------------------- library-level pieces
def default_image_size(images: Sequence[np.ndarray], cap: int = 32) -> int:
    """The data's own side when images are square and small, else ``cap``."""
    sides = {im.shape[0] for im in images} | {im.shape[1] for im in images}
    return min(sides.pop(), cap) if len(sides) == 1 else cap


def build_igpt(images: np.ndarray, size: str, palette: int, num_classes: int, seed: int,
               saved_palette: torch.Tensor | None = None, **gpt_overrides):
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


def fit_igpt(model, images: np.ndarray, labels: np.ndarray | None, out_dir: str | Path, train_config,
             device, resume: bool = False, meta: dict[str, Any] | None = None, callbacks=(),
             held_out: tuple[np.ndarray, np.ndarray | None] | None = None):
    """Train ``model`` with the Trainer (state in ``out_dir/train``), then save it to ``out_dir``.

    ``held_out``: ``(images, labels)`` at the model's size, evaluated at every checkpoint
    (``eval/loss``, ``eval/bits_per_pixel`` in the history; the last ones in the model's meta).
    Returns ``(model, history)``. The model directory is written only when training finished.
    """
    from pixseq.checkpoint import save_pretrained
    from pixseq.models.igpt import IGPTTask, IGPTTokenDataset
    from pixseq.train import Trainer

    out_dir = Path(out_dir)
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


def run(args: argparse.Namespace) -> int:
    from pixseq.cli.common import resolve_device
    from pixseq.data import load_data, resize_square
    from pixseq.train.args import RunRecorder, check_out_dir, config_from_args, load_val_data, run_settings
    from pixseq.train.batches import batches_per_epoch

    out = Path(args.out)
    check_out_dir(out, out / "train", args.resume, args.force)
    settings = run_settings(args, RUN_KEYS, out / "train")
    train_config = config_from_args(args, _defaults(), out / "train")
    if settings["limit"] is not None and settings["limit"] < 1:
        raise PixseqError(f"--limit must be >= 1, got {settings['limit']}")
    data = load_data(settings["data"], limit=settings["limit"])
    if settings["classes"]:
        data.require_labels("--classes")
    val = load_val_data(settings, data)
    side = settings["image_size"] if settings["image_size"] is not None else default_image_size(data.images)
    palette = settings["palette"] if settings["palette"] is not None else 512
    if not 1 <= side <= 256 or palette < 2:
        raise PixseqError(f"--image-size must be in 1..256 and --palette >= 2, got {side} and {palette}")
    if palette > len(data.images) * side * side:
        raise PixseqError(f"--palette {palette} is more colours than the {len(data.images) * side * side} "
                          "training pixels it is fitted to")
    world = launched_world_size()  # the Trainer joins the process group later
    batches_per_epoch(len(data.images), train_config.batch_size, world)  # before anything is written
    device = resolve_device(args.device)
    settings = {**settings, "size": settings["size"] or "s", "image_size": side, "palette": palette,
                "classes": bool(settings["classes"])}
    images = resize_square(data.images, side)
    num_classes = data.num_classes if settings["classes"] else 0
    model = build_igpt(images, settings["size"], palette, num_classes, train_config.seed,
                       saved_palette=saved_palette(out / "train") if args.resume else None)
    meta = {"class_names": list(data.class_names) if num_classes else [], "data": settings["data"]}
    model, history = fit_igpt(model, images, data.labels, out, train_config, device, resume=args.resume, meta=meta,
                              callbacks=[RunRecorder(out / "train", settings, args.resume)], held_out=val)
    last = history[-1] if history else {}
    loss = last.get("loss", float("nan"))
    if not is_main_process():
        return 0
    print(f"wrote {out}: iGPT {side}x{side}, palette {palette}, preset {settings['size']} "
          f"({model.prior.num_params() / 1e6:.2f} M params), {plural(train_config.steps, 'step')}, "
          f"last training-batch loss {loss:.3f} nats/pixel ({loss / np.log(2):.3f} bits)"
          + (", of the raw weights; the model holds their EMA" if train_config.ema_decay > 0 else ""))
    if "eval/bits_per_pixel" in last:
        print(f"held-out ({plural(len(val[0]), 'image')} of {settings['val_data']}): "
              f"{last['eval/bits_per_pixel']:.3f} bits/pixel with the saved weights")
    return 0
