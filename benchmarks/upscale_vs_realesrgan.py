"""pixseq upscale against Real-ESRGAN's own inference, same weights, CPU fp32.

    python benchmarks/upscale_vs_realesrgan.py --anchor-python /work/venvs/realesrgan/bin/python

The anchor is ``RealESRGANer`` (PyPI ``realesrgan`` with ``basicsr-fixed``) in its own venv,
run as a subprocess (benchmarks/_realesrgan_anchor.py) on the same x4plus weights (pixseq's
conversion of the ncnn files, written as a ``params_ema`` .pth), one after the other. Two
experiments:

A. ``--size`` (256) photo, the same tiles: the anchor with ``--tile T`` (128) and its
   ``tile_pad`` 10 (each net input up to T + 20 pixels, T + 10 at the image border), pixseq
   with tiles of T + 10 and overlap 20, so that on a side that is a multiple of T both run
   the same number of tiles of the same sizes: speed (target >= 1x); also whole image
   (``tile=0``, ``pre_pad=0``): speed and the outputs' difference (target: within 1 level).
   Anchor and pixseq runs alternate for ``--rounds`` rounds; the fastest of each is kept and
   both wall and process-CPU ratios are printed (on a shared machine CPU time is the steadier).
B. ``--seam-size`` (400) photo, seams: the whole-image output against pixseq's default
   blended tiles (``--seam-tile`` 256, overlap 96: target within 2 levels everywhere) and
   against the anchor's pasted tiles of the same size (``--tile`` seam-tile - 10, pad 10);
   a picture of a tile corner: whole | anchor tiled | pixseq tiled, and their differences x20.

Prints a table and writes ``--out`` (JSON + PNG). Both run with ``--threads`` torch threads.

The anchor venv (what the default ``--anchor-python`` expects)::

    python3 -m venv --system-site-packages /work/venvs/realesrgan
    /work/venvs/realesrgan/bin/pip install --no-deps realesrgan==0.3.0 basicsr-fixed==1.4.2

``--no-deps``: realesrgan 0.3.0 requires ``basicsr`` (whose degradations module imports
``torchvision.transforms.functional_tensor``, removed in torchvision 0.17), ``facexlib`` and
``gfpgan``; ``RealESRGANer`` and basicsr-fixed's ``RRDBNet`` import without them, on the
system's torch, numpy and opencv.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def photo(size: int) -> np.ndarray:
    """A held-out photo: the centre size x size of scikit-image's astronaut (512 x 512)."""
    from skimage import data

    im = data.astronaut()
    y, x = (im.shape[0] - size) // 2, (im.shape[1] - size) // 2
    return np.ascontiguousarray(im[y:y + size, x:x + size])


