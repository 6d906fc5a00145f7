"""GAN recipes: build, fit and train a generator from a latent, and an image-restoration GAN.

* :func:`build_gan` / :func:`fit_gan` / :func:`train_gan` — ``pixseq train gan``;
* :func:`build_restore` / :func:`fit_restore` / :func:`train_restore` — ``pixseq train restore``.

Layout of the output directory ``out`` (as for the iGPT)::

    out/config.json, out/model.safetensors   the generator (the EMA weights when on), written last
    out/train/run.json                       the model/data settings (reused by resume)
    out/train/train_state.pt, history.jsonl  the Trainer's checkpoint (G and D) and history,
                                             health warnings included (``health``)
    out/train/tb/                            TensorBoard scalars, images, warnings (text)
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from pixseq.errors import PixseqError
from pixseq.gans.dcgan import SIZES, Discriminator, GANConfig
from pixseq.gans.health import HealthConfig, HealthMonitor
from pixseq.gans.model import GAN
from pixseq.train.config import TrainConfig
from pixseq.train.trainer import NonFiniteError

if TYPE_CHECKING:
    from pixseq.gans.model import Restorer
    from pixseq.gans.restoration import Critic
    from pixseq.train.runs import TrainResult

#: ``pixseq train gan``'s model/data settings and defaults (None: from the data or the loss).
GAN_RUN_DEFAULTS = {"data": None, "limit": None, "classes": False, "arch": "dcgan", "loss": "ns",
                    "latent_dim": None, "prior": None, "width": 64, "disc_width": 64, "image_size": None,
                    "spectral_norm": False, "d_lr_ratio": 1.0, "r1": 0.0, "health": True,
                    "val_data": None, "val_limit": None, "eval_samples": None}
#: Part names as a sentence says them (which part diverged).
PART_NAMES = {"disc": "the discriminator", "gen": "the generator"}


def default_gan_train_config() -> TrainConfig:
    """``pixseq train gan``'s training defaults: Radford et al.'s Adam at a constant 2e-4
    (no warm-up, no decay, no clipping), batch 64, EMA of G."""
    return TrainConfig(steps=5000, batch_size=64, lr=2e-4, warmup_steps=0, min_lr_ratio=1.0, grad_clip=0.0,
                       ema_decay=0.999, ckpt_every=1000, log_every=50)


class GANImages(torch.utils.data.Dataset):
    """uint8 ``(N, S, S, 3)`` images as ``{"image": (3, S, S) in [0, 1], "label", "index"}`` items."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None = None) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)  # (N, 3, S, S) uint8
        self.labels = torch.as_tensor(labels, dtype=torch.long) if labels is not None else None
        # per-item 0-d tensors are views of these: building new ones (torch.tensor) for every
        # item was a third of the Trainer's data time on a 28-px DCGAN step
        self._label_of = self.labels if self.labels is not None else torch.full((len(self.images),), -1)
        self._index_of = torch.arange(len(self.images))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i].float().div_(255.0), "label": self._label_of[i], "index": self._index_of[i]}


def is_grey(images: Sequence[np.ndarray]) -> bool:
    """Whether every image has R = G = B."""
    return all(bool((im[..., 0] == im[..., 1]).all() and (im[..., 1] == im[..., 2]).all()) for im in images)


def gan_image_size(images: Sequence[np.ndarray], asked: int | None) -> int:
    """The training side: ``asked`` (one of :data:`SIZES`; images are resized to it), else the
    images' own square side when it is one; mixed or other sizes are a clear error."""
    shapes = sorted({im.shape[:2] for im in images})
    if asked is not None:
        if asked not in SIZES:
            raise PixseqError(f"--image-size must be one of {', '.join(map(str, SIZES))}, got {asked}")
        return asked
    if len(shapes) > 1:
        sizes = ", ".join(f"{w}x{h}" for h, w in shapes[:3])
        raise PixseqError(f"the images have mixed sizes ({sizes}{', ...' if len(shapes) > 3 else ''}); give "
                          f"--image-size {' or '.join(map(str, SIZES))} to resize them all")
    h, w = shapes[0]
    if h != w or h not in SIZES:
        raise PixseqError(f"the images are {w}x{h}; a GAN generates {', '.join(map(str, SIZES))} px squares: "
                          f"give --image-size to resize them")
    return h


