"""GAN inversion: find the latent ``z`` whose image ``G(z)`` matches a given image.

Every image gets ``restarts`` chains (starting points from the generator's prior, or the
encoder's latent for a VQGAN; for a class-conditional generator without a known class, that
many chains *per class*), all optimised at once as one batch. Each chain is its own problem:
its loss is its own image's, and the optimiser keeps per-chain state, learning rate and
plateau schedule, so batching images changes nothing but the speed. The best point any
chain reached (lowest loss) is the answer.

Recipes (:data:`RECIPES`):

* ``"study"`` — the founding study's: SGD with learning rate 1 and momentum 0.9 (PyTorch's
  ``torch.optim.SGD`` update), ``ReduceLROnPlateau`` stepped on the loss after every iteration
  (PyTorch's defaults: factor 0.1, patience 10, relative threshold 1e-4), MSE, 30 000
  iterations, one starting point;
* ``"pixseq"`` — the default: Adam (Kingma & Ba 2015), learning rate 0.1 with a cosine decay to
  1 % of it, 600 steps, 4 restarts. :mod:`benchmarks.invert_cost` measures both.

The loss is the per-pixel MSE on [0, 1] images (the study's), optionally plus ``lpips_weight``
times LPIPS (Zhang et al. 2018; images under 32 px are upsampled to 64 for it, AlexNet's last
stage needs 31). ``history`` records the quality reached against steps: mean best MSE and
PSNR over the images, the mean learning rate, seconds.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from pixseq.errors import PixseqError
from pixseq.inversion.generators import LatentGenerator, fit_to
from pixseq.runtime import notice, plural, progress

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine", "plateau")
LOSSES = ("mse", "mse+lpips")


@dataclass
class InversionConfig:
    """How to optimise z (see the module docstring for the two recipes)."""

    optimizer: str = "adam"
    lr: float = 0.1
    momentum: float = 0.9  # SGD's
    schedule: str = "cosine"  # "constant" | "cosine" (to 1 % of lr) | "plateau" (ReduceLROnPlateau per chain)
    steps: int = 600
    restarts: int = 4
    loss: str = "mse"
    lpips_weight: float = 1.0
    plateau_factor: float = 0.1
    plateau_patience: int = 10
    plateau_threshold: float = 1e-4
    batch: int = 256  # chains per generator call (memory)
    log_every: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [(self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
                  (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
                  (self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}"),
                  (math.isfinite(self.lr) and self.lr > 0, f"lr must be a finite number > 0, got {self.lr}"),
                  (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
                  (isinstance(self.steps, int) and self.steps >= 1, f"steps must be an integer >= 1, got {self.steps}"),
                  (isinstance(self.restarts, int) and self.restarts >= 1,
                   f"restarts must be an integer >= 1, got {self.restarts}"),
                  (self.batch >= 1 and self.log_every >= 1, "batch and log_every must be >= 1"),
                  (0 < self.plateau_factor < 1, "plateau_factor must be in (0, 1)")]
        for ok, message in checks:
            if not ok:
                raise PixseqError(f"inversion: {message}")


RECIPES = {
    "pixseq": InversionConfig(),
    "study": InversionConfig(optimizer="sgd", lr=1.0, momentum=0.9, schedule="plateau", steps=30_000, restarts=1),
}


def recipe(name: str = "pixseq", **overrides) -> InversionConfig:
    """A recipe of :data:`RECIPES` with some settings replaced (None: keep the recipe's)."""
    if name not in RECIPES:
        raise PixseqError(f"unknown inversion recipe {name!r} (known: {', '.join(RECIPES)})")
    return dataclasses.replace(RECIPES[name], **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class InversionResult:
    """The best latent per image and how it was reached."""

    z: torch.Tensor  # (B, *latent_shape)
    labels: torch.Tensor | None  # (B,) the class of the best chain (conditional generators)
    images: torch.Tensor  # (B, 3, H, W) G(z) in [0, 1]
    mse: torch.Tensor  # (B,) against the (resized) target
    targets: torch.Tensor  # (B, 3, H, W) what was matched: the input at the generator's size
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    chains: int = 0

    @property
    def psnr(self) -> torch.Tensor:
        return 10 * torch.log10(1.0 / self.mse.clamp_min(1e-12))


class _ChainOptimizer:
    """SGD with momentum or Adam, each chain with its own learning rate and plateau schedule
    (the updates are ``torch.optim.SGD`` / ``Adam``'s and ``ReduceLROnPlateau``'s, per row)."""

    def __init__(self, cfg: InversionConfig, z: torch.Tensor) -> None:
        self.cfg, self.t = cfg, 0
        n, dims = z.size(0), (1,) * (z.dim() - 1)
        self.lr = torch.full((n, *dims), cfg.lr, dtype=z.dtype, device=z.device)
        self.m = torch.zeros_like(z)
        self.v = torch.zeros_like(z) if cfg.optimizer == "adam" else None
        self.best = torch.full((n,), math.inf, dtype=torch.float64, device=z.device)
        self.bad = torch.zeros(n, dtype=torch.long, device=z.device)

    def step(self, z: torch.Tensor, grad: torch.Tensor, loss: torch.Tensor) -> None:
        c = self.cfg
        self.t += 1
        if c.optimizer == "sgd":
            self.m = grad.clone() if self.t == 1 else self.m.mul_(c.momentum).add_(grad)
            z.sub_(self.lr * self.m)
        else:
            b1, b2, eps = 0.9, 0.999, 1e-8
            self.m.mul_(b1).add_(grad, alpha=1 - b1)
            self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            step = self.lr / (1 - b1 ** self.t)
            denom = (self.v / (1 - b2 ** self.t)).sqrt_().add_(eps)
            z.sub_(step * self.m / denom)
        self._schedule(loss)

    def _schedule(self, loss: torch.Tensor) -> None:
        c = self.cfg
        if c.schedule == "cosine":
            frac = min(self.t / c.steps, 1.0)
            self.lr.fill_(c.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac))))
        elif c.schedule == "plateau":  # ReduceLROnPlateau(mode="min", threshold_mode="rel"), per chain
            loss = loss.detach().double()
            better = loss < self.best * (1 - c.plateau_threshold)
            self.best = torch.where(better, loss, self.best)
            self.bad = torch.where(better, torch.zeros_like(self.bad), self.bad + 1)
            cut = self.bad > c.plateau_patience
            flat = self.lr.view(-1)
            new = flat * c.plateau_factor
            flat.copy_(torch.where(cut & (flat - new > 1e-8), new, flat))
            self.bad = torch.where(cut, torch.zeros_like(self.bad), self.bad)

    @property
    def mean_lr(self) -> float:
        return float(self.lr.mean())


