"""Training throughput of the iGPT prior vs ``transformers`` ImageGPT, and FLOP/s vs matmul peak.

Issue 2 targets: >= 4x the training tokens/s of ``transformers``' ImageGPT on the same
config and batch, each at its best settings; achieved FLOP/s >= 40 % of a bf16 matmul peak
measured in the same run.

One training step = forward, cross-entropy over all 1024 pixels, backward, AdamW update.
Both models are the same function with the same weights (pixseq's is converted from the
HF one: RMS-style norm, quick-GELU); a third row is pixseq's default architecture
(LayerNorm, GELU). Each contender runs in fp32 and, when ``--bf16`` is given or this CPU's
bf16 matmuls are not much slower than fp32, also under bf16 autocast; the best is compared.

Times are *process CPU seconds* with one thread (``--threads 1``): on a machine shared with
other jobs, wall time mostly measures the neighbours. FLOPs per token follow PaLM (appendix
B) with causal attention counted as half: ``6 N + 6 L T C`` (see ``GPT.flops_per_token``),
the same count for both implementations (HF computes the full masked T x T attention, i.e.
more raw FLOPs, but the useful work is identical).

    python benchmarks/igpt_training.py [--preset s] [--batch 4] [--steps 2] [--threads 1]
"""
from __future__ import annotations

import argparse
import contextlib
import time

import torch
import torch.nn.functional as F

from igpt_common import hf_and_pixseq, machine_line, matmul_peak
from pixseq.priors.gpt import GPT, gpt_config


def step_fn(kind: str, model: torch.nn.Module, tokens: torch.Tensor, bf16: bool):
    """A closure doing one optimiser step of ``model`` on ``tokens``."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    hf_ids = None
    if kind == "hf":  # HF's input: [SOS, x_0 .. x_{T-2}], SOS = vocab_size - 1
        sos = torch.full((tokens.size(0), 1), model.config.vocab_size - 1)
        hf_ids = torch.cat([sos, tokens[:, :-1]], 1)

    def step() -> None:
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            if kind == "hf":
                logits = model(hf_ids).logits  # (B, T, V): position t predicts tokens[:, t]
                loss = F.cross_entropy(logits.float().flatten(0, 1), tokens.flatten())
            else:
                loss = model.loss(tokens)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def cpu_seconds(fn, steps: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per call, after one warm-up call."""
    fn()
    c, w = time.process_time(), time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.process_time() - c) / steps, (time.perf_counter() - w) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="s")
    ap.add_argument("--side", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bf16", action="store_true", help="time bf16 autocast even when bf16 matmuls are slow here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    peak32, peak16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16, n=512, repeats=2)
    peak32 = max(peak32, matmul_peak(torch.float32, n=2048, repeats=3))
    try_bf16 = args.bf16 or peak16 > 0.5 * peak32
    hf, converted = hf_and_pixseq(args.preset, side=args.side)
    hf.train()
    default = GPT(gpt_config(args.preset, block_size=args.side ** 2)).train()
    T = args.side ** 2
    tokens = torch.randint(0, 512, (args.batch, T), generator=torch.Generator().manual_seed(0))
    flops = converted.prior.flops_per_token(T) * args.batch * T  # per step, same for all three
    contenders = {
        "transformers ImageGPT": ("hf", hf),
        "pixseq GPT (same arch)": ("px", converted.prior.train()),
        "pixseq GPT (default arch)": ("px", default),
    }
    results = {}
    for name, (kind, model) in contenders.items():
        for bf16 in ([False, True] if try_bf16 else [False]):
            cpu, wall = cpu_seconds(step_fn(kind, model, tokens, bf16), args.steps)
            results[(name, bf16)] = (cpu, wall)
    best = {name: min((v[0], bf16, v[1]) for (n, bf16), v in results.items() if n == name) for name in contenders}
    ref = best["transformers ImageGPT"][0]
    lines = [
        f"### iGPT training step, preset `{args.preset}`, batch {args.batch} x {T} tokens",
        "",
        f"{machine_line()}. Matmul peak measured now: fp32 {peak32 / 1e9:.1f} GFLOP/s, "
        f"bf16 {peak16 / 1e9:.2f} GFLOP/s{'' if try_bf16 else ' (bf16 is far slower than fp32 on this CPU, so fp32 is the best setting for both and bf16 runs were skipped)'}. "
        f"{flops / 1e9:.1f} GFLOP per step (6N + 6LTC).",
        "",
        "| implementation | precision | CPU s/step | wall s/step | tokens/CPU-s | GFLOP/s | % fp32 peak | % bf16 peak | pixseq speed-up |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (name, bf16), (cpu, wall) in results.items():
        rate = flops / cpu
        lines.append(f"| {name} | {'bf16 autocast' if bf16 else 'fp32'} | {cpu:.2f} | {wall:.2f} | "
                     f"{args.batch * T / cpu:,.0f} | {rate / 1e9:.1f} | {100 * rate / peak32:.0f} % | "
                     f"{100 * rate / peak16:.0f} % | {ref / cpu:.2f}x |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
