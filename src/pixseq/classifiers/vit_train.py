"""ViT recipes: build, fit and train a Vision Transformer classifier, from scratch or fine-tuned.

* :func:`build_vit` — a fresh model (size preset + overrides), or one initialised from a
  pretrained checkpoint (``init``: a new head for other classes, positions interpolated for
  another image size);
* :func:`fit_vit` — train a built model on labelled arrays with the one Trainer, write its
  directory;
* :func:`train_vit` — all of ``pixseq train vit``: a data spec to a model directory.

Layout of the output directory ``out`` (as every family's)::

    out/config.json, out/model.safetensors   the finished classifier (written last, atomically)
    out/train/run.json                       the model/data settings (reused by resume)
    out/train/train_state.pt, history.jsonl  the Trainer's checkpoint and history (with
                                             val_data: held-out eval/accuracy at each checkpoint)
    out/train/tb/                            TensorBoard scalars
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch

from pixseq.classifiers.augment import AugmentSettings
from pixseq.classifiers.vit import ViT, ViTConfig, resample_positions, vit_config
from pixseq.errors import PixseqError
from pixseq.runtime import notice
from pixseq.train.config import TrainConfig

if TYPE_CHECKING:
    from pixseq.classifiers.convert import Converted
    from pixseq.train.runs import TrainResult

#: Settings that shape the network (``--init`` takes them from its checkpoint).
ARCH_KEYS = ("size", "dim", "depth", "heads", "mlp_ratio", "patch_size", "pool", "spt", "lsa")
#: Model/data settings recorded with a run; ``resume`` refuses to change them.
RUN_KEYS = ("data", "limit", "recipe", "image_size", *ARCH_KEYS, "dropout", "drop_path", "label_smoothing", "crop_pad",
            "flip", "randaugment", "mixup", "cutmix", "init", "val_data", "val_limit")
#: ``pixseq train vit``'s model and regularisation defaults (from scratch; see benchmarks/vit_fmnist.py).
DEFAULTS: dict[str, Any] = dict(size="micro", patch_size=4, pool="cls", spt=False, lsa=False, dropout=0.0,
                                drop_path=0.0, label_smoothing=0.1, crop_pad=2, flip=True, randaugment=0, mixup=0.0,
                                cutmix=0.0)


#: Named from-scratch recipes (``--recipe``): model, regularisation and training settings
#: that go together; options given with one override its values. Each was measured with
#: benchmarks/vit_fmnist.py (process CPU time, one thread, all 10 000 test images).
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    # Fashion-MNIST, planned for 20 CPU minutes of one thread: the small-data options of Lee et al. 2021
    # (SPT, LSA) with mean pooling, light augmentation and label smoothing on the micro
    # preset; the steps are those benchmarks/vit_fmnist.py planned for a 20-CPU-minute budget
    # here (260 CPU ms a step, batch 128), so the recipe replays that run (seed 0).
    # Measured (process CPU, 1 thread, all 10 000 test images), 1.5-CPU-minute runs planned for
    # 320 steps: this recipe 72.7 %; without SPT 66.1 %, without LSA 73.4 %, without label
    # smoothing 72.0 % (run at a load of ~50: only 284 steps in the budget), with drop path 0.1
    # 73.4 % (71.6 % in 276 steps at that load), without crop + flip 81.8 %, `pixseq train vit`'s defaults (class
    # token, no SPT / LSA) 68.1 %. At that budget (0.7 epoch) augmentation costs the most; the
    # 20-minute run itself was not finished on the shared machine (its checkpoint resumes with
    # vit_fmnist.py --resume), so neither 92 % nor the best 20-minute augmentation is shown yet.
    "fmnist": {"settings": {"size": "micro", "patch_size": 4, "pool": "mean", "spt": True, "lsa": True,
                            "label_smoothing": 0.1, "crop_pad": 2, "flip": True},
               "train": {"steps": 4467, "batch_size": 128, "lr": 2e-3, "warmup_steps": 200}},
}
#: What each recipe is, for ``--help``.
RECIPE_NOTES: dict[str, str] = {
    "fmnist": "Fashion-MNIST from scratch, planned for 20 CPU minutes of one thread: micro (dim 64, depth 6), "
              "patch 4, mean pooling, SPT + LSA, label smoothing 0.1, crop 2 + flip, 4467 steps of 128, lr 2e-3",
}


def default_train_config(recipe: str | None = None) -> TrainConfig:
    """``pixseq train vit``'s training defaults (AdamW with ViT/DeiT's betas and weight decay),
    or those of the named recipe (:data:`RECIPES`)."""
    config = TrainConfig(steps=3000, batch_size=128, lr=2e-3, weight_decay=0.05, betas=(0.9, 0.999),
                         warmup_steps=200, ckpt_every=500, log_every=10)
    return dataclasses.replace(config, **recipe_part(recipe, "train"))


def recipe_part(recipe: str | None, part: str) -> dict[str, Any]:
    """The ``"settings"`` or ``"train"`` values of a named recipe (``{}`` without one)."""
    if recipe is None:
        return {}
    if recipe not in RECIPES:
        raise PixseqError(f"unknown recipe {recipe!r} (known: {', '.join(RECIPES)})")
    return dict(RECIPES[recipe][part])


def augment_settings(settings: Mapping[str, Any]) -> AugmentSettings:
    """The run's :class:`AugmentSettings`."""
    return AugmentSettings(crop_pad=int(settings["crop_pad"]), flip=bool(settings["flip"]),
                           randaugment=int(settings["randaugment"]), mixup=float(settings["mixup"]),
                           cutmix=float(settings["cutmix"]))