def build_gan(image_size: int = 28, channels: int = 1, arch: str = "dcgan", latent_dim: int | None = None,
              prior: str | None = None, num_classes: int = 0, width: int = 64, disc_width: int = 64,
              spectral_norm: bool = False, seed: int = 0) -> tuple[GAN, Discriminator]:
    """A fresh generator and discriminator. Defaults follow the architecture: DCGAN's
    ``z ~ N(0, I)`` of 100 dimensions, the lecture's vanilla ``z ~ U[-1, 1]^20``."""
    vanilla = arch == "vanilla"
    cfg = GANConfig(arch=arch, image_size=image_size, channels=channels,
                    latent_dim=latent_dim or (20 if vanilla else 100),
                    prior=prior or ("uniform" if vanilla else "normal"), num_classes=num_classes, width=width,
                    disc_width=disc_width, spectral_norm=spectral_norm)
    torch.manual_seed(seed)
    return GAN(cfg), Discriminator(cfg)


def diverged(exc: NonFiniteError) -> PixseqError:
    """The Trainer's NaN error, saying in words which part diverged."""
    text = str(exc)
    for part, name in PART_NAMES.items():
        text = text.replace(f"in part {part!r}", f"in {name} ('{part}': it diverged)")
    return NonFiniteError(text)


def fit_gan(model: GAN, disc: Discriminator, images: np.ndarray, labels: np.ndarray | None, out_dir: str | Path,
            train_config: TrainConfig, device: str | torch.device = "cpu", loss: str = "ns",
            d_lr_ratio: float = 1.0, r1: float = 0.0, resume: bool = False, meta: dict | None = None,
            callbacks=(), held_out: np.ndarray | None = None, eval_samples: int | None = None,
            health: HealthConfig | bool | None = True, reference: torch.Tensor | None = None
            ) -> tuple[GAN, list[dict], HealthMonitor | None]:
    """Train ``model`` against ``disc`` on uint8 ``(N, S, S, 3)`` ``images`` (state in
    ``out_dir/train``), then save the generator (EMA weights when on) to ``out_dir``.

    ``held_out``: uint8 images of the model's size; at every checkpoint ``eval_samples``
    samples of the saved weights are scored against them (``eval/fid``, ``eval/kid``, and
    ``eval/is`` with the official Inception weights). ``reference``: their Inception features
    when already known (e.g. cached). ``health``: the monitor's settings (True: defaults,
    False/None: off). Returns ``(model, history, monitor)``."""
    from pixseq.gans.tasks import GANTask
    from pixseq.models.base import class_names_meta
    from pixseq.train import Trainer

    out_dir = Path(out_dir)
    meta = class_names_meta(meta, model.num_classes, model.kind)
    evaluator, eval_data = None, None
    if held_out is not None:
        from pixseq.gans.evaluate import SampleEvaluator
        from pixseq.metrics.fid import load_fid_inception

        extractor = load_fid_inception().to(torch.device(device) if str(device) != "auto" else "cpu")
        evaluator = SampleEvaluator(extractor, eval_samples or len(held_out), reference)
        eval_data = GANImages(held_out)
    task = GANTask(model, disc, loss, d_lr_ratio, r1, evaluator)
    monitor = None
    if health:
        monitor = HealthMonitor(health if isinstance(health, HealthConfig) else None)
        callbacks = [monitor, *callbacks]
    data = GANImages(images, labels)  # labels of unconditional runs serve the monitor's class probe
    trainer = Trainer(task, data, train_config, out_dir / "train", device, callbacks=callbacks, eval_data=eval_data)
    history = _fit_and_save(trainer, model, out_dir, resume, meta, monitor)
    return model, history, monitor


