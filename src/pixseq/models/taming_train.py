"""Training Taming Transformers with the one Trainer: the VQGAN stage and the prior stage.

* :class:`VQGANTask` — two parts: ``"gen"`` (encoder, codebook, decoder) and ``"disc"``
  (PatchGAN); the discriminator reuses the generator's reconstruction of the same batch.
* :class:`PriorTask` — one part over the GPT; the tokenizer is frozen and the codes are
  pre-computed by :class:`~pixseq.models.taming.TamingTokenDataset`.

:func:`fit_vqgan` and :func:`fit_prior` train on arrays (the demo and the benchmarks call
them); :func:`train_vqgan` and :func:`train_prior` are all of ``pixseq train vqgan`` /
``pixseq train prior`` (data spec to model directory, exact resume), as
:mod:`pixseq.train.runs` describes for every family.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from pixseq.checkpoint import from_pretrained, model_id, save_pretrained
from pixseq.device import resolve_device
from pixseq.errors import PixseqError
from pixseq.io import atomic_write, to_tensor
from pixseq.models.base import class_names_meta
from pixseq.models.taming import Taming, TamingConfig, TamingTokenDataset, batch_cond
from pixseq.priors.gpt import flops_per_batch
from pixseq.runtime import notice
from pixseq.tokenizers.losses import VQGANLoss, VQGANLossConfig
from pixseq.tokenizers.quantize import CodebookStats
from pixseq.tokenizers.vqgan import VQGAN, VQGANConfig
from pixseq.train.config import TrainConfig
from pixseq.train.distributed import is_main_process, local_device
from pixseq.train.runs import TrainResult
from pixseq.train.trainer import Trainer


class ImageDataset(torch.utils.data.Dataset):
    """uint8 images as ``{"image": (3, s, s) float in [0, 1], "label": ()}`` items.

    Images of exactly ``size x size`` are used as they are. Otherwise (e.g. the photos)
    item ``i`` is a ``size x size`` crop of image ``i % N`` at a position drawn from a
    generator seeded with ``i`` — random crops, yet the same item on every run (resume).
    ``length`` sets how many crops make an epoch.
    """

    def __init__(self, images: Sequence[np.ndarray], size: int, labels=None, length: int | None = None) -> None:
        self.images = [np.ascontiguousarray(im) for im in images]
        if not self.images:
            raise PixseqError("no training images")
        small = [im.shape[:2] for im in self.images if min(im.shape[:2]) < size]
        if small:
            raise PixseqError(f"--image-size {size} is larger than some training images (e.g. {small[0][1]}x{small[0][0]})")
        self.size, self.labels = size, labels
        self.fixed = all(im.shape[:2] == (size, size) for im in self.images)
        self.length = length or len(self.images)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        k = i % len(self.images)
        im = self.images[k]
        if not self.fixed:
            g = np.random.default_rng(i)
            y = int(g.integers(0, im.shape[0] - self.size + 1))
            x = int(g.integers(0, im.shape[1] - self.size + 1))
            im = im[y:y + self.size, x:x + self.size]
        label = -1 if self.labels is None else int(self.labels[k])
        return {"image": to_tensor(im),
                "label": torch.tensor(label)}


def centre_crops(images: Sequence[np.ndarray], size: int, what: str = "held-out images") -> list[np.ndarray]:
    """The central ``size x size`` crop of each image, at its own scale (held-out data)."""
    small = [im.shape[:2] for im in images if min(im.shape[:2]) < size]
    if small:
        raise PixseqError(f"{what} must be at least {size}x{size}, got e.g. {small[0][1]}x{small[0][0]}")
    out = []
    for im in images:
        y, x = (im.shape[0] - size) // 2, (im.shape[1] - size) // 2
        out.append(np.ascontiguousarray(im[y:y + size, x:x + size]))
    return out


class ReconstructionEval:
    """The held-out scores of a VQGAN alone (no losses or discriminator needed): what
    :class:`VQGANTask` reports during training and ``pixseq evaluate`` reports after."""

    def __init__(self, model: VQGAN) -> None:
        self.model = model

    @torch.no_grad()
    def eval_step(self, batch: dict) -> dict[str, float]:
        """Reconstruction of the float output in [0, 1]: L1, MSE and the mean over images of
        each image's PSNR in dB (peak 1)."""
        x = batch["image"]
        x_hat = self.model.reconstruct(x).float()
        mse = (x_hat - x).pow(2).flatten(1).mean(1)
        psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))  # capped at 100 dB for an exact copy
        return {"l1": float((x_hat - x).abs().mean()), "mse": float(mse.mean()), "psnr_db": float(psnr.mean())}


