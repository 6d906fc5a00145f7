"""ESRGAN / Real-ESRGAN super-resolution generators: RRDBNet and SRVGGNetCompact.

* :class:`RRDBNet` — ESRGAN's generator (Wang et al., "ESRGAN: Enhanced Super-Resolution
  Generative Adversarial Networks", ECCV workshops 2018): a 3x3 conv, ``num_block``
  residual-in-residual dense blocks (RRDB: three 5-conv dense blocks, each residual scaled
  by 0.2, and the three again by 0.2), a 3x3 conv with a long skip, two nearest-neighbour
  2x upsamplings each followed by a conv + LeakyReLU(0.2), then two convs. Real-ESRGAN
  (Wang et al., ICCVW 2021) keeps the net and, for scale 2 / 1, feeds it the input
  pixel-unshuffled by 2 / 4 (so the same 4x body serves).
* :class:`SRVGGNetCompact` — Real-ESRGAN's small VGG-style net (``realesr-animevideov3``):
  ``num_conv`` 3x3 convs at the input resolution with PReLU, a pixel shuffle, and the
  nearest-neighbour upsampled input added as a residual.

Parameter names are those of Real-ESRGAN's ``basicsr.archs.rrdbnet_arch.RRDBNet`` and
``realesrgan.archs.srvgg_arch.SRVGGNetCompact`` (``conv_first``, ``body.N.rdbK.convJ``,
``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``; ``body.N`` for
SRVGG), so their ``.pth`` state dicts load with a 1:1 key map (:mod:`pixseq.upscale.convert`).

Images enter and leave as ``(B, C, H, W)`` floats in ``[0, 1]`` (not clamped: the caller
clamps when it quantizes).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from pixseq.registry import register

#: LeakyReLU slope of ESRGAN's convs and the residual scale of its dense blocks.
_SLOPE, _RES_SCALE = 0.2, 0.2


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    # in place when no graph is recorded: at the 4x resolution each activation is 64 channels
    # of (4H, 4W) floats, and a copy would be one more such tensor alive at the peak
    return F.leaky_relu(x, _SLOPE, inplace=not torch.is_grad_enabled())


@dataclass
class RRDBNetConfig:
    """RRDBNet architecture; the defaults are Real-ESRGAN x4plus (23 blocks, 16.7 M parameters)."""

    num_in_ch: int = 3
    num_out_ch: int = 3
    scale: int = 4
    num_feat: int = 64
    num_block: int = 23
    num_grow_ch: int = 32

    def __post_init__(self) -> None:
        if self.scale not in (1, 2, 4):
            raise ValueError(f"RRDBNet scale must be 1, 2 or 4, got {self.scale}")
        if min(self.num_in_ch, self.num_out_ch, self.num_feat, self.num_block, self.num_grow_ch) < 1:
            raise ValueError("RRDBNet channel and block counts must be >= 1")


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the block input and every earlier output (dense)."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.num_feat, self.num_grow_ch = num_feat, num_grow_ch
        for i in range(4):
            setattr(self, f"conv{i + 1}", nn.Conv2d(num_feat + i * num_grow_ch, num_grow_ch, 3, 1, 1))
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        # ESRGAN's initialisation (BasicSR's default_init_weights): Kaiming normal scaled by 0.1,
        # so that each of the 69 residual branches starts small and a fresh deep net trains stably
        for i in range(1, 6):
            conv = getattr(self, f"conv{i}")
            nn.init.kaiming_normal_(conv.weight)
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        convs = (self.conv1, self.conv2, self.conv3, self.conv4)
        if torch.is_grad_enabled() or x.shape[0] != 1:
            feats = [x]
            for conv in convs:
                feats.append(_lrelu(conv(torch.cat(feats, 1))))
            return self.conv5(torch.cat(feats, 1)) * _RES_SCALE + x
        # Inference on one tile: one (1, nf + 4g, H, W) buffer receives each conv's output, and
        # its first c channels are a contiguous view (batch 1), so no concatenation copies
        # (torch.cat above copies the growing stack four times per block)
        nf, g = self.num_feat, self.num_grow_ch
        buf = x.new_empty(1, nf + 4 * g, *x.shape[2:])
        buf[:, :nf] = x
        for i, conv in enumerate(convs):
            c = nf + i * g
            buf[:, c:c + g] = _lrelu(conv(buf[:, :c]))
        return self.conv5(buf).mul_(_RES_SCALE).add_(x)


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks, the sum scaled by 0.2."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rdb3(self.rdb2(self.rdb1(x)))
        return out * _RES_SCALE + x if torch.is_grad_enabled() else out.mul_(_RES_SCALE).add_(x)


@register("rrdbnet", RRDBNetConfig, "ESRGAN / Real-ESRGAN RRDB super-resolution generator")
class RRDBNet(nn.Module):
    """ESRGAN's RRDB generator in Real-ESRGAN's parameter layout."""

    def __init__(self, config: RRDBNetConfig) -> None:
        super().__init__()
        self.config = c = config
        # scale 2 / 1 run the 4x body on a pixel-unshuffled input (Real-ESRGAN)
        self.unshuffle = {4: 1, 2: 2, 1: 4}[c.scale]
        self.conv_first = nn.Conv2d(c.num_in_ch * self.unshuffle ** 2, c.num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(c.num_feat, c.num_grow_ch) for _ in range(c.num_block)])
        self.conv_body = nn.Conv2d(c.num_feat, c.num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(c.num_feat, c.num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(c.num_feat, c.num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(c.num_feat, c.num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(c.num_feat, c.num_out_ch, 3, 1, 1)

    @property
    def scale(self) -> int:
        return self.config.scale

    @property
    def in_channels(self) -> int:
        return self.config.num_in_ch

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this (the pixel unshuffle of scales 2 and 1)."""
        return self.unshuffle

    def peak_floats_per_input_pixel(self) -> float:
        """Floats alive at the forward's peak per input pixel (no autograd): at the 4x
        resolution an upsampled map and the conv output of ``num_feat`` channels each
        (``conv_up2``, ``conv_hr``), i.e. ``2 * num_feat * 16`` per pixel of the 4x body's input.
        The memory budget of the tiler multiplies this by the element size and a margin."""
        c = self.config
        body_pixels = 1.0 / self.unshuffle ** 2  # body positions per input pixel
        return body_pixels * max(2 * c.num_feat * 16, 3 * (2 * c.num_feat + 4 * c.num_grow_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)  # (B, C*s^2, H/s, W/s)
        feat = self.conv_first(x)
        body = self.conv_body(self.body(feat))
        feat = feat + body if torch.is_grad_enabled() else body.add_(feat)
        feat = _lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2.0, mode="nearest")))
        feat = _lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2.0, mode="nearest")))
        return self.conv_last(_lrelu(self.conv_hr(feat)))