# ---------------------------------------------------------------------------- build
def build_vit(num_classes: int, image_size: int, size: str = "micro", class_names: Sequence[str] = (),
              seed: int = 0, init: "Converted | None" = None, **overrides) -> ViT:
    """A ViT for ``num_classes`` classes at ``image_size``: fresh (preset ``size`` plus
    ``overrides``: any :class:`ViTConfig` field), or from ``init`` (a converted checkpoint, see
    :func:`pixseq.classifiers.convert.resolve_init`), whose architecture it keeps: its
    weights, a new head when the classes differ, positions interpolated for another size.
    ``overrides`` may then set only what has no weights (dropout, drop_path)."""
    names = tuple(class_names)
    with torch.random.fork_rng(devices=[]):  # initial weights follow `seed`; the global RNG is untouched
        torch.manual_seed(seed)
        if init is None:
            try:
                return ViT(vit_config(size, num_classes=num_classes, image_size=image_size, class_names=names,
                                      **overrides))
            except ValueError as exc:
                raise PixseqError(f"bad ViT settings: {exc}") from None
        return _from_init(init, num_classes, image_size, names, overrides)


def _from_init(init: "Converted", num_classes: int, image_size: int, names: tuple[str, ...],
               overrides: dict[str, Any]) -> ViT:
    from pixseq.checkpoint import load_state_strict

    base = init.config
    shaped = {k: v for k, v in overrides.items() if k not in ("dropout", "drop_path")}
    if shaped:
        raise PixseqError(f"--init sets the architecture; {', '.join(sorted(shaped))} cannot change it")
    if image_size % base.patch_size:
        raise PixseqError(f"--image-size {image_size} is not a multiple of the checkpoint's patch size "
                          f"{base.patch_size}")
    same_head = init.has_head and num_classes == base.num_classes and (not names or not base.class_names
                                                                       or names == base.class_names)
    cfg = dataclasses.replace(base, num_classes=num_classes, image_size=image_size,
                              class_names=names or (base.class_names if same_head else ()), **overrides)
    model = ViT(cfg)
    state = dict(init.state)
    g0, g1 = base.grid, cfg.grid
    if g0 != g1:
        notice(f"position embeddings interpolated from the checkpoint's {g0}x{g0} patch grid ({base.image_size} px) "
               f"to {g1}x{g1} ({image_size} px)")
        cls = state["pos_embed"][:, :1] if base.pool == "cls" else state["pos_embed"][:, :0]
        state["pos_embed"] = torch.cat([cls, resample_positions(state["pos_embed"][:, cls.size(1):], (g0, g0),
                                                                (g1, g1))], dim=1)
    if not same_head:
        if init.has_head:
            notice(f"a new {num_classes}-class head: the checkpoint's head has {base.num_classes} classes"
                   + (" with other names" if num_classes == base.num_classes else ""))
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
        state.update({k: v.detach().clone() for k, v in model.head.state_dict(prefix="head.").items()})
    load_state_strict(model, state, source=init.source)
    return model