class VQGANTask:
    """The Trainer's view of a VQGAN: ``gen`` and ``disc`` parts."""

    def __init__(self, model: VQGAN, loss: VQGANLoss) -> None:
        self.model, self.loss = model, loss
        self.stats = CodebookStats(model.quantizer)
        self._fake: dict[int, torch.Tensor] = {}

    def parts(self) -> list[str]:
        return ["gen", "disc"]

    def modules(self) -> dict[str, nn.Module]:
        # the frozen perceptual net stays out: it is not trained and need not be checkpointed;
        # the codebook statistics go in (not in the model files): resumed runs restart the same dead codes
        return {"vqgan": self.model, "disc": self.loss.disc, "codebook_stats": self.stats}

    def parameters(self, part: str) -> Iterable[nn.Parameter]:
        return self.model.parameters() if part == "gen" else self.loss.disc.parameters()

    def compile_targets(self) -> list[nn.Module]:
        # the convolution stacks; the quantizer's data-dependent code (EMA, dead-code restarts)
        # stays eager, where compiling it whole recompiled at every step
        return [self.model.encoder, self.model.decoder, self.loss.disc]

    def optim_overrides(self, part: str) -> dict:
        return {"betas": (0.5, 0.9), "weight_decay": 0.0}  # as in taming-transformers

    def training_step(self, batch: dict, step: int, part: str) -> tuple[torch.Tensor, dict[str, float]]:
        x = batch["image"] * 2 - 1
        if part == "gen":
            self.loss.perceptual.to(x.device)
            x_hat, vq_loss, info = self.model(batch["image"])
            loss, logs = self.loss.generator_loss(x, x_hat.float(), vq_loss, step, self.model.last_layer())
            # every micro-batch's, for the step: with grad_accum > 1 the disc part only found
            # the last one and ran the others through the model again, in training mode, so
            # the codebook statistics (and EMA codebook) counted those micro-batches twice
            self._fake[id(batch["image"])] = x_hat.detach()
            logs.update(usage=self.model.quantizer.usage_tensor(), perplexity=info["perplexity"].detach())
            return loss, logs
        fake = self._fake.get(id(batch["image"]))
        if fake is None:
            with torch.no_grad():
                fake = self.model(batch["image"])[0]
        return self.loss.discriminator_loss(x, fake.float(), step)

    def eval_step(self, batch: dict) -> dict[str, float]:
        return ReconstructionEval(self.model).eval_step(batch)

    def on_step_end(self, step: int) -> None:
        self._fake = {}  # the step's micro-batches are gone: their ids may be reused
        self.model.quantizer.sync()  # identical codebooks on every rank, against float drift

    @torch.no_grad()
    def sample_images(self, batch: dict, num: int = 8) -> torch.Tensor:
        """Originals above their reconstructions."""
        x = batch["image"][:num]
        return torch.cat([x, self.model.reconstruct(x)])


