"""Cache the Inception features of a reference set (default: the 10 000 Fashion-MNIST test
images) for FID/KID, timing it (wall and process CPU seconds). Run once, under the heavy lock::

    flock /tmp/pixseq-heavy.lock python benchmarks/gan_fid_reference.py [--data fashion-mnist:test] [--threads 2]

Later FIDs against the same data and weights read the cached file (seconds).
"""
from __future__ import annotations

import argparse
import time

import torch

from pixseq.data import load_data
from pixseq.metrics.feature_cache import cached_features
from pixseq.metrics.fid import load_fid_inception


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="fashion-mnist:test")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_fid_inception()
    images = load_data(args.data, limit=args.limit).images
    t0, c0 = time.perf_counter(), time.process_time()
    feats, hit = cached_features(model, images)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"{len(images)} images of {args.data}, weights: {model.source}; {'cache hit' if hit else 'computed'} in "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU ({len(images) / wall:.2f} img/s wall, {args.threads} threads); "
          f"features {tuple(feats.shape)}, mean {float(feats.mean()):.4f}")


if __name__ == "__main__":
    main()
