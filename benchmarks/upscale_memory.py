"""Peak memory and time of ``pixseq upscale`` (4x, CPU fp32) by image size, and the 2000 x 2000 bound.

    python benchmarks/upscale_memory.py --sizes 128,256,512             # small runs: the memory model
    python benchmarks/upscale_memory.py --sizes 2000 --threads 2         # x4plus at the target size (~35 CPU-min)
    python benchmarks/upscale_memory.py --bound --threads 1              # the target within ~10 CPU-min

Each run is ``python -m pixseq upscale`` in a fresh process on a photo resized to W x H
(scikit-image's retina, 1411 x 1411, Lanczos); its peak resident memory is that child's own
``ru_maxrss`` (``os.wait4``), beside its CPU time. Next to each measurement stands the
memory model's prediction:

    baseline (the interpreter, torch, the loaded net: measured by a run on a 16 x 16 image)
    + input (W H * 3 bytes, plus its float copy: 15 bytes per pixel)
    + output (16 W H * 3 bytes)
    + one band of tile rows in float32 (3 * 4 tile * 4 W * 4 bytes), twice (band and overlap carry)
    + one tile's forward pass (tile^2 * the net's peak_floats_per_input_pixel * 4 bytes)

``--bound``: x4plus on a whole 2000 x 2000 photo costs ~35 CPU-minutes (16.7 M parameters,
~35 MFLOP per input pixel), so the bound is shown in parts that are each measured:

1. realesr-animevideov3 (SRVGGNetCompact, 0.6 M parameters) on the whole 2000 x 2000 at its
   own default tile: the target met directly by a 4x net;
2. the same net on 2000 x 2000 with x4plus's default tile T: the input, output, band and
   carry of a 2000-wide image tiled as x4plus tiles it, under a cheap net;
3. x4plus on T x T (one tile) and on T x (2T - overlap) (two tiles): its forward pass at T,
   and that peak RSS does not grow with the number of tiles / the image height;
4. realesr-animevideov3 on T x T with tile T: the cheap net's share of (2) at one tile.

x4plus at 2000 x 2000 is then (2) + (3, one tile) - (4): everything (2) held at its peak,
with x4plus's forward pass in place of the cheap net's. It is a composition of measured
peaks, not a measurement of the whole run: it says so in the output.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

X4PLUS, COMPACT = "realesrgan-x4plus", "realesr-animevideov3"


def make_photo(width: int, height: int, path: Path) -> None:
    from PIL import Image
    from skimage import data

    Image.fromarray(data.retina()).resize((width, height), Image.LANCZOS).save(path)


def parse_size(text: str) -> tuple[int, int]:
    """``N`` or ``WxH`` -> (W, H)."""
    w, _, h = text.lower().partition("x")
    return int(w), int(h or w)


def measure(image: Path, out: Path, threads: int, extra: list[str]) -> dict:
    """Run the verb in a child process; its wall time, CPU time and peak RSS (its own, by wait4)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        child = subprocess.Popen([sys.executable, "-m", "pixseq", "upscale", str(image), "--out", str(out),
                                  "--force", *extra], stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        text = log.read().strip()
    if child.returncode != 0:
        sys.exit(f"pixseq upscale failed: {text}")
    wrote = [line for line in text.splitlines() if ": wrote " in line]
    tiles = re.search(r"\((\d+) tiles of (\d+) px", wrote[-1]) if wrote else None
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024, "log": wrote[-1] if wrote else text[-300:],
            "tiles_run": int(tiles.group(1)) if tiles else None, "tile_run": int(tiles.group(2)) if tiles else None}


def predicted_mb(width: int, height: int, tile: int, peak_floats: float, baseline_mb: float) -> float:
    th, tw = min(tile, height), min(tile, width)
    parts = [width * height * 15, 16 * width * height * 3, 2 * 3 * 4 * th * 4 * width * 4,
             th * tw * peak_floats * 4]
    return baseline_mb + sum(parts) / 2**20


def default_tile(name: str) -> int:
    """The tile ``pixseq upscale`` picks for ``name`` on the CPU with the default budget
    (:data:`~pixseq.upscale.upscaler.CPU_BUDGET`; the verb takes less when under 4 GB are
    available, so the children are given that budget explicitly)."""
    import torch

    from pixseq.upscale import load_upscaler
    from pixseq.upscale.tiles import tile_for_budget
    from pixseq.upscale.upscaler import CPU_BUDGET

    model = load_upscaler(name)  # converted (once) here, before anything is measured
    return tile_for_budget(model.peak_floats_per_input_pixel(), CPU_BUDGET, torch.finfo(torch.float32).bits // 8,
                           model.size_multiple)