class PriorTask:
    """The Trainer's view of the latent GPT: one part, NLL of the target codes only."""

    def __init__(self, model: Taming) -> None:
        self.model = model

    def parts(self) -> list[str]:
        return ["model"]

    def modules(self) -> dict[str, nn.Module]:
        return {"prior": self.model.prior}

    def parameters(self, part: str) -> Iterable[nn.Parameter]:
        return self.model.prior.parameters()

    def training_step(self, batch: dict, step: int, part: str) -> tuple[torch.Tensor, dict[str, float]]:
        loss = self.model.prior.loss(batch["tokens"], batch_cond(self.model, batch))
        return loss, {"bits_per_code": loss.detach() / float(np.log(2.0))}  # read back once per step

    def eval_step(self, batch: dict) -> dict[str, float]:
        """Held-out NLL of the target codes: nats and bits per code."""
        loss = float(self.model.prior.loss(batch["tokens"], batch_cond(self.model, batch)))
        return {"loss": loss, "bits_per_code": loss / float(np.log(2.0))}

    def count_tokens(self, batch: dict) -> int:
        return batch["tokens"].numel()

    def count_flops(self, batch: dict) -> float:
        """6N + 6LTC per position the blocks run on, conditioning included
        (:meth:`~pixseq.priors.gpt.GPT.flops_per_token`)."""
        return flops_per_batch(self.model.prior, batch["tokens"])


def fit_vqgan(images: Sequence[np.ndarray], out_dir: str | os.PathLike, config: VQGANConfig,
              loss_config: VQGANLossConfig, train_config: TrainConfig, image_size: int,
              device: str | torch.device = "cpu", resume: bool = False, labels=None,
              crops_per_epoch: int | None = None, meta: dict | None = None,
              announce: Callable[[str], None] | None = notice, callbacks=(),
              held_out: Sequence[np.ndarray] | None = None,
              on_perceptual: Callable[[str], None] | None = None) -> tuple[VQGAN, list[dict]]:
    """Train a VQGAN on ``images`` and write it as a model directory ``out_dir``.

    ``held_out``: images whose centre ``image_size`` crops are reconstructed at every
    checkpoint (``eval/psnr_db``, ``eval/l1``, ``eval/mse``; the last ones go in the meta).

    ``announce`` receives one line naming the perceptual loss actually used (it may fall
    back from LPIPS when its weights are missing): a stderr notice for ``pixseq train
    vqgan``; callers with their own log (the demo) pass ``None`` or their logger, so the
    line does not leak onto their output. ``on_perceptual`` receives its kind (``"lpips"``,
    ``"effnet"``, ``"none"``) before training starts: what ``"auto"`` resolved to, for a run
    record, so that a resume keeps the same loss even if LPIPS weights appear meanwhile.
    """
    torch.manual_seed(train_config.seed)
    model = VQGAN(config)
    loss = VQGANLoss(loss_config)
    if announce is not None:
        announce(f"perceptual loss: {loss.perceptual.description}")
    if on_perceptual is not None:
        on_perceptual(loss.perceptual.kind)
    data = ImageDataset(images, image_size, labels, crops_per_epoch)
    eval_data = ImageDataset(centre_crops(held_out, image_size), image_size) if held_out is not None else None
    history = Trainer(VQGANTask(model, loss), data, train_config, out_dir, device,
                      callbacks=callbacks, eval_data=eval_data).fit(resume=resume)
    model.eval()
    info = {"image_size": image_size, "perceptual": loss.perceptual.description,
            "codebook_usage": model.quantizer.usage(), **(meta or {})}
    last = history[-1] if history else {}
    if "eval/psnr_db" in last:
        info.update(held_out_psnr_db=last["eval/psnr_db"], held_out_l1=last["eval/l1"],
                    held_out_images=len(eval_data))
    if is_main_process():  # rank 0 alone writes the model directory
        # save_pretrained copies to the CPU itself; model.cpu() moved the returned model off the GPU (rank 0 only)
        save_pretrained(model, out_dir, meta=info)
    return model, history


