"""Memory that sampling one 32x32 image adds on top of the loaded model (preset ``m``).

Issue 2 target: the increase stays below the size of the model's own weights.

Each measurement runs in a fresh child process: build the model, warm up (a few sampled
tokens, so lazily created kernels and thread pools are not counted), record the resident
set size, reset the kernel's peak-RSS counter (``/proc/self/clear_refs`` = 5, Linux), run
the job, read the peak (``VmHWM``). Added memory = peak - baseline. Side by side: pixseq's
KV-cached sampling, ``transformers`` generate (same weights), and pixseq's full recompute
(only its costliest step, a forward over all 1024 positions, is run: that is its peak).

    python benchmarks/igpt_memory.py [--preset m] [--side 32]
"""
from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys

import torch


def _status(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _release_freed() -> None:
    """Return freed heap memory to the OS so the baseline RSS holds only live objects."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def child(mode: str, preset: str, side: int) -> dict:
    from igpt_common import hf_and_pixseq
    from igpt_sampling import hf_generate
    from pixseq.priors.gpt import GPT, gpt_config
    from pixseq.priors.sampling import sample

    torch.set_num_threads(1)
    L = side * side
    if mode == "transformers generate":
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf, _ = hf_and_pixseq(preset, side=side)
        job = lambda: hf_generate(hf, 1, L, do_sample=True, top_k=0)  # noqa: E731
        warm = lambda: hf_generate(hf, 1, 4, do_sample=True, top_k=0)  # noqa: E731
        weights = sum(p.numel() * p.element_size() for p in hf.parameters())
    else:  # only the pixseq model is ever built in this process
        prior = GPT(gpt_config(preset, block_size=L)).eval()
        weights = sum(p.numel() * p.element_size() for p in prior.parameters())
        warm = lambda: sample(prior, 1, 4)  # noqa: E731
        if mode == "pixseq KV cache":
            job = lambda: sample(prior, 1, L)  # noqa: E731
        else:
            job = lambda: prior(torch.zeros(1, L, dtype=torch.long))[:, -1].softmax(-1).multinomial(1)  # noqa: E731
    with torch.no_grad():
        warm()
        _release_freed()
        base = _status("VmRSS")
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        job()
        peak = _status("VmHWM")
    return {"weights": weights, "added": peak - base, "base": base}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="m")
    ap.add_argument("--side", type=int, default=32)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.preset, args.side)))
        return
    from pixseq.priors.gpt import gpt_config

    cfg = gpt_config(args.preset)
    L = args.side ** 2
    kv = 2 * cfg.n_layer * L * cfg.n_embd * 4  # keys + values, fp32, batch 1
    rows = []
    for mode in ("pixseq KV cache", "transformers generate", "pixseq full recompute (peak step)"):
        out = subprocess.run([sys.executable, __file__, "--child", mode, "--preset", args.preset,
                              "--side", str(args.side)], capture_output=True, text=True, check=True)
        rows.append((mode, json.loads(out.stdout.strip().splitlines()[-1])))
    mib = 2 ** 20
    lines = [
        f"### Memory added by sampling one {args.side}x{args.side} image, preset `{args.preset}`",
        "",
        f"Peak RSS increase over the loaded, warmed-up model (fresh process each; Linux VmHWM). "
        f"The KV cache itself is 2 x {cfg.n_layer} layers x {L} positions x {cfg.n_embd} x 4 B = "
        f"{kv / mib:.1f} MiB.",
        "",
        "| method | model weights MiB | added MiB | added / weights |",
        "|---|---:|---:|---:|",
    ]
    for mode, r in rows:
        lines.append(f"| {mode} | {r['weights'] / mib:.1f} | {r['added'] / mib:.1f} | {r['added'] / r['weights']:.2f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
