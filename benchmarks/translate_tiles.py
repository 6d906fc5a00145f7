"""``pixseq translate`` with the zoo's cyclegan-vintage (vintagify's ResNet-9): a 2000 x 2000 photo
in bounded memory, and tiled against whole-image output on a photo small enough for both.

1. Tiles vs whole: scikit-image's astronaut (512 x 512) translated whole (``tile=0``, the
   network exactly as defined) and in tiles of ``--tile`` px with overlaps 8 and 32 (blended,
   instance-norm statistics of the whole image); the largest and mean absolute difference in
   8-bit grey levels. Target: within 2 levels at the default overlap (32).
2. Bounded memory: a 2000 x 2000 photo (scikit-image's coffee, bicubic-upscaled) through the
   CLI ``pixseq translate BIG --model zoo:cyclegan-vintage --out DIR`` in a child process
   (default tile budget: 1 GB on the CPU); its peak RSS (``ru_maxrss`` of the child) against
   the estimate for the whole image at once.

Threads: ``--threads`` (2 under the heavy lock)::

    flock /tmp/pixseq-heavy.lock python benchmarks/translate_tiles.py --threads 2
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
import torch


def tiles_vs_whole(model, tile: int) -> list[dict]:
    from skimage import data

    from pixseq.gans.translator import translate_image

    image = data.astronaut()
    rows = []
    whole = translate_image(model, image, tile=0).astype(int)
    for overlap in (8, 32):
        stats: dict = {}
        t = time.process_time()
        tiled = translate_image(model, image, tile=tile, overlap=overlap, stats=stats).astype(int)
        d = np.abs(tiled - whole)
        rows.append({"image": "astronaut 512x512", "tile": stats["tile"], "tiles": stats["tiles"],
                     "overlap": overlap, "max_diff": int(d.max()), "mean_diff": float(d.mean()),
                     "p999_diff": float(np.percentile(d, 99.9)), "cpu_s": time.process_time() - t})
    return rows


def big_photo(path: Path, side: int) -> None:
    from PIL import Image
    from skimage import data

    Image.fromarray(data.coffee()).resize((side, side), Image.BICUBIC).save(path)


def run_cli(big: Path, out: Path, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t, c = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "pixseq", "translate", str(big), "--model", "zoo:cyclegan-vintage",
                           "--out", str(out), "--device", "cpu"], env=env, capture_output=True, text=True,
                          check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"pixseq translate failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return {"stdout": proc.stdout.strip(), "wall_s": time.perf_counter() - t,
            "cpu_s": (after.ru_utime + after.ru_stime) - (c.ru_utime + c.ru_stime),
            "peak_rss_mib": after.ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--side", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=Path("/tmp/translate-tiles.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import pixseq
    from pixseq.gans.generators import peak_floats_per_pixel

    model = pixseq.load_model("zoo:cyclegan-vintage", device="cpu")
    rows = tiles_vs_whole(model, args.tile)
    print(json.dumps(rows), flush=True)  # part 1 as soon as it is done
    whole_gib = peak_floats_per_pixel(model.config.generator) * args.side ** 2 * 4 / 2 ** 30
    del model
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "coffee2000.png"
        big_photo(big, args.side)
        cli = run_cli(big, Path(tmp) / "out", args.threads)
        written = sorted((Path(tmp) / "out").iterdir())
        from PIL import Image
        cli["output"] = f"{written[0].name} {Image.open(written[0]).size}" if written else "nothing written"
    args.out.write_text(json.dumps({"tiles_vs_whole": rows, "big": cli, "whole_estimate_gib": whole_gib}, indent=1))
    print(f"cyclegan-vintage (vintagify ResNet-9), CPU, {args.threads} thread(s)")
    print(f"{'image':<18} {'tile':>5} {'tiles':>5} {'overlap':>7} {'max diff':>8} {'mean diff':>9} {'99.9%':>6}")
    for r in rows:
        print(f"{r['image']:<18} {r['tile']:>5} {r['tiles']:>5} {r['overlap']:>7} {r['max_diff']:>8} "
              f"{r['mean_diff']:>9.4f} {r['p999_diff']:>6.1f}")
    d32 = next(r for r in rows if r["overlap"] == 32)["max_diff"]
    print(f"target tiled within 2 grey levels of whole (overlap 32): {'met' if d32 <= 2 else 'NOT met'} (max {d32})")
    print(f"{args.side}x{args.side} photo: {cli['stdout'].splitlines()[-1]}")
    print(f"  output {cli['output']}; peak RSS {cli['peak_rss_mib']:.0f} MiB (whole image at once: ~{whole_gib:.1f} GiB "
          f"of activations by the tile estimate); {cli['cpu_s'] / 60:.1f} CPU-min, {cli['wall_s'] / 60:.1f} wall-min")


if __name__ == "__main__":
    main()
