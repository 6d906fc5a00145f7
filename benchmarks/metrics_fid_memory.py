"""FID memory: pixseq's streaming statistics vs holding every feature vector (pytorch-fid's way).

Each method runs in its own subprocess over the same synthetic feature stream (batches of
``--batch`` vectors of ``--dim`` floats, two sets of ``--n`` vectors each, as an Inception
extractor would yield them); the child reports its peak RSS above the baseline after imports
(``ru_maxrss``; torch allocations are invisible to tracemalloc) and the FID. Both methods use the
same Fréchet distance, so the memory difference comes from the statistics alone.

    python benchmarks/metrics_fid_memory.py              # N = 10 000, D = 2048 (a few minutes on CPU)
    python benchmarks/metrics_fid_memory.py --n 2500 10000 40000 --dim 256   # the growth with N, quickly
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _stream(n: int, dim: int, batch: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((dim, dim)).astype(np.float32) / dim ** 0.5
    for start in range(0, n, batch):
        m = min(batch, n - start)
        yield np.abs(rng.standard_normal((m, dim)).astype(np.float32) @ mix) + 0.01 * seed


def child(method: str, n: int, dim: int, batch: int) -> dict:
    import numpy as np
    import torch

    from pixseq.metrics.fid import FID, frechet_distance

    torch.set_num_threads(1)
    rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # noqa: E731 - peak so far, MiB
    base = rss()
    t0 = time.perf_counter()
    if method == "stream":
        metric = FID(num_features=dim)
        for seed, real in ((0, True), (1, False)):
            for feats in _stream(n, dim, batch, seed):
                metric.update_features(torch.from_numpy(feats), real)
        stats_peak = rss()
        value = metric.compute()
    else:  # hold every feature, then np.mean / np.cov as pytorch-fid does
        stats = []
        for seed in (0, 1):
            feats = np.concatenate(list(_stream(n, dim, batch, seed)))
            stats.append((feats.mean(0), np.cov(feats, rowvar=False)))
            del feats
        stats_peak = rss()
        value = frechet_distance(*stats[0], *stats[1])
    return {"fid": value, "stats_mib": stats_peak - base, "peak_mib": rss() - base,
            "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[2500, 10_000], help="vectors per set")
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.n[0], args.dim, args.batch)))
        return
    rows = []
    for n in args.n:
        res = {}
        for method in ("stream", "hold"):
            out = subprocess.run([sys.executable, __file__, "--child", method, "--n", str(n), "--dim", str(args.dim),
                                  "--batch", str(args.batch)], capture_output=True, text=True, check=True)
            res[method] = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append((n, res))
    print(f"FID over two sets of N feature vectors (D = {args.dim}, batches of {args.batch}); peak RSS in MiB "
          "above the post-import baseline, one thread. 'stats' = after both sets' statistics are collected; "
          "'total' = after the shared Fréchet step")
    print()
    print("| N per set | stream stats | hold-all stats | stats ratio hold/stream | stream total | hold-all total "
          "| stream s | hold s | FID stream | FID hold |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, r in rows:
        s, h = r["stream"], r["hold"]
        print(f"| {n} | {s['stats_mib']:.0f} | {h['stats_mib']:.0f} | {h['stats_mib'] / max(s['stats_mib'], 1):.2f}x "
              f"| {s['peak_mib']:.0f} | {h['peak_mib']:.0f} | {s['seconds']:.1f} | {h['seconds']:.1f} "
              f"| {s['fid']:.6f} | {h['fid']:.6f} |")


if __name__ == "__main__":
    main()
