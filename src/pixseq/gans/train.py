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

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        label = self.labels[i] if self.labels is not None else torch.tensor(-1)
        return {"image": self.images[i].float() / 255.0, "label": label, "index": torch.tensor(i)}


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
    from pixseq.checkpoint import save_pretrained
    from pixseq.gans.tasks import GANTask
    from pixseq.train import Trainer

    out_dir = Path(out_dir)
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
    start = time.perf_counter()
    try:
        history = trainer.fit(resume=resume)
    except NonFiniteError as exc:
        raise diverged(exc) from None
    if trainer.dist.is_main:
        save_pretrained(model, out_dir, meta={**(meta or {}), **_run_info(history, train_config, start, monitor)})
    return model, history, monitor


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
    from pixseq.train.batches import batches_per_epoch
    from pixseq.train.distributed import launched_world_size
    from pixseq.train.runs import (RunRecorder, TrainResult, check_limit, check_out_dir, load_val_data, run_settings,
                                   train_config)

    out = Path(out)
    check_out_dir(out, out / "train", resume, force)
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
    batches_per_epoch(len(images.images), tc.batch_size, launched_world_size())  # before anything is written
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