def run_anchor(python: str, image: Path, weights: Path, out: Path, tile: int, threads: int) -> dict:
    cmd = [python, str(HERE / "_realesrgan_anchor.py"), str(image), str(weights), str(out), "--tile", str(tile),
           "--tile-pad", "10", "--pre-pad", "0", "--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"anchor failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_pixseq(model, image: np.ndarray, tile: int, overlap: int) -> tuple[np.ndarray, dict]:
    from pixseq.upscale import upscale_image

    cpu0, t0 = time.process_time(), time.perf_counter()
    stats: dict = {}
    out = upscale_image(model, image, tile=tile, overlap=overlap, stats=stats)
    return out, {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - cpu0,
                 "tiles": stats["tiles"], "tile": stats["tile"]}


def diff_stats(a: np.ndarray, b: np.ndarray) -> dict:
    d = np.abs(a.astype(int) - b.astype(int))
    return {"max": int(d.max()), "mean": float(d.mean()), "p99_9": float(np.percentile(d, 99.9)),
            "frac_over_2": float((d > 2).mean())}


def corner_picture(whole, anchor, ours, at: int, path: Path, half: int = 48) -> None:
    """Crops around the tile corner at (at, at) (output pixels): the three outputs, then
    the two tiled outputs' differences from the whole-image output, x20."""
    from PIL import Image

    sl = np.s_[at - half:at + half, at - half:at + half]
    amp = lambda x: np.clip(np.abs(x[sl].astype(int) - whole[sl].astype(int)) * 20, 0, 255).astype(np.uint8)
    row = np.concatenate([whole[sl], anchor[sl], ours[sl], amp(anchor), amp(ours)], axis=1)
    Image.fromarray(row).resize((row.shape[1] * 2, row.shape[0] * 2), Image.NEAREST).save(path)


def experiment_a(args, model, tmp: Path) -> tuple[dict, dict]:
    """Whole and tiled, anchor and pixseq interleaved (anchor, pixseq, anchor, pixseq) for
    ``--rounds`` rounds: each configuration's fastest wall and CPU time."""
    image = photo(args.size)
    np.save(tmp / "a.npy", image)
    runs: dict[str, list[dict]] = {}
    outputs = {}
    for _ in range(args.rounds):
        for name, tile, overlap in (("whole", 0, None), ("tiled", args.tile, 20)):
            r = run_anchor(args.anchor_python, tmp / "a.npy", tmp / "x4plus.pth", tmp / f"a-{name}.npy", tile,
                           args.threads)
            runs.setdefault(f"anchor {name}", []).append(r)
            outputs[f"anchor {name}"] = np.load(tmp / f"a-{name}.npy")
            out, r = run_pixseq(model, image, tile + 10 if tile else 0, overlap if tile else None)
            runs.setdefault(f"pixseq {name}", []).append(r)
            outputs[f"pixseq {name}"] = out
    rows = {k: {"seconds": min(r["seconds"] for r in v), "cpu_seconds": min(r["cpu_seconds"] for r in v),
                "all_seconds": [r["seconds"] for r in v], "all_cpu_seconds": [r["cpu_seconds"] for r in v]}
            for k, v in runs.items()}
    ratio = lambda key, kind: rows[f"anchor {kind}"][key] / rows[f"pixseq {kind}"][key]
    report = {"size": args.size, "anchor_tile": args.tile, "rounds": args.rounds, "runs": rows,
              "speed_whole": ratio("seconds", "whole"), "speed_tiled": ratio("seconds", "tiled"),
              "cpu_speed_whole": ratio("cpu_seconds", "whole"), "cpu_speed_tiled": ratio("cpu_seconds", "tiled"),
              "whole_vs_whole": diff_stats(outputs["pixseq whole"], outputs["anchor whole"]),
              "anchor_tiled_vs_whole": diff_stats(outputs["anchor tiled"], outputs["anchor whole"]),
              "pixseq_tiled_vs_whole": diff_stats(outputs["pixseq tiled"], outputs["pixseq whole"])}
    return report, outputs


def experiment_b(args, model, tmp: Path) -> dict:
    image = photo(args.seam_size)
    np.save(tmp / "b.npy", image)
    anchor_tile = args.seam_tile - 10
    anchor = run_anchor(args.anchor_python, tmp / "b.npy", tmp / "x4plus.pth", tmp / "b-tiled.npy", anchor_tile,
                        args.threads)
    whole, whole_run = run_pixseq(model, image, 0, None)
    ours, ours_run = run_pixseq(model, image, args.seam_tile, None)
    anchor_out = np.load(tmp / "b-tiled.npy")
    corner_picture(whole, anchor_out, ours, anchor_tile * 4, args.out / "tile-corner.png")
    return {"size": args.seam_size, "pixseq_tile": args.seam_tile, "anchor_tile": anchor_tile,
            "runs": {"pixseq whole": whole_run, "pixseq tiled (default overlap)": ours_run, "anchor tiled": anchor},
            "speed_tiled_default_vs_anchor": anchor["seconds"] / ours_run["seconds"],
            "cpu_speed_tiled_default_vs_anchor": anchor["cpu_seconds"] / ours_run["cpu_seconds"],
            "pixseq_tiled_vs_whole": diff_stats(ours, whole), "anchor_tiled_vs_whole": diff_stats(anchor_out, whole)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--anchor-python", default="/work/venvs/realesrgan/bin/python")
    ap.add_argument("--size", type=int, default=256, help="experiment A's input side (a multiple of --tile)")
    ap.add_argument("--tile", type=int, default=128, help="the anchor's --tile in A; pixseq's tiles are this + 10")
    ap.add_argument("--seam-size", type=int, default=400, help="experiment B's input side")
    ap.add_argument("--seam-tile", type=int, default=256, help="pixseq's tile in B (default overlap)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds of experiment A (fastest kept)")
    ap.add_argument("--out", type=Path, default=Path("upscale-bench"))
    args = ap.parse_args()
    if not Path(args.anchor_python).is_file():
        sys.exit(f"no anchor interpreter at {args.anchor_python}: make the venv as this script's docstring says, "
                 f"or give --anchor-python")
    torch.set_num_threads(args.threads)
    from pixseq.upscale import load_upscaler

    args.out.mkdir(parents=True, exist_ok=True)
    model = load_upscaler("realesrgan-x4plus")
    run_pixseq(model, photo(16), 0, None)  # warm-up: lazy initialisation, not timed (the anchor does the same)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.save({"params_ema": model.state_dict()}, tmp / "x4plus.pth")  # the same weights for the anchor
        a, _ = experiment_a(args, model, tmp)
        _print_a(a, args.threads)
        b = experiment_b(args, model, tmp) if args.seam_size else {}
        if b:
            _print_b(b)
    (args.out / "upscale_vs_realesrgan.json").write_text(json.dumps({"threads": args.threads, "A": a, "B": b},
                                                                    indent=2))


def _print_a(a: dict, threads: int) -> None:
    print(f"A: {a['size']}x{a['size']} photo, x4plus, CPU fp32, {threads} threads; anchor tile {a['anchor_tile']} "
          f"+ pad 10, pixseq tile {a['anchor_tile'] + 10} overlap 20 (the same tiles)")
    for name, r in a["runs"].items():
        print(f"  {name:16s} {r['seconds']:7.1f} s wall  {r['cpu_seconds']:7.1f} s CPU")
    print(f"  speed anchor time / pixseq time (fastest of {a['rounds']} interleaved rounds): wall whole "
          f"{a['speed_whole']:.2f}x, tiled {a['speed_tiled']:.2f}x; CPU whole {a['cpu_speed_whole']:.2f}x, "
          f"tiled {a['cpu_speed_tiled']:.2f}x")
    for key in ("whole_vs_whole", "anchor_tiled_vs_whole", "pixseq_tiled_vs_whole"):
        _print_diff(key, a[key])


def _print_b(b: dict) -> None:
    print(f"B: {b['size']}x{b['size']} photo; pixseq tiles {b['pixseq_tile']} (default overlap), anchor tile "
          f"{b['anchor_tile']} + pad 10")
    for name, r in b["runs"].items():
        print(f"  {name:32s} {r['seconds']:7.1f} s wall  {r['cpu_seconds']:7.1f} s CPU  tiles {r.get('tiles', '-')}")
    print(f"  speed anchor tiled / pixseq default tiled: wall {b['speed_tiled_default_vs_anchor']:.2f}x, CPU "
          f"{b['cpu_speed_tiled_default_vs_anchor']:.2f}x (not the same tiles: pixseq's overlap is 96)")
    for key in ("pixseq_tiled_vs_whole", "anchor_tiled_vs_whole"):
        _print_diff(key, b[key])


def _print_diff(key: str, d: dict) -> None:
    print(f"  {key:24s} max {d['max']:3d}  p99.9 {d['p99_9']:.1f}  mean {d['mean']:.3f}  >2 levels {d['frac_over_2']:.2e}")


if __name__ == "__main__":
    main()