def _fit_and_save(trainer, model, out_dir: Path, resume: bool, meta: dict | None,
                  monitor: HealthMonitor | None) -> list[dict]:
    """Train (a NaN names the part that diverged), then save the generator (rank 0)."""
    from pixseq.checkpoint import save_pretrained

    start = time.perf_counter()
    try:
        history = trainer.fit(resume=resume)
    except NonFiniteError as exc:
        raise diverged(exc) from None
    if trainer.dist.is_main:
        save_pretrained(model, out_dir, meta={**(meta or {}), **_run_info(history, trainer.config, start, monitor)})
    return history


def _run_info(history: list[dict], tc: TrainConfig, start: float, monitor: HealthMonitor | None) -> dict:
    last = history[-1] if history else {}
    info: dict[str, Any] = {"steps": tc.steps, "train_seconds_last_session": round(time.perf_counter() - start, 1),
                            "ema": tc.ema_decay > 0}
    info.update({f"held_out_{k[5:]}": v for k, v in last.items() if k.startswith("eval/")})
    if monitor is not None:
        info["health_warnings"] = [f"step {s}: {m}" for s, _, m in monitor.warnings]
    return info


def train_gan(data: str, out: str | Path, *, train: dict | TrainConfig | None = None,
              device: str | torch.device = "cpu", resume: bool = False, force: bool = False,
              seed: int | None = None, callbacks=(), **settings) -> "TrainResult":
    """``pixseq train gan`` as one call: a generator (``arch`` ``dcgan`` or ``vanilla``,
    conditional with ``classes``) trained on ``data`` (a data spec) with the ``loss`` of
    :data:`pixseq.gans.losses.LOSSES`, written to ``out``. ``settings``: the keys of
    :data:`GAN_RUN_DEFAULTS` (None: the default or, with ``resume``, the recorded value).
    Returns a :class:`~pixseq.train.runs.TrainResult` whose ``extra["health"]`` lists the warnings."""
    from pixseq.data import load_data, resize_square
    from pixseq.device import resolve_device
    from pixseq.gans.losses import check_loss
    from pixseq.train.batches import cap_batch
    from pixseq.train.distributed import launched_world_size
    from pixseq.train.runs import (RunRecorder, TrainResult, check_limit, check_out_dir, load_val_data, run_settings,
                                   train_config)

    out = Path(out)
    check_out_dir(out, out / "train", resume, force, inputs=[data, settings.get("val_data")])
    s = run_settings({"data": data, **settings}, GAN_RUN_DEFAULTS, out / "train", resume)
    check_loss(s["loss"])
    check_limit(s["limit"])
    check_limit(s["eval_samples"], "--eval-samples")
    if s["d_lr_ratio"] <= 0 or s["r1"] < 0:
        raise PixseqError("--d-lr-ratio must be > 0 and --r1 >= 0")
    tc = train_config(train, default_gan_train_config(), out / "train", resume, seed)
    images = load_data(s["data"], limit=s["limit"])
    if s["classes"]:
        images.require_labels("--classes")
    size = gan_image_size(images.images, s["image_size"])
    tc = cap_batch(tc, len(images.images), launched_world_size())  # before anything is written
    val = load_val_data(s, images)
    channels = 1 if is_grey(images.images) else 3
    num_classes = images.num_classes if s["classes"] else 0
    model, disc = build_gan(size, channels, s["arch"], s["latent_dim"], s["prior"], num_classes, s["width"],
                            s["disc_width"], s["spectral_norm"], tc.seed)
    s.update(image_size=size, latent_dim=model.config.latent_dim, prior=model.config.prior)
    held_out = resize_square(val[0], size) if val is not None else None
    meta = {"class_names": list(images.class_names) if num_classes else [], "data": s["data"],
            "loss": s["loss"]}
    recorder = RunRecorder(out / "train", s, resume)
    model, history, monitor = fit_gan(model, disc, resize_square(images.images, size), images.labels, out, tc,
                                      resolve_device(device), s["loss"], s["d_lr_ratio"], s["r1"], resume, meta,
                                      [recorder, *callbacks], held_out, s["eval_samples"], bool(s["health"]))
    return TrainResult(model, history, s, tc, held_out=0 if val is None else len(val[0]),
                       extra={"health": [] if monitor is None else [f"step {st}: {m}" for st, _, m in monitor.warnings]})


