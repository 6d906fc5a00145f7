"""Training pairs for super-resolution: a high-resolution patch and its low-resolution input.

* ``bicubic`` — the classic pairing (SRCNN ... ESRGAN): antialiased bicubic downsampling by
  the scale, quantized to 8 bits.
* ``realesrgan`` — Real-ESRGAN's second-order degradation (Wang et al., "Real-ESRGAN:
  Training Real-World Blind Super-Resolution with Pure Synthetic Data", ICCVW 2021, section
  3 and its released settings): twice in a row blur -> random resize -> noise -> JPEG, then a
  resize to the target size with a sinc filter and a final JPEG, the last two in random
  order. Blur kernels are isotropic or anisotropic Gaussians (size 7-21, sigma 0.2-3, then
  0.2-1.5) or, with probability 0.1, a 2-D sinc (circular low-pass, Wang et al.'s ringing
  and overshoot artefacts); noise is Gaussian (sigma 1-30 / 255, then 1-25) or Poisson
  (scale 0.05-3, then 0.05-2.5), in colour or, with probability 0.4, the same for all
  channels; JPEG quality 30-95. The paper's generalized-Gaussian and plateau kernels are left
  out (the Gaussian and sinc kernels cover the blur and ringing it models).

Everything is drawn from a ``numpy.random.Generator``: a dataset seeds one per item, so a
pair is the same on every run and a resumed run sees the same data.
"""
from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pixseq.errors import PixseqError

DEGRADATIONS = ("bicubic", "realesrgan")
_MODES = ("area", "bilinear", "bicubic")


def check_degradation(kind: str) -> str:
    if kind not in DEGRADATIONS:
        raise PixseqError(f"unknown degradation {kind!r} (known: {', '.join(DEGRADATIONS)})")
    return kind


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round to 8-bit levels, as a low-resolution image read from a file is."""
    return x.clamp(0, 1).mul(255).round().div(255)


def bicubic_down(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """``(C, H, W)`` -> ``(C, H/scale, W/scale)``: antialiased bicubic, quantized."""
    return quantize(F.interpolate(hr[None], scale_factor=1 / scale, mode="bicubic", antialias=True,
                                  align_corners=False)[0])


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(x[None], size=size, mode=mode, **kwargs)[0]


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, angle: float) -> np.ndarray:
    """A normalised anisotropic Gaussian ``size x size`` kernel rotated by ``angle``."""
    r = np.arange(size) - (size - 1) / 2
    xx, yy = np.meshgrid(r, r)
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * xx + s * yy, -s * xx + c * yy
    k = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return k / k.sum()


def sinc_kernel(size: int, cutoff: float) -> np.ndarray:
    """The 2-D circular low-pass (sinc) kernel ``cutoff * J1(cutoff r) / (2 pi r)``, normalised."""
    from scipy.special import j1

    r = np.arange(size) - (size - 1) / 2
    rad = np.hypot(*np.meshgrid(r, r))
    with np.errstate(divide="ignore", invalid="ignore"):
        k = cutoff * j1(cutoff * rad) / (2 * np.pi * rad)
    k[rad == 0] = cutoff ** 2 / (4 * np.pi)  # the limit at r = 0
    return k / k.sum()


def _blur(x: torch.Tensor, rng: np.random.Generator, sigma: tuple[float, float], sinc_p: float) -> torch.Tensor:
    size = int(rng.choice(np.arange(7, 22, 2)))
    if rng.random() < sinc_p:
        cutoff = rng.uniform(np.pi / 3, np.pi) if size < 13 else rng.uniform(np.pi / 5, np.pi)
        k = sinc_kernel(size, cutoff)
    elif rng.random() < 0.45 / 0.7:  # Real-ESRGAN's iso : aniso odds (0.45 : 0.25)
        s = rng.uniform(*sigma)
        k = gaussian_kernel(size, s, s, 0.0)
    else:
        k = gaussian_kernel(size, rng.uniform(*sigma), rng.uniform(*sigma), rng.uniform(-np.pi, np.pi))
    return _filter(x, k)


def _filter(x: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    c = x.shape[0]
    k = torch.from_numpy(kernel).to(x)[None, None].expand(c, 1, *kernel.shape)
    pad = kernel.shape[0] // 2
    mode = "reflect" if pad < min(x.shape[1:]) else "replicate"  # (a patch shrunk by a random resize)
    return F.conv2d(F.pad(x[None], (pad,) * 4, mode=mode), k, groups=c)[0]


def _noise(x: torch.Tensor, rng: np.random.Generator, sigma: tuple[float, float], poisson: tuple[float, float]
           ) -> torch.Tensor:
    grey = rng.random() < 0.4
    shape = (1, *x.shape[1:]) if grey else x.shape
    if rng.random() < 0.5:
        noise = rng.normal(0.0, rng.uniform(*sigma) / 255, size=shape)
    else:  # Poisson (shot) noise of an 8-bit sensor, scaled
        base = x.mean(0, keepdim=True) if grey else x
        lam = base.clamp(0, 1).numpy().astype(np.float64) * 255
        noise = (rng.poisson(lam) - lam) / 255 * rng.uniform(*poisson)
    return (x + torch.from_numpy(np.broadcast_to(noise, x.shape).astype(np.float32))).clamp(0, 1)


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG-compress and decode ``(3, H, W)`` at ``quality`` (Pillow's encoder)."""
    arr = x.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=int(quality))
    back = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return torch.from_numpy(back.copy()).permute(2, 0, 1).float().div(255)