def load_tokenizer(directory: str | os.PathLike) -> VQGAN:
    """A VQGAN model directory, or a one-line error naming the directory."""
    path = Path(directory)
    if not (path / "config.json").is_file():
        raise PixseqError(f"tokenizer not found: {path} is not a VQGAN model directory (train one with "
                          f"`pixseq train vqgan` or convert one with `pixseq convert taming`)")
    return from_pretrained(path, "vqgan")


TOKENIZER_RECORD = "tokenizer.json"


def check_same_tokenizer(out_dir: Path, tokenizer_dir: Path, cond_tokenizer_dir: Path | None,
                         tid: str, cid: str | None) -> None:
    """Refuse to resume a prior run with another tokenizer (id ``tid``) or conditioning
    tokenizer (id ``cid``; ``None``: the tokenizer itself) than the ones its record names.
    Reads only: it runs before the data are encoded (minutes), the record is written after."""
    record = out_dir / TOKENIZER_RECORD
    if not record.is_file():  # runs of older versions have none
        return
    old = json.loads(record.read_text())
    if old.get("id") != tid:
        raise PixseqError(f"tokenizer {tokenizer_dir} is different from the one this prior was trained with "
                          f"({old.get('path')}, id {str(old.get('id'))[:12]}); use that tokenizer or a new --out")
    if "cond_id" in old and old["cond_id"] != cid:  # records of older runs lack it
        given, was = cond_tokenizer_dir or "none (the --tokenizer)", old.get("cond_path") or "none (the --tokenizer)"
        raise PixseqError(f"--cond-tokenizer {given} is different from the one this prior was trained with "
                          f"({was}); use that one or a new --out")


def recorded_tokenizers(out_dir: Path, tokenizer, cond_tokenizer, resume: bool) -> tuple[Path, Path | None]:
    """The tokenizer folders of a prior run: as given or, on ``resume``, the run's recorded
    ones where not given (a different one given is refused by :func:`check_same_tokenizer`)."""
    record = out_dir / TOKENIZER_RECORD
    saved = json.loads(record.read_text()) if resume and record.is_file() else {}
    tokenizer = tokenizer if tokenizer is not None else saved.get("path")
    cond_tokenizer = cond_tokenizer if cond_tokenizer is not None else saved.get("cond_path")
    if tokenizer is None:
        raise PixseqError(f"the run in {out_dir} does not record its tokenizer; give --tokenizer" if resume
                          else "--tokenizer is required (a VQGAN model directory)")
    return Path(tokenizer), (Path(cond_tokenizer) if cond_tokenizer is not None else None)


