"""Real-ESRGAN checkpoints -> pixseq super-resolution models.

* ``.pth`` files of Real-ESRGAN / BasicSR (``RealESRGAN_x4plus.pth``,
  ``RealESRGAN_x4plus_anime_6B.pth``, ``RealESRGAN_x2plus.pth``, ``realesr-animevideov3.pth``,
  ``realesr-general-x4v3.pth``, ESRGAN's own): a dict holding the state dict under
  ``params_ema`` (preferred, as Real-ESRGAN's inference does) or ``params``, or the bare
  state dict. Read with ``torch.load(weights_only=True)`` only. The architecture and its
  sizes are read from the tensor names and shapes (RRDBNet: ``conv_first`` / ``body.N.rdbK``;
  SRVGGNetCompact: ``body.N`` only); the key map is the identity, checked strictly.
* ncnn ``.param`` / ``.bin`` pairs: :func:`pixseq.upscale.ncnn.convert_ncnn`.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from pixseq.checkpoint import load_legacy_state, load_state_strict
from pixseq.errors import PixseqError
from pixseq.upscale.rrdb import RRDBNet, RRDBNetConfig, SRVGGConfig, SRVGGNetCompact

#: Real-ESRGAN's upsampler for the pixel-unshuffle factor its RRDBNet's first conv implies
_UNSHUFFLE_SCALE = {1: 4, 4: 2, 16: 1}


def state_from_checkpoint(obj: object, source: str) -> dict[str, torch.Tensor]:
    """The generator's state dict inside a loaded Real-ESRGAN checkpoint: ``params_ema`` >
    ``params`` > the dict itself (when it holds tensors)."""
    if isinstance(obj, dict):
        for key in ("params_ema", "params"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PixseqError(f"{source} holds no state dict (expected tensors, or 'params_ema' / 'params' holding them)")
    return {k.removeprefix("module."): v for k, v in obj.items()}  # saved from DataParallel: 'module.' prefixes


def _rrdb_config(state: dict[str, torch.Tensor], source: str, scale: int | None) -> RRDBNetConfig:
    first, last = state["conv_first.weight"], state.get("conv_last.weight")
    grow = state.get("body.0.rdb1.conv1.weight")
    if last is None or grow is None or first.dim() != 4:
        raise PixseqError(f"{source}: an RRDBNet state dict needs conv_first, body.0.rdb1.conv1 and conv_last")
    blocks = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.rdb1\.", k)))
    out_ch, in_total = last.shape[0], first.shape[1]
    factor = in_total // out_ch if in_total % out_ch == 0 else 0  # inputs have the outputs' channels
    if scale is None:
        if factor not in _UNSHUFFLE_SCALE:
            raise PixseqError(f"{source}: cannot tell the scale from conv_first's {in_total} input channels; "
                              f"give the scale (--scale 4, 2 or 1)")
        scale = _UNSHUFFLE_SCALE[factor]
    unshuffle = {4: 1, 2: 2, 1: 4}.get(scale)
    if unshuffle is None or in_total % unshuffle ** 2:
        raise PixseqError(f"{source}: scale {scale} does not fit conv_first's {in_total} input channels")
    return RRDBNetConfig(num_in_ch=in_total // unshuffle ** 2, num_out_ch=out_ch, scale=scale,
                         num_feat=first.shape[0], num_block=blocks, num_grow_ch=grow.shape[0])


def _srvgg_config(state: dict[str, torch.Tensor], source: str) -> SRVGGConfig:
    convs = sorted(int(m.group(1)) for k, v in state.items()
                   if (m := re.fullmatch(r"body\.(\d+)\.weight", k)) and v.dim() == 4)
    if len(convs) < 2 or convs != list(range(0, 2 * len(convs), 2)):
        raise PixseqError(f"{source}: an SRVGGNetCompact state dict has convs body.0, body.2, ... body.2n")
    first, last = state["body.0.weight"], state[f"body.{convs[-1]}.weight"]
    in_ch, nf = first.shape[1], first.shape[0]
    up = math.isqrt(last.shape[0] // in_ch) if last.shape[0] % in_ch == 0 else 0
    if up < 1 or up * up * in_ch != last.shape[0]:
        raise PixseqError(f"{source}: the last conv's {last.shape[0]} outputs are not {in_ch} channels x scale^2")
    # PReLU slopes are the only parameters between convs: ReLU and LeakyReLU nets have none,
    # and which of the two a file was trained with is not in it
    if "body.1.weight" not in state:
        raise PixseqError(f"{source}: an SRVGGNetCompact without PReLU slopes (relu / leakyrelu): the file does not "
                          f"say which activation it was trained with; only PReLU nets (all released ones) convert")
    return SRVGGConfig(num_in_ch=in_ch, num_out_ch=in_ch, num_feat=nf, num_conv=len(convs) - 2, upscale=up)


def convert_realesrgan_pth(path: str | Path, scale: int | None = None) -> torch.nn.Module:
    """An RRDBNet or SRVGGNetCompact from a Real-ESRGAN / ESRGAN ``.pth`` (see the module
    docstring); ``scale`` only for an RRDBNet whose input channels leave it ambiguous."""
    path = Path(path)
    state = state_from_checkpoint(load_legacy_state(path), str(path))
    try:
        if "conv_first.weight" in state:
            model: torch.nn.Module = RRDBNet(_rrdb_config(state, str(path), scale))
        elif "body.0.weight" in state:
            model = SRVGGNetCompact(_srvgg_config(state, str(path)))
        else:
            keys = ", ".join(sorted(state)[:4])
            raise PixseqError(f"{path} is not a Real-ESRGAN RRDBNet or SRVGGNetCompact checkpoint (no conv_first "
                              f"or body.0 weights; its tensors are {keys}, ...)")
    except ValueError as exc:  # a config the architecture refuses
        raise PixseqError(f"{path}: {exc}") from None
    load_state_strict(model, state, source=str(path))
    return model.eval()


def convert_realesrgan(src: str | Path, bin_path: str | Path | None = None, scale: int | None = None
                       ) -> torch.nn.Module:
    """A super-resolution model from a Real-ESRGAN file: an ncnn ``.param`` (with its
    ``.bin``: ``bin_path``, default beside it) or a ``.pth``."""
    src = Path(src)
    if src.suffix == ".param":
        from pixseq.upscale.ncnn import convert_ncnn

        if scale is not None:
            raise PixseqError("--scale applies to .pth files only (an ncnn graph names its own)")
        return convert_ncnn(src, bin_path)
    if bin_path is not None:
        raise PixseqError(f"--bin goes with an ncnn .param file, not {src.name}")
    if src.suffix == ".bin":
        raise PixseqError(f"{src} is an ncnn weights file: give its .param file (the .bin beside it is read too)")
    return convert_realesrgan_pth(src, scale)