def check_init_architecture(init: "Converted", given: Mapping[str, Any]) -> None:
    """A checkpoint of another depth or width than the settings given with it: one line."""
    cfg = init.config
    if given.get("size") is not None:
        preset = vit_config(given["size"])
        wanted = {k: getattr(preset, k) for k in ("dim", "depth", "heads", "mlp_ratio")}
    else:
        wanted = {}
    wanted.update({k: given[k] for k in ("dim", "depth", "heads", "mlp_ratio", "patch_size", "pool", "spt", "lsa")
                   if given.get(k) is not None})
    diffs = [f"{k} {getattr(cfg, k)} (asked: {v})" for k, v in wanted.items() if getattr(cfg, k) != v]
    if diffs:
        raise PixseqError(f"--init {init.source} is a ViT of another shape: {', '.join(diffs)}; drop those options "
                          f"(the checkpoint sets the architecture) or train from scratch without --init")


# ---------------------------------------------------------------------------- fit
def fit_vit(model: ViT, images: Sequence[np.ndarray], labels: np.ndarray, out_dir: str | Path,
            train_config: TrainConfig, device: str | torch.device = "cpu", resume: bool = False,
            label_smoothing: float = 0.0, augment: AugmentSettings | None = None,
            held_out: tuple[Sequence[np.ndarray], np.ndarray] | None = None, meta: dict[str, Any] | None = None,
            callbacks=()) -> tuple[ViT, list[dict]]:
    """Train ``model`` on uint8 ``(H, W, 3)`` images with integer ``labels`` (state in
    ``out_dir/train``), then save it to ``out_dir``. ``held_out``: ``(images, labels)``
    evaluated at every checkpoint (``eval/accuracy``, ``eval/loss``; the last ones go into the
    model's meta). Returns ``(model, history)``; the model directory is written only when
    training finished."""
    from pixseq.checkpoint import save_pretrained
    from pixseq.classifiers.task import ClassifierTask, LabelledImages, augmenter
    from pixseq.train import Trainer

    augment = augment or AugmentSettings()
    out_dir, side = Path(out_dir), model.config.image_size
    labels = np.asarray(labels)
    if len(labels) and (labels.min() < 0 or labels.max() >= model.num_classes):
        raise PixseqError(f"labels must be class ids 0..{model.num_classes - 1}, got {labels.min()}..{labels.max()}")
    dataset = LabelledImages(images, labels, side, augmenter(augment))
    eval_data = LabelledImages(held_out[0], held_out[1], side) if held_out is not None else None
    task = ClassifierTask(model, label_smoothing, augment)
    trainer = Trainer(task, dataset, train_config, out_dir / "train", device, callbacks=callbacks,
                      eval_data=eval_data)
    start, cpu = time.perf_counter(), time.process_time()
    history = trainer.fit(resume=resume)
    if trainer.dist.is_main:
        last = history[-1] if history else {}
        info = {"steps": train_config.steps, "images": len(dataset),
                "train_seconds_last_session": round(time.perf_counter() - start, 1),
                "train_cpu_seconds_last_session": round(time.process_time() - cpu, 1), "final_loss": last.get("loss")}
        if "eval/accuracy" in last:
            info.update(held_out_accuracy=last["eval/accuracy"], held_out_images=len(eval_data))
        save_pretrained(model, out_dir, meta={**(meta or {}), **info})
    return model, history