# ------------------------------------------------------------------ image restoration
#: ``pixseq train restore``'s model/data settings and defaults.
RESTORE_RUN_DEFAULTS = {"data": None, "task": "denoise", "strength": None, "limit": None, "image_size": None,
                        "width": 32, "depth": 2, "disc_width": 32, "loss": "ns", "pixel_weight": 100.0,
                        "pretrain_steps": None, "d_lr_ratio": 1.0, "r1": 0.0, "health": True,
                        "val_data": None, "val_limit": None}


def default_restore_train_config() -> TrainConfig:
    """``pixseq train restore``'s training defaults (as for a GAN, batch 32)."""
    return TrainConfig(steps=2000, batch_size=32, lr=2e-4, warmup_steps=0, min_lr_ratio=1.0, grad_clip=0.0,
                       ema_decay=0.0, ckpt_every=500, log_every=50)


class RestoreImages(torch.utils.data.Dataset):
    """:class:`pixseq.models.taming_train.ImageDataset` items (whole images or seeded random
    crops) with their ``index`` (held-out degradations are seeded by it)."""

    def __init__(self, images: Sequence[np.ndarray], size: int, length: int | None = None) -> None:
        from pixseq.models.taming_train import ImageDataset

        self.inner = ImageDataset(images, size, None, length)

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {**self.inner[i], "index": torch.tensor(i)}


def restore_image_size(images: Sequence[np.ndarray], asked: int | None) -> tuple[int, bool]:
    """The training side and whether images are used whole (else random crops of mixed-size
    data, 4096 per epoch); checked before anything is written."""
    shapes = {im.shape[:2] for im in images}
    (h, w) = next(iter(shapes))
    size = asked if asked is not None else (h if len(shapes) == 1 and h == w else 64)
    if size < 16:
        raise PixseqError(f"--image-size must be at least 16, got {size}")
    smallest = min(shapes, key=min)
    if min(smallest) < size:
        raise PixseqError(f"--image-size {size} is larger than some training images (e.g. {smallest[1]}x{smallest[0]}); "
                          f"give --image-size {min(smallest)} or less")
    return size, shapes == {(size, size)}


def build_restore(task: str = "denoise", channels: int = 3, width: int = 32, depth: int = 2, disc_width: int = 32,
                  strength: float | None = None, image_size: int = 28, seed: int = 0) -> tuple["Restorer", "Critic"]:
    """A fresh restoration generator (a ``restore`` model) and its critic."""
    from pixseq.gans.degrade import strength_of
    from pixseq.gans.model import Restorer
    from pixseq.gans.restoration import Critic, RestoreConfig

    cfg = RestoreConfig(task=task, channels=channels, width=width, depth=depth, disc_width=disc_width,
                        strength=strength_of(task, strength), image_size=image_size)
    torch.manual_seed(seed)
    return Restorer(cfg), Critic(channels, disc_width, layers=min(3, depth + 1))


def fit_restore(model, disc, images: Sequence[np.ndarray], out_dir: str | Path, train_config: TrainConfig,
                device: str | torch.device = "cpu", loss: str = "ns", pixel_weight: float = 100.0,
                pretrain_steps: int = 0, d_lr_ratio: float = 1.0, r1: float = 0.0, resume: bool = False,
                meta: dict | None = None, callbacks=(), held_out: Sequence[np.ndarray] | None = None,
                health: HealthConfig | bool | None = True, crops_per_epoch: int | None = None
                ) -> tuple["Restorer", list[dict], HealthMonitor | None]:
    """Train a restoration GAN on pairs made on the fly from clean uint8 ``images`` (crops of
    ``model.config.image_size``), then save the generator to ``out_dir``. ``held_out``: clean
    images whose centre crops are degraded (seeded) and restored at every checkpoint
    (``eval/psnr_db``, ``eval/l1``, ``eval/input_psnr_db``). Returns ``(model, history, monitor)``."""
    from pixseq.gans.tasks import RestoreTask
    from pixseq.models.taming_train import centre_crops
    from pixseq.train import Trainer

    size = model.config.image_size
    out_dir = Path(out_dir)
    task = RestoreTask(model, disc, loss, pixel_weight, pretrain_steps, d_lr_ratio, r1)
    monitor = None
    if health:
        monitor = HealthMonitor(health if isinstance(health, HealthConfig) else HealthConfig(every=0))
        callbacks = [monitor, *callbacks]
    eval_data = RestoreImages(centre_crops(held_out, size), size) if held_out is not None else None
    trainer = Trainer(task, RestoreImages(images, size, crops_per_epoch), train_config, out_dir / "train", device,
                      callbacks=callbacks, eval_data=eval_data)
    history = _fit_and_save(trainer, model, out_dir, resume, meta, monitor)
    return model, history, monitor