def _random_resize(x: torch.Tensor, rng: np.random.Generator, up: tuple[float, float], down: tuple[float, float],
                   odds: tuple[float, float]) -> torch.Tensor:
    roll = rng.random()
    factor = rng.uniform(*up) if roll < odds[0] else rng.uniform(*down) if roll < odds[0] + odds[1] else 1.0
    h, w = x.shape[1:]
    size = (max(4, round(h * factor)), max(4, round(w * factor)))
    return _resize(x, size, str(rng.choice(_MODES))).clamp(0, 1)


def second_order(hr: torch.Tensor, scale: int, rng: np.random.Generator) -> torch.Tensor:
    """Real-ESRGAN's degradation of a ``(3, H, W)`` patch in [0, 1] to ``(3, H/scale, W/scale)``."""
    h, w = hr.shape[1] // scale, hr.shape[2] // scale
    x = _blur(hr.float(), rng, (0.2, 3.0), 0.1)
    x = _random_resize(x, rng, (1.0, 1.5), (0.15, 1.0), (0.2, 0.7))
    x = _noise(x, rng, (1.0, 30.0), (0.05, 3.0))
    x = jpeg(x, rng.integers(30, 96))
    if rng.random() < 0.8:
        x = _blur(x, rng, (0.2, 1.5), 0.1)
    x = _random_resize(x, rng, (1.0, 1.2), (0.3, 1.0), (0.3, 0.4))
    x = _noise(x, rng, (1.0, 25.0), (0.05, 2.5))
    sinc = sinc_kernel(int(rng.choice(np.arange(7, 22, 2))), rng.uniform(np.pi / 3, np.pi)) \
        if rng.random() < 0.8 else None
    if rng.random() < 0.5:  # resize + sinc, then JPEG
        x = _resize(x, (h, w), str(rng.choice(_MODES)))
        x = _filter(x.clamp(0, 1), sinc) if sinc is not None else x
        x = jpeg(x, rng.integers(30, 96))
    else:  # JPEG, then resize + sinc
        x = jpeg(x, rng.integers(30, 96))
        x = _resize(x, (h, w), str(rng.choice(_MODES)))
        x = _filter(x.clamp(0, 1), sinc) if sinc is not None else x
    return quantize(x)


def make_lr(hr: torch.Tensor, scale: int, kind: str, rng: np.random.Generator) -> torch.Tensor:
    """The low-resolution input of ``hr`` ``(3, H, W)`` (sides multiples of ``scale``)."""
    if kind == "bicubic":
        return bicubic_down(hr, scale)
    return second_order(hr, scale, rng)
