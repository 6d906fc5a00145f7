"""Peak memory and time of ``pixseq upscale`` (x4plus, 4x, CPU fp32) by image size.

    python benchmarks/upscale_memory.py --sizes 128,256,512            # small runs: the memory model
    python benchmarks/upscale_memory.py --sizes 2000 --threads 2        # the target: < 2 GB at 2000x2000

Each size runs ``python -m pixseq upscale`` in a fresh process on a photo resized to N x N
(scikit-image's retina, 1411 x 1411, Lanczos) and reads that process's peak resident memory
(``ru_maxrss`` of the waited-for child) and its CPU time. Beside each measurement stands the
memory model's prediction:

    baseline (the interpreter, torch, the loaded net: measured by a run on a 16 x 16 image)
    + input (N^2 * 3 bytes, plus its float copy: 12 bytes per pixel)
    + output (16 N^2 * 3 bytes)
    + one band of tile rows in float32 (3 * 4 tile * 4 N * 4 bytes) and its overlap carry
    + one tile's forward pass (tile^2 * 2048 floats * 4 bytes: RRDBNet.peak_floats_per_input_pixel)

so that small runs show the model before one long run confirms it at 2000 x 2000.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_photo(size: int, path: Path) -> None:
    from PIL import Image
    from skimage import data

    Image.fromarray(data.retina()).resize((size, size), Image.LANCZOS).save(path)


def measure(image: Path, out: Path, threads: int, extra: list[str]) -> dict:
    """Run the verb in a child process; its wall time, CPU time and peak RSS."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "pixseq", "upscale", str(image), "--out", str(out), *extra],
                          capture_output=True, text=True, env=env, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"pixseq upscale failed: {done.stderr.strip()}")
    return {"seconds": time.perf_counter() - t0,
            "cpu_seconds": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            # ru_maxrss of RUSAGE_CHILDREN is the largest of any child so far: sizes run in increasing order
            "peak_rss_mb": after.ru_maxrss / 1024, "log": done.stdout.strip()}


def predicted_mb(size: int, tile: int, baseline_mb: float) -> float:
    out_w = 4 * size
    parts = [size * size * 15, 16 * size * size * 3, 2 * 3 * 4 * min(tile, size) * out_w * 4,
             min(tile, size) ** 2 * 2048 * 4]
    return baseline_mb + sum(parts) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="128,256,512")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tile-memory", type=float, default=None, help="passed on (GB)")
    ap.add_argument("--out", type=Path, default=Path("upscale-memory.json"))
    args = ap.parse_args()
    from pixseq.upscale import load_upscaler
    from pixseq.upscale.tiles import tile_for_budget
    from pixseq.upscale.upscaler import CPU_BUDGET

    load_upscaler("realesrgan-x4plus")  # converted (once) before anything is timed
    extra = ["--tile-memory", str(args.tile_memory)] if args.tile_memory else []
    budget = args.tile_memory * 1e9 if args.tile_memory else CPU_BUDGET
    tile = tile_for_budget(2048, budget, 4)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_photo(16, tmp / "tiny.png")
        base = measure(tmp / "tiny.png", tmp / "out", args.threads, extra)["peak_rss_mb"]
        for size in sorted(int(s) for s in args.sizes.split(",")):
            make_photo(size, tmp / f"p{size}.png")
            r = measure(tmp / f"p{size}.png", tmp / "out", args.threads, extra)
            r.update(size=size, tile=tile, predicted_mb=predicted_mb(size, tile, base))
            rows.append(r)
            print(f"{size:5d}^2 -> {4 * size}^2: {r['seconds']:8.1f} s wall {r['cpu_seconds']:8.1f} s CPU, "
                  f"peak RSS {r['peak_rss_mb']:7.0f} MB (model {r['predicted_mb']:7.0f} MB); {r['log']}", flush=True)
    report = {"threads": args.threads, "baseline_mb": base, "tile": tile, "runs": rows}
    args.out.write_text(json.dumps(report, indent=2))
    print(f"baseline (16x16 run) {base:.0f} MB, tile {tile}; wrote {args.out}")


if __name__ == "__main__":
    main()