def train_restore(data: str, out: str | Path, *, train: dict | TrainConfig | None = None,
                  device: str | torch.device = "cpu", resume: bool = False, force: bool = False,
                  seed: int | None = None, callbacks=(), **settings) -> "TrainResult":
    """``pixseq train restore`` as one call: a ``task`` (denoise, inpaint, colorize, superres)
    restoration GAN trained on pairs made on the fly from ``data``, with ``pretrain_steps`` of
    per-pixel (L1) pre-training (default a fifth of the steps) before the adversarial loss
    joins it. ``settings``: the keys of :data:`RESTORE_RUN_DEFAULTS`."""
    from pixseq.data import load_data
    from pixseq.device import resolve_device
    from pixseq.gans.losses import check_loss
    from pixseq.gans.restoration import TASKS
    from pixseq.models.taming_train import centre_crops
    from pixseq.train.batches import cap_batch
    from pixseq.train.distributed import launched_world_size
    from pixseq.train.runs import (RunRecorder, TrainResult, check_limit, check_out_dir, load_val_data, run_settings,
                                   train_config)

    out = Path(out)
    check_out_dir(out, out / "train", resume, force, inputs=[data, settings.get("val_data")])
    s = run_settings({"data": data, **settings}, RESTORE_RUN_DEFAULTS, out / "train", resume)
    if s["task"] not in TASKS:
        raise PixseqError(f"unknown --task {s['task']!r} (known: {', '.join(TASKS)})")
    check_loss(s["loss"])
    check_limit(s["limit"])
    tc = train_config(train, default_restore_train_config(), out / "train", resume, seed)
    images = load_data(s["data"], limit=s["limit"])
    grey = is_grey(images.images)
    if s["task"] == "colorize" and grey:
        raise PixseqError(f"--task colorize needs colour images; {s['data']!r} is grey (try --data photos)")
    size, fixed = restore_image_size(images.images, s["image_size"])
    if fixed:  # random crops make 4096 items per epoch; whole images cap the batch (before anything is written)
        tc = cap_batch(tc, len(images.images), launched_world_size())
    val = load_val_data({**s, "classes": False}, images)
    if val is not None:
        centre_crops(val[0], size)  # too small: refused before anything is written
    model, disc = build_restore(s["task"], 1 if grey else 3, s["width"], s["depth"], s["disc_width"], s["strength"],
                                size, tc.seed)
    pretrain = s["pretrain_steps"] if s["pretrain_steps"] is not None else tc.steps // 5
    s.update(image_size=size, strength=model.config.strength, pretrain_steps=pretrain)
    recorder = RunRecorder(out / "train", s, resume)
    model, history, monitor = fit_restore(model, disc, images.images, out, tc, resolve_device(device), s["loss"],
                                          s["pixel_weight"], pretrain, s["d_lr_ratio"], s["r1"], resume,
                                          {"data": s["data"], "loss": s["loss"]}, [recorder, *callbacks],
                                          val[0] if val is not None else None, bool(s["health"]),
                                          None if fixed else 4096)
    return TrainResult(model, history, s, tc, held_out=0 if val is None else len(val[0]),
                       extra={"health": [] if monitor is None else [f"step {st}: {m}" for st, _, m in monitor.warnings]})
