"""Converters for pytorch-CycleGAN-and-pix2pix checkpoints and the vintagify generator.

The official repository (Zhu, Park, Isola, Efros; github.com/junyanz/pytorch-CycleGAN-and-pix2pix)
saves each network's ``state_dict`` as ``<epoch>_net_<name>.pth`` (``latest_net_G_A.pth``,
``latest_net_G_B.pth`` for a CycleGAN, ``latest_net_G.pth`` for pix2pix). Their key layouts
(read from its ``models/networks.py``):

* ``ResnetGenerator``: one ``nn.Sequential`` ``model``: ``1`` the 7x7 conv (``0`` is its
  padding), ``2`` its norm, ``4`` / ``7`` the stride-2 convs and ``5`` / ``8`` their norms,
  ``10 .. 9+n`` the residual blocks (``model.<i>.conv_block.<j>``: convs at ``j`` = 1 and 5
  with reflect padding, 0 and 4 with zero padding, one later when dropout sits between),
  then ``10+n`` / ``13+n`` the transposed convs with norms at ``11+n`` / ``14+n`` and ``17+n``
  the last 7x7 conv.
* ``UnetGenerator``: nested ``UnetSkipConnectionBlock``s, ``model.model.`` the outermost
  (``0`` its down conv, ``1`` the next block, ``3`` its up conv); a middle block's
  ``model.<k>``: ``1`` down conv, ``2`` its norm, ``3`` the next block, ``5`` up conv, ``6``
  its norm (``7``: dropout, no weights); the innermost: ``1`` down conv, ``3`` up conv,
  ``4`` its norm.

Norms: batch norm (``weight``, ``bias``, ``running_mean``, ``running_var``,
``num_batches_tracked``; the convs before it have no bias) or affine-free instance norm (no
keys; convs with biases). Checkpoints written before PyTorch 0.4 carry instance-norm
``running_mean`` / ``running_var`` that the official loader drops, and so does this one.
What keys cannot tell (reflect or replicate padding; a U-Net's dropout) are arguments, with
the official defaults.

vintagify's ``resources/G_A2B_epoch33.pth`` (PyPI ``vintagify``, MIT; modern -> vintage
photos) is the ResNet-9 layout with affine instance norms and ``block`` for ``conv_block``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from pixseq.errors import PixseqError
from pixseq.gans.generators import GeneratorConfig
from pixseq.gans.translator import CycleGAN, Pix2Pix, Translator, TranslatorConfig

_BLOCK = re.compile(r"^model\.(\d+)\.(?:conv_block|block)\.(\d+)\.(.+)$")
_TOP = re.compile(r"^model\.(\d+)\.(.+)$")
_NORM_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _clean(state: dict, source: str) -> dict[str, torch.Tensor]:
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PixseqError(f"{source} is not a generator state dict (a mapping of names to tensors)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def detect_arch(state: dict[str, torch.Tensor], source: str = "the checkpoint") -> str:
    """``"unet"`` or ``"resnet"`` from the key layout, or a one-line error naming what it is not."""
    if any(k.startswith("model.model.") for k in state):
        return "unet"
    if any(_BLOCK.match(k) for k in state) and "model.1.weight" in state:
        return "resnet"
    sample = ", ".join(sorted(state)[:3])
    raise PixseqError(f"{source} is not a pytorch-CycleGAN-and-pix2pix ResNet or U-Net generator (keys like "
                      f"{sample}); a discriminator or another architecture cannot be converted")


def _norm_of(state: dict, prefix: str) -> str:
    if f"{prefix}.running_mean" in state and f"{prefix}.weight" in state:
        return "batch"
    return "instance-affine" if f"{prefix}.weight" in state else "instance"


def _drop_old_instance_stats(state: dict, norm: str) -> dict:
    """Pre-0.4 instance norms saved running statistics the layer never used (see the module doc)."""
    if norm == "batch":
        return state
    return {k: v for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def resnet_config(state: dict[str, torch.Tensor], padding: str = "reflect") -> tuple[GeneratorConfig, dict]:
    """The config of an official ResNet generator's ``state`` and the key map to pixseq's layout."""
    first = state["model.1.weight"]
    norm = _norm_of(state, "model.2")
    if norm == "instance" and "model.1.bias" not in state:
        norm = "none"  # the official 'none' norm also drops the conv biases
    blocks = sorted({int(m.group(1)) for k in state if (m := _BLOCK.match(k))})
    n = len(blocks)
    if blocks != list(range(10, 10 + n)):
        raise PixseqError(f"residual blocks at model.{blocks[0]}..{blocks[-1]}: not the official layout")
    convs = sorted({int(m.group(2)) for k in state if (m := _BLOCK.match(k)) and m.group(3) in ("weight",)
                    and state[k].dim() == 4})
    zero = convs[0] == 0
    dropout = convs[1] - convs[0] == 5
    last = state[f"model.{17 + n}.weight"] if f"model.{17 + n}.weight" in state else None
    if last is None:
        raise PixseqError(f"no last convolution model.{17 + n}: not the official ResNet layout")
    cfg = GeneratorConfig(arch="resnet", in_channels=first.shape[1], out_channels=last.shape[0], width=first.shape[0],
                          blocks=n, norm=norm, dropout=dropout, padding="zero" if zero else padding)
    top = {1: "stem.1", 2: "stem.2", 4: "down.0", 5: "down.1", 7: "down.3", 8: "down.4",
           10 + n: "up.0", 11 + n: "up.1", 13 + n: "up.3", 14 + n: "up.4", 17 + n: "head.1"}
    mapping = {}
    for k in state:
        if (m := _BLOCK.match(k)) is not None:
            mapping[k] = f"blocks.{int(m.group(1)) - 10}.body.{m.group(2)}.{m.group(3)}"
        elif (m := _TOP.match(k)) is not None and int(m.group(1)) in top:
            mapping[k] = f"{top[int(m.group(1))]}.{m.group(2)}"
        else:
            raise PixseqError(f"unexpected key {k} for the official ResNet generator layout")
    return cfg, mapping


def unet_config(state: dict[str, torch.Tensor], dropout: bool = True) -> tuple[GeneratorConfig, dict]:
    """The config of an official U-Net generator's ``state`` and the key map to pixseq's layout."""
    prefixes = ["model.model."]
    while any(k.startswith(prefixes[-1] + ("1." if len(prefixes) == 1 else "3.") + "model.") for k in state):
        prefixes.append(prefixes[-1] + ("1." if len(prefixes) == 1 else "3.") + "model.")
    n = len(prefixes)
    if n < 2:
        raise PixseqError("a U-Net generator needs at least two levels")
    norm = _norm_of(state, prefixes[1] + "2")
    if norm == "instance" and prefixes[1] + "1.bias" not in state:
        norm = "none"  # the official 'none' norm also drops the conv biases
    inner = {"model.model.0": "downs.0.0", "model.model.3": "ups.0.1"}
    for level, p in enumerate(prefixes[1:], start=1):
        if level == n - 1:
            inner.update({p + "1": f"downs.{level}.1", p + "3": f"ups.{level}.1", p + "4": f"ups.{level}.2"})
        else:
            inner.update({p + "1": f"downs.{level}.1", p + "2": f"downs.{level}.2", p + "5": f"ups.{level}.1",
                          p + "6": f"ups.{level}.2"})
    mapping = {}
    for k in state:
        head, _, leaf = k.rpartition(".")
        if head not in inner:
            raise PixseqError(f"unexpected key {k} for the official U-Net generator layout")
        mapping[k] = f"{inner[head]}.{leaf}"
    first, last = state["model.model.0.weight"], state["model.model.3.weight"]
    cfg = GeneratorConfig(arch="unet", in_channels=first.shape[1], out_channels=last.shape[1], width=first.shape[0],
                          downs=n, norm=norm, dropout=dropout, image_stats=norm == "batch")
    return cfg, mapping


def convert_generator(state: dict, source: str = "the checkpoint", padding: str = "reflect",
                      dropout: bool | None = None) -> tuple[GeneratorConfig, dict[str, torch.Tensor]]:
    """An official generator state dict -> (config, state dict in pixseq's layout).
    ``dropout``: for a U-Net, whether it was trained with dropout (keys cannot tell; the
    official pix2pix default: yes)."""
    state = _clean(state, source)
    arch = detect_arch(state, source)
    # the first norm layer tells the kind: the ResNet's after its 7x7 conv, the U-Net's second level's
    state = _drop_old_instance_stats(state, _norm_of(state, "model.2" if arch == "resnet" else "model.model.1.model.2"))
    if arch == "resnet":
        cfg, mapping = resnet_config(state, padding)
    else:
        cfg, mapping = unet_config(state, True if dropout is None else dropout)
    return cfg, {mapping[k]: v for k, v in state.items()}


def _load_generator(model: Translator, direction: str, state: dict, source: str) -> None:
    from pixseq.checkpoint import load_state_strict

    load_state_strict(model.generators[direction], state, source=source)


def convert_official(g_a: str | os.PathLike | None, g_b: str | os.PathLike | None = None, kind: str = "cyclegan",
                     padding: str = "reflect", dropout: bool | None = None, domain_a: str = "A",
                     domain_b: str = "B", image_size: int = 256) -> Translator:
    """A ``cyclegan`` (``g_a``: ``latest_net_G_A.pth``, A -> B; ``g_b``: ``latest_net_G_B.pth``,
    B -> A; either may be None) or ``pix2pix`` (``g_a``: ``latest_net_G.pth``) model from
    official checkpoint files, loaded with ``torch.load(weights_only=True)``, strict shapes."""
    from pixseq.checkpoint import load_legacy_state

    if kind not in ("cyclegan", "pix2pix"):
        raise PixseqError(f"kind must be cyclegan or pix2pix, got {kind!r}")
    files = {d: Path(f) for d, f in (("AtoB", g_a), ("BtoA", g_b)) if f is not None}
    if not files:
        raise PixseqError("give at least one generator checkpoint")
    if kind == "pix2pix" and "BtoA" in files:
        raise PixseqError("a pix2pix model has one generator (latest_net_G.pth); give it alone")
    converted = {d: convert_generator(load_legacy_state(f), str(f), padding, dropout) for d, f in files.items()}
    configs = {d: c for d, (c, _) in converted.items()}
    base = configs.get("AtoB") or _swap(configs["BtoA"])
    if "AtoB" in configs and "BtoA" in configs and _swap(configs["BtoA"]) != base:
        raise PixseqError(f"{files['AtoB']} and {files['BtoA']} are different architectures ({base.describe} "
                          f"vs {configs['BtoA'].describe}); convert them separately")
    test_dropout = base.arch == "unet" and base.dropout  # pix2pix's test protocol: dropout on
    cfg = TranslatorConfig(generator=base, directions=[d for d in ("AtoB", "BtoA") if d in files], domain_a=domain_a,
                           domain_b=domain_b, image_size=image_size, test_dropout=test_dropout)
    model = (CycleGAN if kind == "cyclegan" else Pix2Pix)(cfg)
    for d, (_, state) in converted.items():
        _load_generator(model, d, state, str(files[d]))
    model.pretrained_meta = {"converted_from": {d: str(f) for d, f in files.items()}}
    return model.eval()


def _swap(cfg: GeneratorConfig) -> GeneratorConfig:
    return GeneratorConfig(**{**cfg.__dict__, "in_channels": cfg.out_channels, "out_channels": cfg.in_channels})


# ---------------------------------------------------------------------------- vintagify / the zoo
VINTAGE = "cyclegan-vintage"
VINTAGE_SUMMARY = ("vintagify's CycleGAN generator, modern -> vintage photos (ResNet-9, affine instance norm, "
                   "11.4 M parameters; PyPI vintagify 0.1.2, MIT)")


def vintagify_weights() -> Path:
    """``G_A2B_epoch33.pth`` inside the installed PyPI package ``vintagify``."""
    import importlib.util

    spec = importlib.util.find_spec("vintagify")
    if spec is None or spec.origin is None:
        raise PixseqError(f"zoo model {VINTAGE} comes from the PyPI package vintagify, which is not installed: "
                          f"pip install vintagify")
    path = Path(spec.origin).parent / "resources" / "G_A2B_epoch33.pth"
    if not path.is_file():
        raise PixseqError(f"vintagify is installed but lacks {path.name}; reinstall it")
    return path


def convert_vintagify(path: str | os.PathLike | None = None) -> CycleGAN:
    """vintagify's modern -> vintage generator as a one-direction ``cyclegan`` model."""
    path = Path(path) if path is not None else vintagify_weights()
    model = convert_official(path, None, "cyclegan", domain_a="modern photo", domain_b="vintage photo", image_size=512)
    model.pretrained_meta = {"name": VINTAGE, "converted_from": f"vintagify {path.name}", "license": "MIT"}
    return model


def build_zoo_model(name: str, dest: str | os.PathLike) -> Path:
    """The zoo's provider hook for ``cyclegan-vintage``: convert once into ``dest`` (staged
    beside it and renamed, so concurrent first uses never see half a model)."""
    from pixseq.zoo import save_built

    if name != VINTAGE:
        raise PixseqError(f"pixseq.gans.official builds only {VINTAGE}, not {name!r}")
    model = convert_vintagify()
    return save_built(model, dest, model.pretrained_meta)