def record_tokenizer(out_dir: Path, tokenizer_dir: Path, cond_tokenizer_dir: Path | None,
                     tid: str, cid: str | None) -> None:
    """Write which tokenizers a prior run uses (atomically), for :func:`check_same_tokenizer`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_dir / TOKENIZER_RECORD, "w") as fh:
        json.dump({"path": str(tokenizer_dir), "id": tid, "cond_id": cid,
                   "cond_path": None if cond_tokenizer_dir is None else str(cond_tokenizer_dir)}, fh)


def fit_prior(tokenizer_dir: str | os.PathLike, images: Sequence[np.ndarray], labels, out_dir: str | os.PathLike,
              config: TamingConfig, train_config: TrainConfig, device: str | torch.device = "cpu",
              resume: bool = False, cond_tokenizer_dir: str | os.PathLike | None = None,
              callbacks=(), meta: dict | None = None,
              held_out: tuple[Sequence[np.ndarray], np.ndarray | None] | None = None) -> tuple[Taming, list[dict]]:
    """Train the latent GPT over a trained tokenizer's codes; writes a ``taming`` model dir.

    ``meta`` is stored with the model (e.g. ``class_names``, which ``--class`` and ``labels`` accept).
    ``held_out``: ``(images, labels)`` whose loss is measured at every checkpoint
    (``eval/bits_per_code``; the last one is stored in the model's meta).
    """
    out_dir, tokenizer_dir = Path(out_dir), Path(tokenizer_dir)
    meta = class_names_meta(meta, config.num_classes, "taming")  # before the data are encoded
    tokenizer = load_tokenizer(tokenizer_dir)
    # hashed once (the weights files may be large): checked, recorded and kept in the meta
    tid = model_id(tokenizer_dir)
    cid = model_id(cond_tokenizer_dir) if cond_tokenizer_dir is not None else None
    if resume:  # a fresh run may use any tokenizer; a resumed one must keep its own
        check_same_tokenizer(out_dir, tokenizer_dir, cond_tokenizer_dir, tid, cid)
    torch.manual_seed(train_config.seed)
    model = Taming(config)
    model.tokenizer.load_state_dict(tokenizer.state_dict())
    if model.cond_tokenizer is not None:
        model.cond_tokenizer.load_state_dict(load_tokenizer(cond_tokenizer_dir).state_dict())
    # this rank's GPU before encoding the data: under torchrun a bare 'cuda' is GPU 0 in every
    # process until the Trainer joins the group, so every rank encoded everything on GPU 0
    device = local_device(resolve_device(device))
    model.to(device)
    data = TamingTokenDataset(model, images, labels)
    eval_data = TamingTokenDataset(model, *held_out) if held_out is not None else None
    # Recorded only once the data are encoded: a failed or interrupted encoding leaves no
    # output folder behind. Only rank 0 writes (no races under torchrun).
    if is_main_process():
        record_tokenizer(out_dir, tokenizer_dir, cond_tokenizer_dir, tid, cid)
    history = Trainer(PriorTask(model), data, train_config, out_dir, device, callbacks=callbacks,
                      eval_data=eval_data).fit(resume=resume)
    model.eval()
    last = history[-1] if history else {}
    meta = {**(meta or {}), "tokenizer": str(tokenizer_dir), "tokenizer_id": tid,
            "final_bits_per_code": last.get("model/bits_per_code")}
    if "eval/bits_per_code" in last:
        meta.update(held_out_bits_per_code=last["eval/bits_per_code"], held_out_images=len(eval_data))
    if is_main_process():
        save_pretrained(model, out_dir, meta=meta)  # not model.cpu(): see fit_vqgan
    return model, history


# ------------------------------------------------------------------ whole runs (the train verbs)
def default_vqgan_train_config() -> TrainConfig:
    """``pixseq train vqgan``'s training defaults."""
    return TrainConfig(steps=2000, batch_size=16, lr=2e-4, warmup_steps=100, ckpt_every=500)


def default_prior_train_config() -> TrainConfig:
    """``pixseq train prior``'s training defaults."""
    return TrainConfig(steps=2000, batch_size=32, lr=5e-4, warmup_steps=100, ckpt_every=500)


#: A VQGAN run's model/data settings (recorded with the run; ``resume`` refuses to change
#: them) and their defaults; image_size and disc_start depend on the data and the steps.
VQGAN_RUN_DEFAULTS = {"data": None, "limit": None, "factor": 8, "codes": 1024, "dim": 64, "ch": 64,
                      "image_size": None, "disc_start": None, "perceptual": "auto", "dead_restart": True,
                      "ema": False, "l2_norm": False, "val_data": None, "val_limit": None}

#: The PatchGAN discriminator (3 stride-2 and 2 stride-1 4x4 convolutions) needs 24 px.
MIN_IMAGE_SIZE = 24


def train_vqgan(data: str, out: str | os.PathLike, *, train: dict | TrainConfig | None = None,
                device: str | torch.device = "cpu", resume: bool = False, force: bool = False,
                seed: int | None = None, callbacks=(), **settings) -> TrainResult:
    """``pixseq train vqgan`` as one call: a VQGAN trained on ``data`` (a data spec), written
    to the model directory ``out`` (which also holds the training state).

    ``settings``: the keys of :data:`VQGAN_RUN_DEFAULTS` (``factor``, ``codes``, ``dim``,
    ``ch``, ``image_size``, ``disc_start``, ``perceptual``, ``dead_restart``, ``ema``,
    ``l2_norm``, ``limit``, ``val_data``, ``val_limit``); ``None`` = the default or, with
    ``resume``, the run's recorded value. Returns a :class:`~pixseq.train.runs.TrainResult`.
    """
    from pixseq.data import load_data
    from pixseq.runtime import plural
    from pixseq.tokenizers.vqgan import vqgan_config
    from pixseq.train.batches import cap_batch
    from pixseq.train.distributed import launched_world_size
    from pixseq.train.runs import (RunRecorder, TrainResult, check_limit, check_out_dir, load_val_data, run_settings,
                                   train_config)

    out = Path(out)
    check_out_dir(out, out, resume, force, inputs=[data, settings.get("val_data")])
    s = run_settings({"data": data, **settings}, VQGAN_RUN_DEFAULTS, out, resume)
    if s["codes"] < 2 or s["dim"] < 1 or s["ch"] < 1:
        raise PixseqError("--codes must be >= 2, --dim and --ch >= 1")
    check_limit(s["limit"])  # 0 crashed on no images; -1 silently dropped the last one
    tc = train_config(train, default_vqgan_train_config(), out, resume, seed)
    images = load_data(s["data"], limit=s["limit"])
    size, fixed = _vqgan_image_size(images.images, s["image_size"])
    if fixed:  # random crops make 4096 items per epoch; whole images cap the batch (before anything is written)
        tc = cap_batch(tc, len(images.images), launched_world_size())
    # (after the checks of the training images: reading the held-out set takes a while)
    val = load_val_data({**s, "classes": False}, images)
    if val is not None:
        centre_crops(val[0], size)  # too small: refused before anything is written
    cfg = vqgan_config(s["factor"], s["codes"], s["dim"], s["ch"], dead_restart=s["dead_restart"],
                       ema=s["ema"], l2_norm=s["l2_norm"])
    # resolved once and recorded: a resume that extends the steps must not move the GAN's start
    s.update(image_size=size, disc_start=s["disc_start"] if s["disc_start"] is not None else tc.steps // 2)
    loss_cfg = VQGANLossConfig(perceptual=s["perceptual"], disc_start=s["disc_start"])
    if s["disc_start"] >= tc.steps:  # after every check: a mistake stays the only line
        notice(f"the discriminator starts at step {s['disc_start']} but the run has {plural(tc.steps, 'step')}: "
               f"no adversarial loss in this run (lower --disc-start)")
    recorder = RunRecorder(out, s, resume)
    model, history = fit_vqgan(images.images, out, cfg, loss_cfg, tc, size, resolve_device(device),
                               resume=resume, labels=images.labels, crops_per_epoch=None if fixed else 4096,
                               meta={"data": s["data"]}, callbacks=[recorder, *callbacks],
                               held_out=val[0] if val is not None else None,
                               # record what "auto" resolved to: a resume must not switch losses
                               on_perceptual=lambda kind: recorder.settings.update(perceptual=kind))
    return TrainResult(model, history, s, tc, held_out=0 if val is None else len(val[0]))


def _vqgan_image_size(images: Sequence[np.ndarray], asked: int | None) -> tuple[int, bool]:
    """The training side and whether the images are used whole (else random crops); checked
    before anything is written."""
    shapes = {im.shape[:2] for im in images}
    (h, w) = next(iter(shapes))
    size = asked if asked is not None else (h if len(shapes) == 1 and h == w else 64)
    if size < MIN_IMAGE_SIZE:
        raise PixseqError(f"--image-size must be at least {MIN_IMAGE_SIZE} (the smallest input of the "
                          f"PatchGAN discriminator's 4x4 convolutions), got {size}")
    fixed = shapes == {(size, size)}  # else: random crops of size x size
    smallest = min(shapes, key=min)
    if asked is None and not fixed and min(smallest) < size:  # the default, not the user, was too big
        raise PixseqError(f"the images have mixed sizes, so training cuts random {size}x{size} crops (the default "
                          f"--image-size), but some are smaller (e.g. {smallest[1]}x{smallest[0]}); give "
                          f"--image-size {max(min(smallest), MIN_IMAGE_SIZE)} or less")
    return size, fixed


#: A prior run's model/data settings and their defaults (image_size: the tokenizer's
#: training size). The tokenizer has its own record (:data:`TOKENIZER_RECORD`).
PRIOR_RUN_DEFAULTS = {"data": None, "limit": None, "classes": False, "condition": None, "size": "s",
                      "image_size": None, "val_data": None, "val_limit": None}


def train_prior(tokenizer: str | os.PathLike | None, data: str | None, out: str | os.PathLike, *,
                cond_tokenizer: str | os.PathLike | None = None, train: dict | TrainConfig | None = None,
                device: str | torch.device = "cpu", resume: bool = False, force: bool = False,
                seed: int | None = None, callbacks=(), **settings) -> TrainResult:
    """``pixseq train prior`` as one call: the latent GPT over the codes of the VQGAN model
    directory ``tokenizer`` for ``data`` (a data spec), written as a ``taming`` model to ``out``.
    On ``resume`` both may be ``None``: the run's recorded ones.

    ``settings``: the keys of :data:`PRIOR_RUN_DEFAULTS` (``classes``, ``condition``
    (``"lowres"`` / ``"edges"``), ``size``, ``image_size``, ``limit``, ``val_data``,
    ``val_limit``). Returns a :class:`~pixseq.train.runs.TrainResult`."""
    from pixseq.data import load_data
    from pixseq.models.taming import taming_config
    from pixseq.train.batches import cap_batch
    from pixseq.train.distributed import launched_world_size
    from pixseq.train.runs import (RunRecorder, TrainResult, check_limit, check_out_dir, load_val_data, run_settings,
                                   train_config)

    out = Path(out)
    check_out_dir(out, out, resume, force, inputs=[tokenizer, cond_tokenizer, data, settings.get("val_data")])
    tokenizer, cond_tokenizer = recorded_tokenizers(out, tokenizer, cond_tokenizer, resume)
    s = run_settings({"data": data, **settings}, PRIOR_RUN_DEFAULTS, out, resume)
    check_limit(s["limit"])  # 0 crashed or fell back to a default; negatives crashed or sliced
    check_limit(s["image_size"], "--image-size")
    tc = train_config(train, default_prior_train_config(), out, resume, seed)  # option errors before loading
    tok = load_tokenizer(tokenizer)
    cond_tok = load_tokenizer(cond_tokenizer) if cond_tokenizer else None
    if cond_tok is not None and not s["condition"]:
        raise PixseqError("--cond-tokenizer needs --condition lowres|edges")
    images = load_data(s["data"], limit=s["limit"])
    if s["classes"]:
        images.require_labels("--classes")
    # before anything is written (fit_prior records the tokenizer first)
    tc = cap_batch(tc, len(images.images), launched_world_size())
    val = load_val_data(s, images)
    size = s["image_size"] or getattr(tok, "pretrained_meta", {}).get("image_size")
    if not size:
        raise PixseqError(f"give --image-size: tokenizer {tokenizer} does not record its training size")
    cfg = taming_config(tok.config, (size, size), images.num_classes if s["classes"] else 0,
                        s["condition"] or "", s["size"], cond_tok.config if cond_tok is not None else None)
    model, history = fit_prior(tokenizer, images.images, images.labels, out, cfg, tc, device,
                               resume=resume, cond_tokenizer_dir=cond_tokenizer,
                               callbacks=[RunRecorder(out, {**s, "image_size": size}, resume), *callbacks],
                               meta={"class_names": list(images.class_names) if s["classes"] else [],
                                     "data": s["data"]}, held_out=val)
    return TrainResult(model, history, {**s, "image_size": size}, tc, held_out=0 if val is None else len(val[0]))