# ---------------------------------------------------------------------------- train
def train_vit(data: str, out: str | Path, *, recipe: str | None = None, size: str | None = None, image_size: int | None = None,
              patch_size: int | None = None, dim: int | None = None, depth: int | None = None,
              heads: int | None = None, mlp_ratio: int | None = None, pool: str | None = None,
              spt: bool | None = None, lsa: bool | None = None, dropout: float | None = None,
              drop_path: float | None = None, label_smoothing: float | None = None, crop_pad: int | None = None,
              flip: bool | None = None, randaugment: int | None = None, mixup: float | None = None,
              cutmix: float | None = None, init: str | None = None, limit: int | None = None,
              val_data: str | None = None, val_limit: int | None = None,
              train: Mapping[str, Any] | TrainConfig | None = None, device: str | torch.device = "cpu",
              resume: bool = False, force: bool = False, seed: int | None = None, weights_dir=None,
              offline: bool | None = None, callbacks=()) -> "TrainResult":
    """``pixseq train vit`` as one call: train a ViT classifier on the labelled data spec
    ``data`` (class sub-folders, or ``fashion-mnist``), from scratch or fine-tuned from
    ``init``, and write the model directory ``out``.

    Settings left ``None`` take the ``recipe``'s values (a name in :data:`RECIPES`, its
    training settings too), else :data:`DEFAULTS` (from scratch; with ``init`` the checkpoint's
    architecture), the data's side as ``image_size`` (``init``: the checkpoint's), or on
    ``resume`` the run's recorded ones. ``train``: :class:`TrainConfig` fields over
    :func:`default_train_config`. Returns a :class:`~pixseq.train.runs.TrainResult`::

        result = train_vit("fashion-mnist", "runs/vit", val_data="fashion-mnist:test", train={"steps": 300})
        result.last["eval/accuracy"]
    """
    from pixseq.data import load_data
    from pixseq.device import resolve_device
    from pixseq.train.batches import cap_batch
    from pixseq.train.distributed import launched_world_size
    from pixseq.train.runs import (RunRecorder, TrainResult, check_limit, check_out_dir, load_val_data, run_settings,
                                   train_config)

    out = Path(out)
    check_out_dir(out, out / "train", resume, force, inputs=[data, val_data, init])
    given = {k: v for k, v in locals().items() if k in RUN_KEYS}
    settings = run_settings(given, RUN_KEYS, out / "train", resume)
    if settings["recipe"] is not None and settings["init"] is not None:
        raise PixseqError(f"--recipe {settings['recipe']} trains from scratch; --init sets the architecture "
                          f"(drop one of them)")
    config = train_config(train, default_train_config(settings["recipe"]), out / "train", resume, seed)
    check_limit(settings["limit"])
    check_limit(settings["image_size"], "--image-size")
    converted = _resolve_init(settings, weights_dir, offline)
    images_set = load_data(settings["data"], limit=settings["limit"])
    labels = images_set.require_labels("training a classifier")
    val = load_val_data({**settings, "classes": True}, images_set)
    config = cap_batch(config, len(images_set.images), launched_world_size())  # before anything is written
    settings = _resolved(settings, converted, images_set.images)
    model = build_vit(images_set.num_classes, settings["image_size"], settings["size"], images_set.class_names,
                      config.seed, converted, **_overrides(settings, converted))
    meta = {"data": settings["data"], **({"init": converted.source} if converted else {})}
    recorder = RunRecorder(out / "train", settings, resume)
    model, history = fit_vit(model, images_set.images, labels, out, config, resolve_device(device), resume,
                             settings["label_smoothing"], augment_settings(settings), val, meta,
                             [recorder, *callbacks])
    return TrainResult(model, history, settings, config, held_out=0 if val is None else len(val[0]))


def _resolve_init(settings: dict[str, Any], weights_dir, offline) -> "Converted | None":
    """The ``init`` checkpoint, converted, checked against the architecture settings given with it."""
    if settings["init"] is None:
        return None
    from pixseq.classifiers.convert import resolve_init

    converted = resolve_init(settings["init"], weights_dir, offline, heads=settings["heads"])
    check_init_architecture(converted, settings)
    return converted


def _resolved(settings: dict[str, Any], init: "Converted | None", images: Sequence[np.ndarray]) -> dict[str, Any]:
    """The run's settings with defaults filled in (the architecture's from ``init`` when given)."""
    defaults = {**DEFAULTS, **recipe_part(settings.get("recipe"), "settings")}
    out = {k: (defaults.get(k) if v is None else v) for k, v in settings.items()}
    if init is not None:
        cfg = init.config
        out.update(size=None, dim=cfg.dim, depth=cfg.depth, heads=cfg.heads, mlp_ratio=cfg.mlp_ratio,
                   patch_size=cfg.patch_size, pool=cfg.pool, spt=cfg.spt, lsa=cfg.lsa)
    side = settings["image_size"]
    if side is None:
        side = init.config.image_size if init is not None else _data_side(images, out["patch_size"])
    elif side % out["patch_size"]:
        raise PixseqError(f"--image-size {side} is not a multiple of the patch size {out['patch_size']}")
    out["image_size"] = side
    return out


def _data_side(images: Sequence[np.ndarray], patch: int) -> int:
    """The images' own side when they are square and of one size (else 32), rounded to whole patches."""
    sides = {im.shape[0] for im in images} | {im.shape[1] for im in images}
    side = sides.pop() if len(sides) == 1 else 32
    rounded = max(patch, round(side / patch) * patch)
    if rounded != side or len(sides):
        notice(f"images resized to {rounded}x{rounded} ({rounded // patch}x{rounded // patch} patches of {patch}); "
               f"--image-size chooses another size")
    return rounded


def _overrides(settings: dict[str, Any], init: "Converted | None") -> dict[str, Any]:
    """The :class:`ViTConfig` fields the settings set (with ``init``: only those without weights)."""
    keys = ("dropout", "drop_path") if init is not None else (
        "dim", "depth", "heads", "mlp_ratio", "patch_size", "pool", "spt", "lsa", "dropout", "drop_path")
    return {k: settings[k] for k in keys if settings.get(k) is not None}
