"""Image-to-image generators: the U-Net of pix2pix and the ResNet generator of CycleGAN.

* :class:`UNetGenerator` (Isola et al. 2017, "Image-to-Image Translation with Conditional
  Adversarial Networks", appendix 6.1.1): ``downs`` stride-2 4x4 convolutions (LeakyReLU 0.2,
  norm; none on the first and the innermost), then as many stride-2 4x4 transposed
  convolutions (ReLU, norm) whose input is the previous decoder output concatenated with the
  encoder's feature map of the same size (the skips). Inner widths ``width * min(2^l, 8)``;
  8 downs is ``unet_256`` (a 256 px image reaches 1x1), 7 ``unet_128``. Dropout 0.5 after
  the ``max(0, downs - 5)`` decoder layers just outside the innermost: the noise of pix2pix
  (the paper's "dropout in the first 3 decoder layers").
* :class:`ResnetGenerator` (Zhu et al. 2017, "Unpaired Image-to-Image Translation using
  Cycle-Consistent Adversarial Networks", appendix 7.2, after Johnson et al. 2016):
  ``c7s1-w, d2w, d4w, R4w x blocks, u2w, uw, c7s1-3``: a reflection-padded 7x7 conv, two
  stride-2 3x3 convs, residual blocks of two 3x3 convs, two stride-2 3x3 transposed convs and
  a 7x7 conv with tanh. 9 blocks for 256 px images, 6 for 128 px.

Layer order and indices follow pytorch-CycleGAN-and-pix2pix's ``networks.py`` inside each
piece (``stem``, ``down``, ``blocks``, ``up``, ``head``; a U-Net's ``downs`` / ``ups`` per
level), so that :mod:`pixseq.gans.official` converts its checkpoints with a plain key map.

Normalisation (:data:`NORMS`): ``instance`` (affine-free, as the official code),
``instance-affine`` (learned scale and shift, as vintagify's generator), ``batch`` or ``none``.
Convolutions before a norm layer have a bias only with instance norm (as in the official
code, where ``none`` drops them too). Norm layers that normalise each image by its
own statistics (instance norm; batch norm with ``image_stats``) can be given fixed
statistics instead (:func:`fixed_norm_stats`): what lets a large image run in tiles and
still be normalised as one image (:mod:`pixseq.gans.translator`).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from pixseq.errors import PixseqError

ARCHS = ("unet", "resnet")
NORMS = ("instance", "instance-affine", "batch", "none")
PADDINGS = ("reflect", "replicate", "zero")


@dataclass
class GeneratorConfig:
    """An image-to-image generator: ``arch`` (``unet`` / ``resnet``), channels in and out,
    ``width`` (the official ``ngf``), ResNet ``blocks`` / U-Net ``downs``, ``norm``,
    ``dropout`` (U-Net decoder; in ResNet blocks between the two convs), the residual blocks'
    ``padding``, and ``image_stats``: batch norm normalises each image by its own statistics
    at inference, as pix2pix's paper and official test script do (else: running averages)."""

    arch: str = "resnet"
    in_channels: int = 3
    out_channels: int = 3
    width: int = 64
    blocks: int = 9
    downs: int = 8
    norm: str = "instance"
    dropout: bool = False
    padding: str = "reflect"
    image_stats: bool = False

    def __post_init__(self) -> None:
        checks = [(self.arch in ARCHS, f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}"),
                  (self.in_channels in (1, 3) and self.out_channels in (1, 3), "channels must be 1 or 3"),
                  (self.width >= 1, f"width must be >= 1, got {self.width}"),
                  (self.blocks >= 0, f"blocks must be >= 0, got {self.blocks}"),
                  (2 <= self.downs <= 9, f"downs must be 2..9, got {self.downs}"),
                  (self.norm in NORMS, f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}"),
                  (self.padding in PADDINGS, f"padding must be one of {', '.join(PADDINGS)}, got {self.padding!r}")]
        for ok, message in checks:
            if not ok:
                raise PixseqError(f"bad generator config: {message}")

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this (other sizes are padded by the translator)."""
        return 2 ** self.downs if self.arch == "unet" else 4

    @property
    def describe(self) -> str:
        what = f"U-Net-{self.downs}" if self.arch == "unet" else f"ResNet-{self.blocks}"
        return f"{what} (width {self.width}, {self.norm} norm{', dropout' if self.dropout else ''})"


# ---------------------------------------------------------------------------- norms
class _OwnStats:
    """Mixin of the norms that normalise each image by its own statistics: they record
    those statistics (``record``), or use ``fixed`` ones ``(mean, var)`` of shape ``(C,)``."""

    record: bool = False
    fixed: tuple[torch.Tensor, torch.Tensor] | None = None
    recorded: tuple[torch.Tensor, torch.Tensor] | None = None

    def _own_stats(self, x: torch.Tensor, weight, bias, eps: float) -> torch.Tensor:
        if self.fixed is None and not self.record:
            return F.instance_norm(x, weight=weight, bias=bias, eps=eps)
        if self.fixed is not None:
            mean, var = (t.to(x.dtype).view(1, -1, 1, 1) for t in self.fixed)
        else:
            var, mean = torch.var_mean(x.float(), dim=(2, 3), unbiased=False, keepdim=True)  # (B, C, 1, 1)
            self.recorded = (mean.mean(0).flatten(), var.mean(0).flatten())
            mean, var = mean.to(x.dtype), var.to(x.dtype)
        y = (x - mean) * torch.rsqrt(var + eps)
        if weight is not None:
            y = y * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)
        return y


class InstanceNorm(_OwnStats, nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` (no running statistics) that can take fixed statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._own_stats(x, self.weight, self.bias, self.eps)


class BatchNorm(_OwnStats, nn.BatchNorm2d):
    """``nn.BatchNorm2d``; at inference with ``image_stats`` each image is normalised by its
    own statistics (the pix2pix test protocol), which can then be fixed like instance norm's."""

    def __init__(self, channels: int, image_stats: bool = False) -> None:
        super().__init__(channels)
        self.image_stats = image_stats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not self.image_stats:
            return super().forward(x)
        return self._own_stats(x, self.weight, self.bias, self.eps)


