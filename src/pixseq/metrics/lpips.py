"""LPIPS (Zhang et al. 2018, "The unreasonable effectiveness of deep features as a perceptual metric").

Distance between two images = sum over backbone stages of the spatial mean of a learned
1x1 linear head applied to the squared difference of channel-normalised features.
Facts from the reference implementation (the ``lpips`` package, v0.1):

* inputs in [-1, 1] are standardised with shift (-.030, -.088, -.188) and scale (.458, .448, .450);
* AlexNet taps the five ReLUs after ``features[1, 4, 7, 9, 11]`` (64/192/384/256/256 channels),
  VGG16 the ReLUs after ``features[3, 8, 15, 22, 29]`` (64/128/256/512/512);
* features are divided by their per-pixel L2 norm over channels (+1e-10);
* the v0.1 linear heads (``lin{i}.model.1.weight``) ship inside the ``lpips`` package; the
  ImageNet backbones are torchvision's, resolved by :mod:`pixseq.weights`.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
from torchvision import models as tv_models

from pixseq.checkpoint import load_legacy_state
from pixseq.errors import PixseqError
from pixseq.metrics.base import Metric, check_pair
from pixseq.weights import resolve_weights

class _VGG16Features(nn.Module):
    """torchvision VGG16's conv trunk only: building the full model would initialise ~120 M
    classifier weights that LPIPS never uses."""

    def __init__(self) -> None:
        super().__init__()
        self.features = tv_models.vgg.make_layers(tv_models.vgg.cfgs["D"], batch_norm=False)


# net -> (torchvision constructor, index just past each tapped ReLU, channels per tap)
_NETS = {
    "alex": (tv_models.alexnet, (2, 5, 8, 10, 12), (64, 192, 384, 256, 256)),
    "vgg": (lambda weights=None: _VGG16Features(), (4, 9, 16, 23, 30), (64, 128, 256, 512, 512)),
}
_WEIGHTS = {"alex": "alexnet", "vgg": "vgg16"}


class LPIPSNet(nn.Module):
    """The LPIPS network with random weights; load with :func:`load_lpips`."""

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net not in _NETS:
            raise PixseqError(f"unknown LPIPS network {net!r} (known: {', '.join(_NETS)})")
        build, cuts, chans = _NETS[net]
        self.net_name = net
        features = build(weights=None).features
        starts = (0,) + cuts[:-1]
        self.stages = nn.ModuleList(features[a:b] for a, b in zip(starts, cuts))
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in chans)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))  # unit norm over channels
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) pairs in [0, 1] -> (B,) distances."""
        fa, fb = self._taps(2 * a - 1), self._taps(2 * b - 1)
        total = 0
        for head, x, y in zip(self.heads, fa, fb):
            total = total + head((x - y) ** 2).mean(dim=(2, 3))  # (B, 1)
        return total[:, 0]

    def load_heads(self, state: dict[str, torch.Tensor]) -> None:
        """Load the ``lpips`` package's v0.1 heads (keys ``lin{i}.model.1.weight``)."""
        for i, head in enumerate(self.heads):
            key = f"lin{i}.model.1.weight"
            if key not in state or state[key].shape != head.weight.shape:
                raise PixseqError(f"LPIPS head file lacks {key} of shape {tuple(head.weight.shape)}")
            head.weight.data.copy_(state[key])

    def load_backbone(self, state: dict[str, torch.Tensor]) -> None:
        """Load a torchvision ImageNet state dict (``features.*`` keys; the classifier is ignored)."""
        # Slicing an nn.Sequential keeps the original layer indices, so stage keys
        # "{stage}.{layer}.{param}" map to "features.{layer}.{param}".
        ours = {k: state["features." + k.split(".", 1)[1]] for k in self.stages.state_dict()}
        self.stages.load_state_dict(ours, strict=True)


def lpips_heads_path(net: str) -> Path:
    """The v0.1 linear heads file inside the installed ``lpips`` package."""
    try:
        import lpips as lpips_pkg
    except ImportError:
        raise PixseqError("LPIPS needs the `lpips` package for its linear heads: pip install lpips") from None
    path = Path(lpips_pkg.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    if not path.is_file():
        raise PixseqError(f"LPIPS heads not found at {path}; reinstall the `lpips` package")
    return path


def load_lpips(net: str = "alex", backbone_path: str | os.PathLike | None = None,
               weights_dir: str | os.PathLike | None = None, offline: bool | None = None) -> LPIPSNet:
    """LPIPS with the package's heads and torchvision's ImageNet backbone, in eval mode."""
    model = LPIPSNet(net)
    model.load_heads(load_legacy_state(lpips_heads_path(net)))
    file = resolve_weights(_WEIGHTS[net], path=backbone_path, weights_dir=weights_dir, offline=offline)
    try:
        model.load_backbone(load_legacy_state(file))
    except (KeyError, RuntimeError) as exc:
        raise PixseqError(f"{file} is not a torchvision {_WEIGHTS[net]} state dict ({exc})") from None
    return model.eval().requires_grad_(False)


#: The smallest image side each backbone's last tapped stage still has an output for.
_MIN_SIDE = {"alex": 31, "vgg": 16}


def lpips(a: torch.Tensor, b: torch.Tensor, model: LPIPSNet) -> torch.Tensor:
    """LPIPS distance per pair: (B,3,H,W) in [0,1] -> (B,).

    The pair is checked like every full-reference metric's (same shape, RGB, values in
    [0, 1], finite): the network would otherwise broadcast a batch of 1 against B, or
    score [0, 255] images as if they were [0, 1].
    """
    a, b = check_pair(a, b, 1.0)
    if a.shape[1] != 3:
        raise PixseqError(f"LPIPS needs RGB images, got {a.shape[1]} channel(s)")
    side = _MIN_SIDE.get(model.net_name, 1)
    if min(a.shape[-2:]) < side:
        raise PixseqError(f"LPIPS ({model.net_name}) needs images of at least {side}x{side}, "
                          f"got {a.shape[-1]}x{a.shape[-2]}")
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        return model(a.to(dtype), b.to(dtype))


class LPIPS(Metric):
    """Mean LPIPS over all pairs seen."""

    higher_is_better = False
    name = "lpips"

    def __init__(self, model: LPIPSNet) -> None:
        super().__init__()
        self.model = model
        self.add_state("total", torch.zeros((), dtype=torch.float64))
        self.add_state("count", torch.zeros((), dtype=torch.float64))

    def update(self, a: torch.Tensor, b: torch.Tensor) -> None:
        d = lpips(a, b, self.model)
        self._accumulate("total", d.double().sum())
        self._accumulate("count", torch.tensor(float(d.numel())))

    def compute(self) -> float:
        s = self.synced_state()
        return float(s["total"] / s["count"])
