"""pix2pix and CycleGAN recipes: build, fit and train image-to-image translators.

* :func:`build_pix2pix` / :func:`fit_pix2pix` / :func:`train_pix2pix` — ``pixseq train pix2pix``;
* :func:`build_cyclegan` / :func:`fit_cyclegan` / :func:`train_cyclegan` — ``pixseq train cyclegan``.

Defaults are the official ones (pytorch-CycleGAN-and-pix2pix): Adam at 2e-4 with beta1 0.5,
a constant rate for the first half of the steps then a linear decay towards 0, batch 1,
no EMA; pix2pix a U-Net with batch norm and dropout, a 70x70 PatchGAN, the non-saturating
(official ``vanilla``) loss and L1 x 100; CycleGAN ResNet generators (9 blocks from 256 px, 6
below) with instance norm, LSGAN, cycle x 10, identity x 0.5, 50-image pools. The output
directory is laid out as for every GAN (see :mod:`pixseq.gans.train`).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pixseq.errors import PixseqError
from pixseq.gans.generators import ARCHS, NORMS, GeneratorConfig
from pixseq.gans.translator import CycleGAN, Pix2Pix, TranslatorConfig
from pixseq.nn.conv import PATCH_NORMS, PatchDiscriminator
from pixseq.train.config import TrainConfig

if TYPE_CHECKING:
    from pixseq.train.runs import TrainResult

_COMMON = {"limit": None, "image_size": None, "jitter": None, "flip": True, "arch": None, "width": 64,
           "blocks": None, "downs": None, "norm": None, "dropout": None, "disc_width": 64, "disc_layers": 3,
           "disc_norm": None, "loss": None, "d_lr_ratio": 1.0, "health": True, "val_data": None, "val_limit": None}
#: ``pixseq train pix2pix``'s model/data settings (None: from the data or the official default).
PIX2PIX_RUN_DEFAULTS = {"data": None, **_COMMON, "lambda_l1": 100.0, "adversarial": True}
#: ``pixseq train cyclegan``'s model/data settings.
CYCLEGAN_RUN_DEFAULTS = {"data": None, "data_b": None, **_COMMON, "lambda_cycle": 10.0, "lambda_identity": 0.5,
                         "pool_size": 50, "val_data_b": None}


def default_translate_train_config() -> TrainConfig:
    """The official training settings (see the module doc) with 10 000 steps."""
    return TrainConfig(steps=10_000, batch_size=1, lr=2e-4, warmup_steps=0, min_lr_ratio=0.0, schedule="linear",
                       decay_start=0.5, grad_clip=0.0, ema_decay=0.0, ckpt_every=1000, log_every=50)


def _downs_for(size: int) -> int:
    """U-Net depth reaching 1x1 (or just below) at ``size``: 8 for 256 px, 5 for 28 or 32 px."""
    return max(2, min(8, math.ceil(math.log2(max(size, 4)))))


def _generator_config(s: dict, in_ch: int, out_ch: int, size: int, family: str) -> GeneratorConfig:
    arch = s["arch"] or ("unet" if family == "pix2pix" else "resnet")
    if arch not in ARCHS:
        raise PixseqError(f"--arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    norm = s["norm"] or ("batch" if family == "pix2pix" else "instance")
    dropout = s["dropout"] if s["dropout"] is not None else (family == "pix2pix" and arch == "unet")
    return GeneratorConfig(arch=arch, in_channels=in_ch, out_channels=out_ch, width=s["width"],
                           blocks=s["blocks"] if s["blocks"] is not None else (9 if size >= 256 else 6),
                           downs=s["downs"] or _downs_for(size), norm=norm, dropout=dropout)


def _disc(in_ch: int, s: dict, default_norm: str) -> PatchDiscriminator:
    from pixseq.gans.dcgan import dcgan_init

    norm = s["disc_norm"] or default_norm
    if norm not in PATCH_NORMS:
        raise PixseqError(f"--disc-norm must be one of {', '.join(PATCH_NORMS)}, got {norm!r}")
    disc = PatchDiscriminator(in_ch, s["disc_width"], s["disc_layers"], norm)
    dcgan_init(disc)  # the official init: N(0, 0.02) weights, zero biases
    return disc


def build_pix2pix(config: TranslatorConfig, disc_width: int = 64, disc_layers: int = 3, disc_norm: str = "batch",
                  seed: int = 0) -> tuple[Pix2Pix, PatchDiscriminator]:
    """A fresh pix2pix generator and its conditional PatchGAN (A and B stacked on channels)."""
    torch.manual_seed(seed)
    g = config.generator
    model = Pix2Pix(config)
    return model, _disc(g.in_channels + g.out_channels, {"disc_width": disc_width, "disc_layers": disc_layers,
                                                          "disc_norm": disc_norm}, "batch")


def build_cyclegan(config: TranslatorConfig, disc_width: int = 64, disc_layers: int = 3, disc_norm: str = "instance",
                   seed: int = 0) -> tuple[CycleGAN, PatchDiscriminator, PatchDiscriminator]:
    """A fresh CycleGAN: both generators, D_A (judges A images) and D_B (judges B images)."""
    torch.manual_seed(seed)
    g = config.generator
    if sorted(config.directions) != ["AtoB", "BtoA"]:
        raise PixseqError("a CycleGAN trains both directions (directions AtoB and BtoA)")
    opts = {"disc_width": disc_width, "disc_layers": disc_layers, "disc_norm": disc_norm}
    model = CycleGAN(config)
    return model, _disc(g.in_channels, opts, "instance"), _disc(g.out_channels, opts, "instance")


# ---------------------------------------------------------------------------- fitting
def _fit(task, data, out_dir: Path, tc: TrainConfig, device, resume: bool, meta: dict | None, callbacks,
         held_out, monitor) -> list[dict]:
    """Train ``task`` (state in ``out_dir/train``) and save its translator to ``out_dir``."""
    from pixseq.gans.train import _fit_and_save
    from pixseq.train import Trainer

    callbacks = [monitor, *callbacks] if monitor is not None else list(callbacks)
    trainer = Trainer(task, data, tc, out_dir / "train", device, callbacks=callbacks, eval_data=held_out)
    return _fit_and_save(trainer, task.model, out_dir, resume, meta, monitor)


def _fixed_sources(data, n: int = 64) -> torch.Tensor:
    """Centre crops of the first ``n`` training sources (no RNG: the same at every call)."""
    return torch.stack([data.centre(i)["source"] for i in range(min(n, len(data)))])


def _monitor(health):
    from pixseq.gans.health import HealthConfig
    from pixseq.gans.translate_tasks import TranslationHealth

    if not health:
        return None
    return TranslationHealth(health if isinstance(health, HealthConfig) else None)


def fit_pix2pix(model: Pix2Pix, disc: PatchDiscriminator | None, data, out_dir: str | Path, train_config: TrainConfig,
                device: str | torch.device = "cpu", loss: str = "ns", lambda_l1: float = 100.0,
                adversarial: bool = True, d_lr_ratio: float = 1.0, resume: bool = False, meta: dict | None = None,
                callbacks=(), held_out=None, health=True) -> tuple[Pix2Pix, list[dict], Any]:
    """Train ``model`` (and ``disc``; ``adversarial=False``: L1 alone, no D) on ``data`` (a
    :class:`~pixseq.gans.pairs.PairedCrops`), then save the generator to ``out_dir``.
    ``held_out``: a PairedCrops of centre crops, scored at every checkpoint (``eval/l1``,
    ``eval/psnr_db``, ``eval/ssim``). Returns ``(model, history, health monitor or None)``."""
    from pixseq.gans.translate_tasks import Pix2PixTask

    task = Pix2PixTask(model, disc, _fixed_sources(data), loss, lambda_l1, adversarial, d_lr_ratio)
    monitor = _monitor(health) if adversarial else None
    history = _fit(task, data, Path(out_dir), train_config, device, resume, meta, callbacks, held_out, monitor)
    return model, history, monitor


def fit_cyclegan(model: CycleGAN, disc_a: PatchDiscriminator, disc_b: PatchDiscriminator, data,
                 out_dir: str | Path, train_config: TrainConfig, device: str | torch.device = "cpu",
                 loss: str = "lsgan", lambda_cycle: float = 10.0, lambda_identity: float = 0.5, pool_size: int = 50,
                 d_lr_ratio: float = 1.0, resume: bool = False, meta: dict | None = None, callbacks=(),
                 held_out=None, health=True) -> tuple[CycleGAN, list[dict], Any]:
    """Train a CycleGAN on ``data`` (an :class:`~pixseq.gans.pairs.UnpairedCrops`), then save
    both generators to ``out_dir``. ``held_out``: an UnpairedCrops with ``random=False``,
    scored at every checkpoint (``eval/cycle_a``, ``eval/cycle_b``, ``eval/change_*``), which
    the health monitor watches. Returns ``(model, history, health monitor or None)``."""
    from pixseq.gans.translate_tasks import CycleGANTask, ImagePool

    g, size = model.config.generator, data.size
    pools = {"a": ImagePool(pool_size, (g.in_channels, size, size)), "b": ImagePool(pool_size, (g.out_channels, size, size))}
    task = CycleGANTask(model, disc_a, disc_b, pools, _fixed_sources(data), loss, lambda_cycle, lambda_identity,
                        d_lr_ratio)
    monitor = _monitor(health)
    history = _fit(task, data, Path(out_dir), train_config, device, resume, meta, callbacks, held_out, monitor)
    return model, history, monitor


# ---------------------------------------------------------------------------- whole runs
def image_size_for(images: list[np.ndarray], asked: int | None, spec: str) -> int:
    """The training side: ``asked`` (images are resized and cropped to it), else the images'
    own side when they are all the same square; otherwise a clear error."""
    if asked is not None:
        if asked < 8:
            raise PixseqError(f"--image-size must be >= 8, got {asked}")
        return asked
    shapes = sorted({im.shape[:2] for im in images})
    if len(shapes) == 1 and shapes[0][0] == shapes[0][1]:
        return shapes[0][0]
    sizes = ", ".join(f"{w}x{h}" for h, w in shapes[:3]) + (", ..." if len(shapes) > 3 else "")
    raise PixseqError(f"the images of {spec!r} are not all one square size ({sizes}); give --image-size S to "
                      f"train on S x S crops")


def _check_settings(s: dict, family: str) -> None:
    from pixseq.gans.losses import check_loss
    from pixseq.train.runs import check_limit

    s["loss"] = check_loss(s["loss"] or ("ns" if family == "pix2pix" else "lsgan"))
    check_limit(s["limit"])
    if s["norm"] is not None and s["norm"] not in NORMS:
        raise PixseqError(f"--norm must be one of {', '.join(NORMS)}, got {s['norm']!r}")
    weights = [s.get(k) for k in ("lambda_l1", "lambda_cycle", "lambda_identity") if k in s]
    if s["d_lr_ratio"] <= 0 or any(w < 0 for w in weights) or min(s["width"], s["disc_width"], s["disc_layers"]) < 1:
        raise PixseqError("--d-lr-ratio must be > 0, the lambdas >= 0, --width, --disc-width and --disc-layers >= 1")
    if s.get("pool_size", 0) < 0:
        raise PixseqError(f"--pool-size must be >= 0, got {s['pool_size']}")


def _start(data_key: dict, defaults: dict, out: Path, train, resume: bool, force: bool, seed, family: str, settings):
    from pixseq.train.runs import check_out_dir, run_settings, train_config

    check_out_dir(out, out / "train", resume, force,
                  inputs=[data_key["data"], *(settings.get(k) for k in ("data_b", "val_data", "val_data_b"))])
    s = run_settings({**data_key, **settings}, defaults, out / "train", resume)
    _check_settings(s, family)
    return s, train_config(train, default_translate_train_config(), out / "train", resume, seed)


def _result(model, history, s, tc, held, monitor, **extra) -> "TrainResult":
    from pixseq.train.runs import TrainResult

    warnings = [] if monitor is None else [f"step {st}: {m}" for st, _, m in monitor.warnings]
    return TrainResult(model, history, s, tc, held_out=0 if held is None else len(held),
                       extra={"health": warnings, **extra})


def train_pix2pix(data: str, out: str | Path, *, train: dict | TrainConfig | None = None,
                  device: str | torch.device = "cpu", resume: bool = False, force: bool = False,
                  seed: int | None = None, callbacks=(), **settings) -> "TrainResult":
    """``pixseq train pix2pix`` as one call: a translator from A to B trained on the paired
    data spec ``data`` (:func:`pixseq.gans.pairs.load_pairs`: A/ + B/ folders, side-by-side
    images, or a built-in task such as ``edges:fashion-mnist``), written to ``out``.
    ``settings``: the keys of :data:`PIX2PIX_RUN_DEFAULTS`; ``adversarial=False`` trains the
    same U-Net with L1 alone (the non-adversarial baseline). ``extra["task"]`` says what
    the pairs are."""
    from pixseq.device import resolve_device
    from pixseq.gans.pairs import PairedCrops, load_pairs, load_size, resize_pairs
    from pixseq.gans.train import is_grey
    from pixseq.train.batches import cap_batch
    from pixseq.train.distributed import launched_world_size
    from pixseq.train.runs import DEFAULT_VAL_LIMIT, RunRecorder

    out = Path(out)
    s, tc = _start({"data": data}, PIX2PIX_RUN_DEFAULTS, out, train, resume, force, seed, "pix2pix", settings)
    pairs = load_pairs(s["data"], s["limit"])
    size = image_size_for(pairs.b, s["image_size"], s["data"])
    jitter = s["jitter"] if s["jitter"] is not None else size > 64
    a, b = resize_pairs(pairs, load_size(size, jitter))
    train_set = PairedCrops(a, b, size, random=True, flip=s["flip"])
    tc = cap_batch(tc, len(train_set), launched_world_size())  # before anything is written
    held = None
    if s["val_data"] is not None:
        val = load_pairs(s["val_data"], s["val_limit"] or DEFAULT_VAL_LIMIT)
        held = PairedCrops(*resize_pairs(val, size), size, random=False)
    gen = _generator_config(s, 1 if is_grey(a) else 3, 1 if is_grey(b) else 3, size, "pix2pix")
    cfg = TranslatorConfig(generator=gen, directions=["AtoB"], domain_a=pairs.domain_a, domain_b=pairs.domain_b,
                           image_size=size, task=pairs.task)
    model, disc = build_pix2pix(cfg, s["disc_width"], s["disc_layers"], s["disc_norm"] or "batch", tc.seed)
    s.update(image_size=size, jitter=jitter, arch=gen.arch, norm=gen.norm, dropout=gen.dropout, blocks=gen.blocks,
             downs=gen.downs, disc_norm=s["disc_norm"] or "batch")
    recorder = RunRecorder(out / "train", s, resume)
    meta = {"data": s["data"], "task": pairs.task, "loss": s["loss"] if s["adversarial"] else "L1 only"}
    model, history, monitor = fit_pix2pix(model, disc, train_set, out, tc, resolve_device(device), s["loss"],
                                          s["lambda_l1"], s["adversarial"], s["d_lr_ratio"], resume, meta,
                                          [recorder, *callbacks], held, s["health"])
    return _result(model, history, s, tc, held, monitor, task=pairs.task)


def train_cyclegan(data: str, out: str | Path, *, train: dict | TrainConfig | None = None,
                   device: str | torch.device = "cpu", resume: bool = False, force: bool = False,
                   seed: int | None = None, callbacks=(), **settings) -> "TrainResult":
    """``pixseq train cyclegan`` as one call: translators A -> B and B -> A trained on unpaired
    data (``data`` and ``settings["data_b"]``, two data specs such as ``fashion-mnist:Sneaker``
    and ``fashion-mnist:Ankle boot``; or ``data`` a folder with ``trainA/`` and ``trainB/``),
    written to ``out``. ``settings``: the keys of :data:`CYCLEGAN_RUN_DEFAULTS`; held-out data
    (``val_data`` + ``val_data_b``, or one folder with ``testA/`` + ``testB/``) gives the
    cycle reconstruction error at every checkpoint."""
    from pixseq.device import resolve_device
    from pixseq.gans.pairs import UnpairedCrops, load_size, load_unpaired, resize_short
    from pixseq.gans.train import is_grey
    from pixseq.train.batches import cap_batch
    from pixseq.train.distributed import launched_world_size
    from pixseq.train.runs import DEFAULT_VAL_LIMIT, RunRecorder

    out = Path(out)
    s, tc = _start({"data": data}, CYCLEGAN_RUN_DEFAULTS, out, train, resume, force, seed, "cyclegan", settings)
    set_a, set_b = load_unpaired(s["data"], s["data_b"], s["limit"])
    size = image_size_for(set_a.images + set_b.images, s["image_size"], f"{s['data']} / {s['data_b']}")
    jitter = s["jitter"] if s["jitter"] is not None else size > 64
    short = load_size(size, jitter)
    a, b = [resize_short(im, short) for im in set_a.images], [resize_short(im, short) for im in set_b.images]
    train_set = UnpairedCrops(a, b, size, random=True, flip=s["flip"])
    tc = cap_batch(tc, len(train_set), launched_world_size())
    held = None
    if s["val_data"] is not None:
        va, vb = load_unpaired(s["val_data"], s["val_data_b"], s["val_limit"] or DEFAULT_VAL_LIMIT, split="test")
        held = UnpairedCrops([resize_short(im, size) for im in va.images], [resize_short(im, size) for im in vb.images],
                             size, random=False)
    gen = _generator_config(s, 1 if is_grey(a) else 3, 1 if is_grey(b) else 3, size, "cyclegan")
    names = (s["data"], s["data_b"]) if s["data_b"] is not None else (set_a.spec, set_b.spec)
    cfg = TranslatorConfig(generator=gen, directions=["AtoB", "BtoA"], domain_a=names[0], domain_b=names[1],
                           image_size=size, task=f"unpaired {names[0]} <-> {names[1]}")
    model, disc_a, disc_b = build_cyclegan(cfg, s["disc_width"], s["disc_layers"], s["disc_norm"] or "instance",
                                           tc.seed)
    s.update(image_size=size, jitter=jitter, arch=gen.arch, norm=gen.norm, dropout=gen.dropout, blocks=gen.blocks,
             downs=gen.downs, disc_norm=s["disc_norm"] or "instance")
    recorder = RunRecorder(out / "train", s, resume)
    meta = {"data": list(names), "loss": s["loss"]}
    model, history, monitor = fit_cyclegan(model, disc_a, disc_b, train_set, out, tc, resolve_device(device), s["loss"],
                                           s["lambda_cycle"], s["lambda_identity"], s["pool_size"], s["d_lr_ratio"],
                                           resume, meta, [recorder, *callbacks], held, s["health"])
    return _result(model, history, s, tc, held, monitor, task=cfg.task)