@dataclass
class SRVGGConfig:
    """SRVGGNetCompact architecture; the defaults are Real-ESRGAN's realesr-animevideov3 (x4)."""

    num_in_ch: int = 3
    num_out_ch: int = 3
    num_feat: int = 64
    num_conv: int = 16
    upscale: int = 4
    act_type: str = "prelu"
    #: a bicubic resize of the output by this factor: the animevideov3 x2 / x3 ncnn graphs are
    #: the x4 net followed by a 0.5 / 0.75 resize (their .bin files are the x4 one's)
    final_resize: float = 1.0

    def __post_init__(self) -> None:
        total = self.upscale * self.final_resize
        if not (0 < self.final_resize <= 1 and abs(total - round(total)) < 1e-6 and round(total) >= 1):
            raise ValueError(f"final_resize {self.final_resize} must be in (0, 1] and make upscale * final_resize "
                             f"a whole number")
        if self.act_type not in ("prelu", "relu", "leakyrelu"):
            raise ValueError(f"act_type must be prelu, relu or leakyrelu, got {self.act_type!r}")
        if min(self.num_in_ch, self.num_out_ch, self.num_feat, self.upscale) < 1 or self.num_conv < 0:
            raise ValueError("SRVGGNetCompact sizes must be >= 1 (num_conv >= 0)")


def _activation(kind: str, channels: int) -> nn.Module:
    if kind == "prelu":
        return nn.PReLU(num_parameters=channels)
    return nn.ReLU(inplace=True) if kind == "relu" else nn.LeakyReLU(0.1, inplace=True)


@register("srvgg", SRVGGConfig, "Real-ESRGAN SRVGGNetCompact super-resolution net")
class SRVGGNetCompact(nn.Module):
    """A compact VGG-style super-resolution net: convs at the input resolution, pixel shuffle."""

    def __init__(self, config: SRVGGConfig) -> None:
        super().__init__()
        self.config = c = config
        layers: list[nn.Module] = [nn.Conv2d(c.num_in_ch, c.num_feat, 3, 1, 1), _activation(c.act_type, c.num_feat)]
        for _ in range(c.num_conv):
            layers += [nn.Conv2d(c.num_feat, c.num_feat, 3, 1, 1), _activation(c.act_type, c.num_feat)]
        layers.append(nn.Conv2d(c.num_feat, c.num_out_ch * c.upscale ** 2, 3, 1, 1))
        self.body = nn.ModuleList(layers)  # body.N: Real-ESRGAN's names
        self.upsampler = nn.PixelShuffle(c.upscale)

    @property
    def scale(self) -> int:
        return round(self.config.upscale * self.config.final_resize)

    @property
    def in_channels(self) -> int:
        return self.config.num_in_ch

    @property
    def size_multiple(self) -> int:
        return 1

    def peak_floats_per_input_pixel(self) -> float:
        """Two ``num_feat`` maps at the input resolution, or the output and its upsampled
        residual at the output resolution, whichever is more."""
        c = self.config
        return max(2 * c.num_feat, 3 * c.num_out_ch * c.upscale ** 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)  # (B, out_ch, H*s, W*s)
        base = F.interpolate(x, scale_factor=float(self.config.upscale), mode="nearest")
        out = out + base if torch.is_grad_enabled() else out.add_(base)
        if self.config.final_resize != 1.0:  # (B, C, H*scale, W*scale); bicubic as ncnn's Interp 0=3
            out = F.interpolate(out, size=(x.shape[2] * self.scale, x.shape[3] * self.scale), mode="bicubic",
                                align_corners=False)
        return out


#: The super-resolution kinds :func:`pixseq.load_model` callers of the upscaler accept.
SR_KINDS = ("rrdbnet", "srvgg")
