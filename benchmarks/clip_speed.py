"""Seconds per VQGAN-CLIP step and peak RAM: ``pixseq generate`` against nerdyrodent/VQGAN-CLIP.

Both run as whole commands on the same random weights: an ImageNet-f16-16384-shaped VQGAN
(taming-transformers' ``VQModel`` with the official config, random init, converted once with
``pixseq convert taming``) and a ViT-B/32-shaped CLIP (OpenAI layout, random init), at
256x256 with 32 cut-outs on the CPU. The anchor is run from a fetched copy of its repository
(``--anchor DIR``: its ``generate.py``) with its PyPI dependencies in a separate venv
(``--anchor-python``: taming-transformers-rom1504, clip-anytorch, kornia, omegaconf,
pytorch-lightning 1.9, torch-optimizer, einops; its own ``from CLIP import clip`` is served
by a two-line shim folder). Seconds per step = (time of a long run - time of a short run) /
(steps between them), so start-up and model loading cancel; peak RAM is the long run's
maximum resident set (``/usr/bin/time -v``). ``--sizes 256,512`` adds pixseq's 512x512 run.

    flock /tmp/pixseq-heavy.lock python3 benchmarks/clip_speed.py --anchor /path/VQGAN-CLIP \
        --anchor-python /work/venv-vqclip/bin/python --work /tmp/clip-bench
"""
from __future__ import annotations

import argparse
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


def timed(cmd: list[str], env: dict, cwd: Path | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in MiB, output) of one command."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1)) // 1024
    return wall, rss, proc.stdout + proc.stderr


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
    """Seconds of the math every VQGAN-CLIP step must do, whoever runs it: the decoder forward
    + backward to the latent at ``size``, and ViT-B/32 forward + backward to 32 cut-outs of
    224x224 (pixseq's modules, in this process). A step can be no faster than their sum."""
    import torch

    from pixseq.checkpoint import load_model
    from pixseq.guidance.clip import load_guide
    from pixseq.guidance.vqgan_clip import LatentDecoder

    torch.set_num_threads(threads)
    dec = LatentDecoder(load_model(work / "vqgan-pixseq", "vqgan"))
    guide = load_guide("ViT-B-32:openai", work / "ViT-B-32-random.safetensors")
    z = torch.randn(1, dec.codebook.shape[1], size // 16, size // 16, requires_grad=True)
    cuts = torch.rand(32, 3, 224, 224, requires_grad=True)

    def clock(fn) -> float:
        fn()  # warm-up
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t0) / reps

    t_dec = clock(lambda: dec(z).sum().backward())
    t_clip = clock(lambda: guide.encode_image(guide.normalize(cuts)).sum().backward())
    return {"decoder_s": t_dec, "clip_s": t_clip, "floor_s": t_dec + t_clip}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--anchor", type=Path, required=True, help="a checkout of nerdyrodent/VQGAN-CLIP")
    ap.add_argument("--anchor-python", default="/work/venv-vqclip/bin/python")
    ap.add_argument("--work", type=Path, default=Path("/tmp/clip-bench"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--short", type=int, default=2, help="steps of the short run")
    ap.add_argument("--long", type=int, default=5, help="steps of the long run")
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

    def anchor(steps: int):  # its -i N runs N + 1 steps
        return timed([args.anchor_python, "-W", "ignore", "generate.py", "-p", "a castle", "-s", str(sizes[0]),
                      str(sizes[0]), "-cuts", "32", "-i", str(steps - 1), "-conf", str(w / "vqgan_f16_16384.yaml"),
                      "-ckpt", str(w / "vqgan_f16_16384.ckpt"), "-m", str(w / "ViT-B-32-random.pt"),
                      "-o", str(w / "anchor.png"), "-cd", "cpu", "-sd", "0"], env, run_dir)

    def ours(steps: int, size: int):
        return timed([sys.executable, "-m", "pixseq", "generate", "a castle", "--vqgan", str(w / "vqgan-pixseq"),
                      "--clip", "ViT-B-32:openai", "--clip-weights", str(w / "ViT-B-32-random.safetensors"),
                      "--size", f"{size}x{size}", "--cutn", "32", "--steps", str(steps),
                      "--out", str(w / f"ours-{size}.png")], env)

    rows = {}
    for name, fn in [("nerdyrodent generate.py", lambda s: anchor(s))] + \
            [(f"pixseq generate {s}x{s}", (lambda size: lambda st: ours(st, size))(s)) for s in sizes]:
        (t1, _, _), (t2, rss, _) = fn(args.short), fn(args.long)
        rows[name] = {"s_per_step": (t2 - t1) / (args.long - args.short), "peak_rss_mib": rss,
                      "short_run_s": t1, "long_run_s": t2}
        print(f"{name:28s} {rows[name]['s_per_step']:7.2f} s/step  peak RSS {rss:6d} MiB", flush=True)
    a, b = rows["nerdyrodent generate.py"], rows[f"pixseq generate {sizes[0]}x{sizes[0]}"]
    print(f"speed-up {a['s_per_step'] / b['s_per_step']:.2f}x, peak memory {b['peak_rss_mib'] / a['peak_rss_mib']:.2f}x "
          f"of the anchor's ({sizes[0]}x{sizes[0]}, 32 cut-outs, {args.threads} threads)")
    f = floor(w, sizes[0], args.threads)
    print(f"shared math at {sizes[0]}x{sizes[0]}: decoder fwd+bwd {f['decoder_s']:.2f} s + ViT-B/32 on 32 cut-outs "
          f"fwd+bwd {f['clip_s']:.2f} s = {f['floor_s']:.2f} s/step: no loop can beat the anchor by more than "
          f"{a['s_per_step'] / f['floor_s']:.2f}x at these settings in fp32")
    rows["floor"] = f
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