def make_norm(config: GeneratorConfig, channels: int) -> nn.Module:
    """The config's norm layer for ``channels`` channels."""
    if config.norm == "batch":
        return BatchNorm(channels, config.image_stats)
    if config.norm == "none":
        return nn.Identity()
    return InstanceNorm(channels, affine=config.norm == "instance-affine")


def _own_stat_norms(model: nn.Module) -> list[_OwnStats]:
    return [m for m in model.modules() if isinstance(m, InstanceNorm)
            or (isinstance(m, BatchNorm) and m.image_stats and not m.training)]


@torch.no_grad()
def record_norm_stats(model: nn.Module, run: Callable[[], object]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Call ``run()`` (a forward pass through ``model``) and return the statistics each of
    ``model``'s own-statistics norm layers measured (in module order; averaged over the batch)."""
    norms = _own_stat_norms(model)
    for m in norms:
        m.record, m.recorded = True, None
    try:
        run()
    finally:
        for m in norms:
            m.record = False
    missing = sum(m.recorded is None for m in norms)
    if missing:
        raise PixseqError(f"{missing} norm layer(s) of the model were not run by the forward pass")
    return [m.recorded for m in norms]


@contextmanager
def fixed_norm_stats(model: nn.Module, stats: list[tuple[torch.Tensor, torch.Tensor]] | None) -> Iterator[None]:
    """Within the block every own-statistics norm layer of ``model`` uses ``stats`` (from
    :func:`record_norm_stats`); None: nothing changes."""
    norms = _own_stat_norms(model) if stats is not None else []
    if stats is not None and len(stats) != len(norms):
        raise PixseqError(f"got statistics for {len(stats)} norm layers, the model has {len(norms)}")
    for m, s in zip(norms, stats or []):
        m.fixed = s
    try:
        yield
    finally:
        for m in norms:
            m.fixed = None


def has_own_stat_norms(model: nn.Module) -> bool:
    """Whether ``model`` (in its current mode) normalises images by their own statistics."""
    return bool(_own_stat_norms(model))


# ---------------------------------------------------------------------------- U-Net
def _unet_width(config: GeneratorConfig, level: int) -> int:
    return config.width * min(2 ** level, 8)


class UNetGenerator(nn.Module):
    """``G(x) -> (B, out_channels, H, W)`` in [-1, 1]; ``H``, ``W`` multiples of ``2**downs``."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        c, n = config, config.downs
        bias = c.norm.startswith("instance")
        dropout_levels = range(4, n - 1) if c.dropout else range(0)  # the official network's 8*width middle levels
        self.downs, self.ups = nn.ModuleList(), nn.ModuleList()
        for level in range(n):
            cin = c.in_channels if level == 0 else _unet_width(c, level - 1)
            cout = _unet_width(c, level)
            conv = nn.Conv2d(cin, cout, 4, 2, 1, bias=bias)
            if level == 0:
                self.downs.append(nn.Sequential(conv))
            elif level == n - 1:  # the innermost has no norm (a 1x1 map at the official size)
                self.downs.append(nn.Sequential(nn.LeakyReLU(0.2), conv))
            else:
                self.downs.append(nn.Sequential(nn.LeakyReLU(0.2), conv, make_norm(c, cout)))
        for level in range(n):
            inner = _unet_width(c, level) * (1 if level == n - 1 else 2)  # + the skip, except innermost
            if level == 0:
                self.ups.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(inner, c.out_channels, 4, 2, 1), nn.Tanh()))
                continue
            outer = _unet_width(c, level - 1)
            layers = [nn.ReLU(), nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias), make_norm(c, outer)]
            if level in dropout_levels:
                layers.append(nn.Dropout(0.5))
            self.ups.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        h = self.ups[-1](skips[-1])
        for level in range(len(self.ups) - 2, -1, -1):
            h = self.ups[level](torch.cat([skips[level], h], 1))  # skip first, as the official concat
        return h


# ---------------------------------------------------------------------------- ResNet
def _pad(config: GeneratorConfig, size: int) -> tuple[list[nn.Module], int]:
    """(padding layers, conv padding) of the residual blocks' padding type."""
    if config.padding == "zero":
        return [], size
    return [nn.ReflectionPad2d(size) if config.padding == "reflect" else nn.ReplicationPad2d(size)], 0


class ResnetBlock(nn.Module):
    """``x + norm(conv(pad(relu(norm(conv(pad(x)))))))`` (dropout between the convs when on)."""

    def __init__(self, config: GeneratorConfig, dim: int) -> None:
        super().__init__()
        bias = config.norm.startswith("instance")
        pads, p = _pad(config, 1)
        layers = [*pads, nn.Conv2d(dim, dim, 3, padding=p, bias=bias), make_norm(config, dim), nn.ReLU(True)]
        if config.dropout:
            layers.append(nn.Dropout(0.5))
        pads, p = _pad(config, 1)
        layers += [*pads, nn.Conv2d(dim, dim, 3, padding=p, bias=bias), make_norm(config, dim)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """``G(x) -> (B, out_channels, H, W)`` in [-1, 1]; ``H``, ``W`` multiples of 4."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        c, w = config, config.width
        bias = c.norm.startswith("instance")
        self.stem = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(c.in_channels, w, 7, bias=bias),
                                  make_norm(c, w), nn.ReLU(True))
        down: list[nn.Module] = []
        for i in range(2):
            down += [nn.Conv2d(w * 2 ** i, w * 2 ** (i + 1), 3, 2, 1, bias=bias), make_norm(c, w * 2 ** (i + 1)),
                     nn.ReLU(True)]
        self.down = nn.Sequential(*down)
        self.blocks = nn.Sequential(*[ResnetBlock(c, w * 4) for _ in range(c.blocks)])
        up: list[nn.Module] = []
        for i in range(2):
            cin = w * 2 ** (2 - i)
            up += [nn.ConvTranspose2d(cin, cin // 2, 3, 2, 1, output_padding=1, bias=bias), make_norm(c, cin // 2),
                   nn.ReLU(True)]
        self.up = nn.Sequential(*up)
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(w, c.out_channels, 7), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.up(self.blocks(self.down(self.stem(x)))))


def build_generator(config: GeneratorConfig) -> nn.Module:
    """A fresh generator of ``config`` with the official initialisation (weights N(0, 0.02),
    biases 0, batch-norm scales N(1, 0.02))."""
    from pixseq.gans.dcgan import dcgan_init

    net = UNetGenerator(config) if config.arch == "unet" else ResnetGenerator(config)
    dcgan_init(net)  # (affine instance norms keep PyTorch's identity start)
    return net


def peak_floats_per_pixel(config: GeneratorConfig) -> float:
    """About how many floats per input pixel a forward pass without gradients holds at its
    peak (a few feature maps of the widest full-resolution layer), for the tile size."""
    if config.arch == "unet":
        return 6.0 * config.width + 4 * config.in_channels
    return 6.0 * config.width + 8.0 * config.width / 4  # full-res maps, plus the 1/4-res trunk's