def _lpips_loss(model, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if min(out.shape[-2:]) < 32:
        out = F.interpolate(out, size=(64, 64), mode="bilinear", align_corners=False)
        target = F.interpolate(target, size=(64, 64), mode="bilinear", align_corners=False)
    return model(out, target).reshape(-1)


def _chain_labels(gen: LatentGenerator, labels, num_images: int, restarts: int) -> tuple[torch.Tensor | None, int]:
    """Labels of every chain (image-major) and the chains per image."""
    if not gen.num_classes:
        if labels is not None:
            raise PixseqError("this generator is unconditional; it takes no class")
        return None, restarts
    if labels is None:  # unknown class: try every class, `restarts` chains each
        per = torch.arange(gen.num_classes).repeat_interleave(restarts)
        return per.repeat(num_images).to(gen.device), gen.num_classes * restarts
    ids = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    if ids.numel() == 1:
        ids = ids.expand(num_images)
    if ids.numel() != num_images or int(ids.min()) < 0 or int(ids.max()) >= gen.num_classes:
        raise PixseqError(f"labels must be {num_images} class ids in 0..{gen.num_classes - 1}")
    return ids.repeat_interleave(restarts).to(gen.device), restarts


def _loss_and_grad(gen, z, chain_labels, targets, per_image, cfg, lpips_model):
    """Per-chain losses ``(N,)`` and ``dloss/dz``, the generator called ``cfg.batch`` chains at a time."""
    losses, grads = [], []
    for start in range(0, z.size(0), cfg.batch):
        part = z[start:start + cfg.batch].detach().requires_grad_(True)
        idx = torch.arange(start, start + part.size(0), device=z.device) // per_image
        labels = chain_labels[start:start + part.size(0)] if chain_labels is not None else None
        with torch.enable_grad():
            out = gen.generate(part, labels)
            target = targets[idx]
            loss = (out - target).pow(2).flatten(1).mean(1)
            if cfg.loss == "mse+lpips":
                loss = loss + cfg.lpips_weight * _lpips_loss(lpips_model, out, target)
            (grad,) = torch.autograd.grad(loss.sum(), part)
        losses.append(loss.detach())
        grads.append(grad)
    return torch.cat(losses), torch.cat(grads)


def _check_images(images: torch.Tensor) -> torch.Tensor:
    if images.dim() != 4 or images.size(1) != 3 or images.size(0) < 1:
        raise PixseqError(f"inversion needs images (B, 3, H, W) in [0, 1], got {tuple(images.shape)}")
    if not torch.isfinite(images).all() or float(images.min()) < 0 or float(images.max()) > 1:
        raise PixseqError("inversion needs finite images with values in [0, 1]")
    return images.float()


def invert(gen: LatentGenerator, images: torch.Tensor, labels=None, config: InversionConfig | None = None,
           lpips_model=None, desc: str = "inverting") -> InversionResult:
    """Invert ``gen`` on ``images`` ``(B, 3, H, W)`` in [0, 1] (resized to the generator's size,
    with a notice, when they differ). ``labels``: the class of each image (or one for all) for a
    conditional generator; None tries every class. ``lpips_model``: the LPIPS network for
    ``loss="mse+lpips"`` (:func:`pixseq.metrics.lpips.load_lpips`)."""
    cfg = config or InversionConfig()
    images = _check_images(images)
    if cfg.loss == "mse+lpips" and lpips_model is None:
        raise PixseqError("loss mse+lpips needs an LPIPS network (pixseq.metrics.lpips.load_lpips)")
    size = gen.working_size(*images.shape[-2:])
    if tuple(images.shape[-2:]) != size:
        notice(f"{plural(images.size(0), 'image')} of {images.size(-1)}x{images.size(-2)} resized to "
               f"{size[1]}x{size[0]}, the generator's size")
    targets = fit_to(images, size).to(gen.device)
    chain_labels, per_image = _chain_labels(gen, labels, images.size(0), cfg.restarts)
    rng = torch.Generator().manual_seed(cfg.seed)
    z = gen.starts(targets, per_image, rng).float()
    gen.model.requires_grad_(False)
    opt = _ChainOptimizer(cfg, z)
    best_loss = torch.full((z.size(0),), math.inf, device=z.device)
    best_z, history, t0 = z.clone(), [], time.perf_counter()
    bar = progress(total=cfg.steps, desc=desc, unit="step")
    try:
        for step in range(cfg.steps + 1):  # the last pass only measures the final point
            loss, grad = _loss_and_grad(gen, z, chain_labels, targets, per_image, cfg, lpips_model)
            if not torch.isfinite(loss).all():
                raise PixseqError(f"inversion diverged at step {step} (a non-finite loss): lower the learning rate")
            better = loss < best_loss
            best_loss = torch.where(better, loss, best_loss)
            best_z[better] = z[better].detach()
            if step % cfg.log_every == 0 or step == cfg.steps:
                history.append(_record(step, best_loss, per_image, opt, t0, cfg.loss))
                bar.set_postfix(loss=f"{history[-1]['loss']:.3g}")
            if step == cfg.steps:
                break
            with torch.no_grad():
                opt.step(z, grad, loss)
                gen.project(z)
            bar.update(1)
    finally:
        bar.close()
    return _result(gen, best_z, best_loss, chain_labels, per_image, targets, history, t0)


def _record(step: int, best_loss: torch.Tensor, per_image: int, opt: _ChainOptimizer, t0: float,
            loss: str) -> dict:
    """One line of the quality-against-steps log: the mean over images of their best chain's
    loss (and, for the plain MSE loss, its PSNR in dB: the mean of per-image PSNRs)."""
    best = best_loss.view(-1, per_image).min(1).values.double()  # (B,) best chain per image
    rec = {"step": step, "loss": float(best.mean())}
    if loss == "mse":
        rec["psnr"] = float((10 * torch.log10(1.0 / best.clamp_min(1e-12))).mean())
    return {**rec, "lr": opt.mean_lr, "seconds": round(time.perf_counter() - t0, 3)}


def _result(gen, best_z, best_loss, chain_labels, per_image, targets, history, t0) -> InversionResult:
    pick = best_loss.view(-1, per_image).argmin(1)  # (B,)
    rows = torch.arange(targets.size(0), device=best_z.device) * per_image + pick
    z = best_z[rows]
    labels = chain_labels[rows] if chain_labels is not None else None
    with torch.no_grad():
        out = gen.generate(z, labels)
    mse = (out - targets).pow(2).flatten(1).mean(1)
    return InversionResult(z, labels, out, mse, targets, history, time.perf_counter() - t0, best_z.size(0))


def check_log_output(log, *others, force: bool = False) -> None:
    """The ``--log`` file of an inversion, checked before any work (not a folder, not an input
    or the other output; an existing log only with ``force``)."""
    if log is None:
        return
    from pixseq.io import claim_output, real_path

    claim_output(log, "--log", force=force)
    for other in others:
        if real_path(log) == real_path(other):
            raise PixseqError(f"--log {log} names the same file as {other}; choose another")


def write_history(history: list[dict], path) -> None:
    """The quality-against-steps log as JSON lines, written atomically."""
    import json

    from pixseq.io import atomic_write, strict_json

    with atomic_write(path, "w") as fh:
        for rec in history:
            fh.write(json.dumps(strict_json(rec), allow_nan=False) + "\n")