class Runner:
    """Runs and prints measurements; one baseline (16 x 16) per model."""

    def __init__(self, tmp: Path, threads: int) -> None:
        self.tmp, self.threads, self.baselines, self.rows = tmp, threads, {}, []

    def baseline(self, model: str) -> float:
        if model not in self.baselines:
            make_photo(16, 16, self.tmp / "tiny.png")
            self.baselines[model] = measure(self.tmp / "tiny.png", self.tmp / "out", self.threads,
                                            ["--model", model])["peak_rss_mb"]
        return self.baselines[model]

    def run(self, label: str, model: str, width: int, height: int, tile: int | None) -> dict:
        from pixseq.upscale import load_upscaler

        path = self.tmp / f"p{width}x{height}.png"
        if not path.exists():
            make_photo(width, height, path)
        from pixseq.upscale.upscaler import CPU_BUDGET

        extra = ["--model", model, "--tile-memory", repr(CPU_BUDGET / 1e9)]
        extra += ["--tile", str(tile)] if tile is not None else []
        used = tile if tile is not None else default_tile(model)
        base = self.baseline(model)
        r = measure(path, self.tmp / "out", self.threads, extra)
        if r["tile_run"] not in (None, min(used, max(width, height))):
            sys.exit(f"the child ran tiles of {r['tile_run']} px, not {used}: {r['log']}")
        peak = load_upscaler(model).peak_floats_per_input_pixel()
        r.update(label=label, model=model, width=width, height=height, tile=used,
                 predicted_mb=predicted_mb(width, height, used, peak, base), baseline_mb=base)
        self.rows.append(r)
        print(f"{label:4s} {model:22s} {width:4d}x{height:<4d} tile {used:4d} x{r['tiles_run']}: {r['seconds']:7.1f} s wall "
              f"{r['cpu_seconds']:7.1f} s CPU, peak RSS {r['peak_rss_mb']:6.0f} MB (model {r['predicted_mb']:6.0f} MB, "
              f"baseline {base:4.0f} MB)", flush=True)
        return r


def bound(runner: Runner) -> dict:
    """The --bound plan (see the module docstring)."""
    from pixseq.upscale.tiles import DEFAULT_OVERLAP

    t = default_tile(X4PLUS)
    r1 = runner.run("(1)", COMPACT, 2000, 2000, None)
    r2 = runner.run("(2)", COMPACT, 2000, 2000, t)
    r3a = runner.run("(3a)", X4PLUS, t, t, None)
    r3b = runner.run("(3b)", X4PLUS, t, 2 * t - DEFAULT_OVERLAP, None)
    r4 = runner.run("(4)", COMPACT, t, t, t)
    composed = r2["peak_rss_mb"] + r3a["peak_rss_mb"] - r4["peak_rss_mb"]
    print(f"(1) {COMPACT} 2000x2000 -> 8000x8000 measured: peak RSS {r1['peak_rss_mb']:.0f} MB "
          f"({'<' if r1['peak_rss_mb'] < 2000 else '>='} 2000 MB)")
    print(f"(3) {X4PLUS}: one tile {r3a['peak_rss_mb']:.0f} MB, two tiles {r3b['peak_rss_mb']:.0f} MB "
          f"(growth {r3b['peak_rss_mb'] - r3a['peak_rss_mb']:+.0f} MB for {r3b['height'] - r3a['height']} more rows)")
    print(f"{X4PLUS} 2000x2000 composed, (2) + (3a) - (4) = {r2['peak_rss_mb']:.0f} + {r3a['peak_rss_mb']:.0f} - "
          f"{r4['peak_rss_mb']:.0f} = {composed:.0f} MB ({'<' if composed < 2000 else '>='} 2000 MB; "
          f"memory model {predicted_mb(2000, 2000, t, 2048, runner.baseline(X4PLUS)):.0f} MB) "
          f"[composed from measured peaks, not one measured run]")
    return {"x4plus_tile": t, "compact_2000_mb": r1["peak_rss_mb"], "x4plus_2000_composed_mb": composed}


def _available_mb() -> float:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="128,256,512", help="N or WxH, comma-separated")
    ap.add_argument("--model", default=X4PLUS)
    ap.add_argument("--bound", action="store_true", help="the 2000x2000 bound in measured parts (see above)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("upscale-memory.json"))
    args = ap.parse_args()
    available = _available_mb()
    print(f"MemAvailable at start: {available:.0f} MB" + (" - under memory pressure file-backed pages (the torch "
          "libraries) leave RSS, so peaks may read low: rerun on a quieter machine" if available < 4000 else ""))
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(Path(tmp), args.threads)
        if args.bound:
            summary = bound(runner)
        else:
            for size in args.sizes.split(","):
                runner.run("", args.model, *parse_size(size), None)
            summary = {}
    report = {"threads": args.threads, "mem_available_mb_at_start": available, "baselines_mb": runner.baselines,
              "runs": runner.rows, **summary}
    args.out.write_text(json.dumps(report, indent=2))
    print(f"baselines (16x16 runs) {', '.join(f'{k} {v:.0f} MB' for k, v in runner.baselines.items())}; "
          f"wrote {args.out}")


if __name__ == "__main__":
    main()
