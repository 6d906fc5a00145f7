"""Seconds per VQGAN-CLIP step and peak RAM: ``pixseq generate`` against nerdyrodent/VQGAN-CLIP.

Both run as whole commands on the same random weights: an ImageNet-f16-16384-shaped VQGAN
(taming-transformers' ``VQModel`` with the official config, random init, converted once with
``pixseq convert taming``) and a ViT-B/32-shaped CLIP (OpenAI layout, random init), at
256x256 with 32 cut-outs on the CPU. The anchor is run from a fetched copy of its repository
(``--anchor DIR``: its ``generate.py``) with its PyPI dependencies in a separate venv
(``--anchor-python``: taming-transformers-rom1504, clip-anytorch, kornia, omegaconf,
pytorch-lightning 1.9, torch-optimizer, einops; its own ``from CLIP import clip`` is served
by a two-line shim folder; ``setuptools<70`` for clip-anytorch's ``pkg_resources``). Seconds
per step = (CPU seconds of a long run - of a short run) / (steps between them), so start-up
and model loading cancel; the anchor and pixseq run side by side (the same steps at the same
time, one thread each by default), so that the machine's other load falls on both; peak RAM is
the long run's maximum resident set (``/usr/bin/time -v``). ``--sizes 256,512`` adds pixseq's
512x512 runs. At the end, the CPU seconds of the decoder's and ViT-B/32's forward + backward
passes alone: the floor under any implementation's step.

    python3 benchmarks/clip_speed.py --anchor /path/VQGAN-CLIP \
        --anchor-python /work/venvs/vqganclip/bin/python --work /tmp/clip-bench
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

MAKE_ANCHOR_MODELS = r'''
import sys, torch, yaml
from taming.models.vqgan import VQModel
cfg = {"embed_dim": 256, "n_embed": 16384,
       "ddconfig": {"double_z": False, "z_channels": 256, "resolution": 256, "in_channels": 3, "out_ch": 3,
                    "ch": 128, "ch_mult": [1, 1, 2, 2, 4], "num_res_blocks": 2, "attn_resolutions": [16],
                    "dropout": 0.0},
       "lossconfig": {"target": "taming.modules.losses.vqperceptual.DummyLoss"}}
torch.manual_seed(0)
model = VQModel(**cfg)
torch.save({"state_dict": model.state_dict()}, sys.argv[1] + "/vqgan_f16_16384.ckpt")
with open(sys.argv[1] + "/vqgan_f16_16384.yaml", "w") as fh:
    yaml.safe_dump({"model": {"target": "taming.models.vqgan.VQModel", "params": cfg}}, fh)
'''


def timed(cmd: list[str], env: dict, cwd: Path | None = None) -> dict:
    """Wall seconds, CPU seconds (user + system), peak RSS (MiB) and output of one command."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], env=env, cwd=cwd, capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")

    def field(name: str) -> float:
        return float(re.search(rf"{re.escape(name)}: ([\d.]+)", proc.stderr).group(1))

    return {"wall": wall, "cpu": field("User time (seconds)") + field("System time (seconds)"),
            "rss": int(field("Maximum resident set size (kbytes)")) // 1024, "out": proc.stdout + proc.stderr}


def prepare(work: Path, anchor_python: str, env: dict) -> None:
    """Random weights for both sides (once): taming ckpt + yaml, pixseq VQGAN, CLIP files."""
    if not (work / "vqgan_f16_16384.ckpt").is_file():
        subprocess.run([anchor_python, "-W", "ignore", "-c", MAKE_ANCHOR_MODELS, str(work)], check=True, env=env)
    if not (work / "vqgan-pixseq" / "config.json").is_file():
        subprocess.run([sys.executable, "-m", "pixseq", "convert", "taming", str(work / "vqgan_f16_16384.ckpt"),
                        str(work / "vqgan-pixseq")], check=True, env=env)
    if not (work / "ViT-B-32-random.pt").is_file():
        import torch
        from safetensors.torch import save_file

        from pixseq.guidance.clip import random_clip

        clip = random_clip("ViT-B-32:openai", seed=0)  # quick_gelu, as OpenAI's ViT-B/32
        state = {k: v.contiguous() for k, v in clip.state_dict().items()}
        torch.save(state, work / "ViT-B-32-random.pt")  # read by clip-anytorch's clip.load(path)
        save_file(state, work / "ViT-B-32-random.safetensors")


def shim(anchor: Path, work: Path) -> Path:
    """A runnable copy of the anchor with ``from CLIP import clip`` served by clip-anytorch."""
    run = work / "anchor"
    if not (run / "generate.py").is_file():
        run.mkdir(parents=True, exist_ok=True)
        (run / "generate.py").write_text((anchor / "generate.py").read_text())
        (run / "CLIP").mkdir(exist_ok=True)
        (run / "CLIP" / "__init__.py").write_text("")
        (run / "CLIP" / "clip.py").write_text("from clip import *  # noqa\nfrom clip import tokenize, load  # noqa\n")
    return run


def floor(work: Path, size: int, threads: int, reps: int = 2) -> dict:
    """CPU seconds of the math every VQGAN-CLIP step must do, whoever runs it: the decoder
    forward + backward to the latent at ``size``, and ViT-B/32 forward + backward to 32
    cut-outs of 224x224 (pixseq's modules, of the anchor's architectures and shapes, in this
    process; weights frozen as in both programs). A step can be no cheaper than their sum."""
    import torch

    from pixseq.checkpoint import load_model
    from pixseq.guidance.clip import load_guide
    from pixseq.guidance.vqgan_clip import LatentDecoder

    torch.set_num_threads(threads)
    dec = LatentDecoder(load_model(work / "vqgan-pixseq", "vqgan"))
    guide = load_guide("ViT-B-32:openai", work / "ViT-B-32-random.safetensors").frozen()
    z = torch.randn(1, dec.codebook.shape[1], size // 16, size // 16, requires_grad=True)
    cuts = torch.rand(32, 3, 224, 224, requires_grad=True)

    def clock(fn) -> float:
        fn()  # warm-up
        t0 = time.process_time()
        for _ in range(reps):
            fn()
        return (time.process_time() - t0) / reps

    t_dec = clock(lambda: dec(z).sum().backward())
    t_clip = clock(lambda: guide.encode_image(guide.normalize(cuts)).sum().backward())
    return {"decoder_s": t_dec, "clip_s": t_clip, "floor_s": t_dec + t_clip}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--anchor", type=Path, required=True, help="a checkout of nerdyrodent/VQGAN-CLIP")
    ap.add_argument("--anchor-python", default="/work/venvs/vqganclip/bin/python")
    ap.add_argument("--work", type=Path, default=Path("/tmp/clip-bench"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--short", type=int, default=1, help="steps of the short run")
    ap.add_argument("--long", type=int, default=3, help="steps of the long run")
    ap.add_argument("--sizes", default="256,512", help="pixseq sizes to run (the anchor runs at the first)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "PIXSEQ_OFFLINE": "1"}
    prepare(args.work, args.anchor_python, env)
    run_dir = shim(args.anchor, args.work)
    sizes = [int(s) for s in args.sizes.split(",")]
    w = args.work

    def anchor(steps: int) -> dict:  # its -i N runs N + 1 steps
        return timed([args.anchor_python, "-W", "ignore", "generate.py", "-p", "a castle", "-s", str(sizes[0]),
                      str(sizes[0]), "-cuts", "32", "-i", str(steps - 1), "-conf", str(w / "vqgan_f16_16384.yaml"),
                      "-ckpt", str(w / "vqgan_f16_16384.ckpt"), "-m", str(w / "ViT-B-32-random.pt"),
                      "-o", str(w / f"anchor-{steps}.png"), "-cd", "cpu", "-sd", "0"], env, run_dir)

    def ours(steps: int, size: int) -> dict:
        return timed([sys.executable, "-m", "pixseq", "generate", "a castle", "--vqgan", str(w / "vqgan-pixseq"),
                      "--clip", "ViT-B-32:openai", "--clip-weights", str(w / "ViT-B-32-random.safetensors"),
                      "--size", f"{size}x{size}", "--cutn", "32", "--steps", str(steps), "--force",
                      "--out", str(w / f"ours-{size}-{steps}.png")], env)

    # side by side: the anchor and pixseq at the same settings run at the same time (one thread
    # each), so that whatever else loads the machine loads both; CPU time is the measure (wall
    # time on a shared machine is mostly waiting), the long run's peak RSS the memory
    from concurrent.futures import ThreadPoolExecutor

    names = ["nerdyrodent generate.py"] + [f"pixseq generate {s}x{s}" for s in sizes]
    fns = [anchor] + [functools.partial(lambda size, st: ours(st, size), s) for s in sizes]
    runs = {}
    with ThreadPoolExecutor(2) as pool:
        for steps in (args.short, args.long):
            for name, res in zip(names[:2], pool.map(lambda fn, st=steps: fn(st), fns[:2])):
                runs[name, steps] = res
        for name, fn in zip(names[2:], fns[2:]):  # pixseq's larger sizes: short and long side by side
            for steps, res in zip((args.short, args.long), pool.map(fn, (args.short, args.long))):
                runs[name, steps] = res
    rows = {}
    print(f"{'':28s} {'CPU s/step':>10s} {'wall s/step':>11s} {'peak RSS':>10s}")
    for name in names:
        a, b = runs[name, args.short], runs[name, args.long]
        n = args.long - args.short
        rows[name] = {"cpu_s_per_step": (b["cpu"] - a["cpu"]) / n, "wall_s_per_step": (b["wall"] - a["wall"]) / n,
                      "peak_rss_mib": b["rss"], "short": {k: a[k] for k in ("wall", "cpu", "rss")},
                      "long": {k: b[k] for k in ("wall", "cpu", "rss")}}
        r = rows[name]
        print(f"{name:28s} {r['cpu_s_per_step']:10.2f} {r['wall_s_per_step']:11.2f} {r['peak_rss_mib']:6d} MiB",
              flush=True)
    a, b = rows[names[0]], rows[names[1]]
    print(f"speed-up {a['cpu_s_per_step'] / b['cpu_s_per_step']:.2f}x (CPU time per step), peak memory "
          f"{b['peak_rss_mib'] / a['peak_rss_mib']:.2f}x of the anchor's ({sizes[0]}x{sizes[0]}, 32 cut-outs, "
          f"{args.threads} thread(s) each, steps {args.short} vs {args.long})")
    f = floor(w, sizes[0], args.threads)
    print(f"shared math at {sizes[0]}x{sizes[0]}: decoder fwd+bwd {f['decoder_s']:.2f} s + ViT-B/32 on 32 cut-outs "
          f"fwd+bwd {f['clip_s']:.2f} s = {f['floor_s']:.2f} CPU s/step = {f['floor_s'] / a['cpu_s_per_step']:.0%} "
          f"of the anchor's step, {f['floor_s'] / b['cpu_s_per_step']:.0%} of pixseq's: no loop can beat the "
          f"anchor by more than {a['cpu_s_per_step'] / f['floor_s']:.2f}x at these settings in fp32")
    rows["floor"] = f
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
