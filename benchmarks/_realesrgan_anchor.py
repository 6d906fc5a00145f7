"""Real-ESRGAN's own inference (``RealESRGANer`` from PyPI ``realesrgan``, ``basicsr-fixed``'s
RRDBNet) on one image, for benchmarks/upscale_vs_realesrgan.py. Runs in the interpreter that
has those packages (a separate venv: they are not pixseq dependencies)::

    python _realesrgan_anchor.py IMAGE.npy WEIGHTS.pth OUT.npy --tile 128 --tile-pad 10 --pre-pad 0

Prints one JSON line: seconds of ``enhance`` (best of ``--repeats``), process CPU seconds.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("weights")
    ap.add_argument("out")
    ap.add_argument("--tile", type=int, default=0)
    ap.add_argument("--tile-pad", type=int, default=10)
    ap.add_argument("--pre-pad", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from basicsr.archs.rrdbnet_arch import RRDBNet
    from realesrgan import RealESRGANer

    net = RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32, scale=4)
    up = RealESRGANer(scale=4, model_path=args.weights, model=net, tile=args.tile, tile_pad=args.tile_pad,
                      pre_pad=args.pre_pad, half=False, device=torch.device("cpu"))
    rgb = np.load(args.image)
    up.enhance(np.ascontiguousarray(rgb[:16, :16, ::-1]), outscale=4)  # warm-up: lazy initialisation, not timed
    best, cpu0 = float("inf"), time.process_time()
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out, _ = up.enhance(np.ascontiguousarray(rgb[:, :, ::-1]), outscale=4)  # it takes and gives BGR
        best = min(best, time.perf_counter() - t0)
    np.save(args.out, np.ascontiguousarray(out[:, :, ::-1]))
    print(json.dumps({"seconds": best, "cpu_seconds": (time.process_time() - cpu0) / args.repeats}))


if __name__ == "__main__":
    main()
